"""Every algorithm x environment family x runtime trains from the defaults
``train.py --algo=A --env=E --runtime=R`` builds (benchmarks/matrix.py): a
few updates with finite losses, or, where the runtime cannot run the cell by
its nature (anakin on an environment that is not JAX-native), a one-line
refusal that says so."""

import os
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_ROOT, 'benchmarks'))

import matrix  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.parametrize('algo,env,runtime', matrix.cells())
def test_cell_trains_or_is_refused_by_nature(algo, env, runtime, tmp_path):
  cell = matrix.run_cell(algo, env, runtime, str(tmp_path))
  jax_native = env.split('/')[0] in matrix.JAX_FAMILIES
  if runtime == 'anakin' and not jax_native:
    assert cell.status == 'refused', cell
    assert 'JAX-native' in cell.detail and '\n' not in cell.detail
  else:
    assert cell.status == 'ok', cell
