"""Every algorithm x environment family x runtime trains from the defaults
``train.py --algo=A --env=E --runtime=R`` builds (benchmarks/matrix.py): a
few updates with finite losses, or, where the runtime cannot run the cell by
its nature (anakin on an environment that is not JAX-native), a one-line
refusal that says so.

The cells run once per session, in two worker processes that
compile without XLA's backend optimisation (the matrix checks that cells
train, not how fast); each test then reports its own cell."""

import os
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_ROOT, 'benchmarks'))

import matrix  # pylint: disable=g-import-not-at-top,wrong-import-position

_CELLS = matrix.cells()


def test_every_built_in_family_and_algorithm_has_cells():
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import jaxmarl, registry  # pylint: disable=g-import-not-at-top
  families = {env.split('/')[0] for env in matrix.ENVS}
  assert families == set(registry.FAMILIES) | set(registry.JAX_FAMILIES)
  jaxmarl_kinds = {env.split('/')[1].split('_')[0] for env in matrix.ENVS
                   if env.startswith('jaxmarl/')}
  assert jaxmarl_kinds == {n.split('_')[0] for n in jaxmarl.NAMES}
  assert {algo for algo, _, _ in _CELLS} == set(algorithms.names())


@pytest.fixture(scope='module')
def results(request, tmp_path_factory):
  # The cells of the tests selected (all of them, unless -k picks some).
  selected = [tuple(item.callspec.params[k] for k in ('algo', 'env', 'runtime'))
              for item in request.session.items
              if item.module is request.module and hasattr(item, 'callspec')]
  workdir = str(tmp_path_factory.mktemp('matrix'))
  # Two workers: a cell's time is mostly tracing and compiling, which keep
  # ~1.2 cores busy, so two cells side by side finish ~1.3x sooner.
  done = matrix.run_cells(selected, workdir, jobs=min(2, os.cpu_count() or 1),
                          timeout_s=2400.)
  return {(c.algo, c.env, c.runtime): c for c in done}


@pytest.mark.parametrize('algo,env,runtime', _CELLS)
def test_cell_trains_or_is_refused_by_nature(algo, env, runtime, results):
  cell = results[(algo, env, runtime)]
  why = matrix.refused_by_nature(algo, env, runtime)
  if why:
    assert cell.status == 'refused', cell
    assert why in cell.detail and '\n' not in cell.detail
  else:
    assert cell.status == 'ok', cell
    assert cell.detail.endswith('updates'), cell
