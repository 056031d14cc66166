"""Weights & Biases as a sink of marl_jax.utils.logging.MetricLogger.

The runs are offline (WANDB_MODE=offline): W&B writes them to
``<exp_dir>/wandb/offline-run-*/run-<id>.wandb``, a transaction log of
``wandb_internal_pb2.Record`` protos (what ``wandb sync`` uploads), read back
here. The installed wandb has no Python reader of its own for that log (its
reader is in the Go core), so `_records` reads the framing: a 7-byte header,
then LevelDB-log chunks in 32 KiB blocks. Every test but the missing-package
one skips without wandb.
"""

import csv
import glob
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from configs import impala as impala_configs
from marl_jax.utils import config as config_lib
from marl_jax.utils import logging as mlog

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_BLOCK = 32 * 1024
_CHUNK_HEADER = 7  # crc32 (4 bytes), length (2), chunk type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


# ----------------------------------------------------------------------------
# Helpers.


@pytest.fixture
def offline(tmp_path, monkeypatch):
  """Offline W&B, quiet, with its user-level files under tmp_path; W&B's
  process-wide state (its service, the settings it read) is reset after."""
  wandb = pytest.importorskip('wandb', reason='wandb is not installed')
  monkeypatch.setenv('WANDB_MODE', 'offline')
  monkeypatch.setenv('WANDB_SILENT', 'true')
  for var in ('WANDB_CONFIG_DIR', 'WANDB_CACHE_DIR', 'WANDB_DATA_DIR'):
    monkeypatch.setenv(var, str(tmp_path / 'wandb_home' / var.lower()))
  for var in ('WANDB_PROJECT', 'WANDB_ENTITY', 'WANDB_NAME', 'WANDB_RUN_GROUP',
              'WANDB_JOB_TYPE', 'WANDB_TAGS', 'WANDB_DIR', 'WANDB_RUN_ID'):
    monkeypatch.delenv(var, raising=False)
  yield
  wandb.teardown()


def _records(path):
  """The ``Record`` protos of a ``.wandb`` transaction log, in order."""
  from wandb.proto import wandb_internal_pb2  # pylint: disable=g-import-not-at-top
  with open(path, 'rb') as f:
    data = f.read()
  assert data[:4] == b':W&B', f'{path} is not a W&B transaction log'
  pos, pending, records = 7, b'', []
  while pos + _CHUNK_HEADER <= len(data):
    left = _BLOCK - pos % _BLOCK
    if left < _CHUNK_HEADER:  # a block's tail too short for a chunk: padding
      pos += left
      continue
    _, length, kind = struct.unpack('<IHB', data[pos:pos + _CHUNK_HEADER])
    if kind == 0 and length == 0:  # zero padding up to the block's end
      pos += left
      continue
    start = pos + _CHUNK_HEADER
    pending += data[start:start + length]
    pos = start + length
    if kind in (_FULL, _LAST):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(pending)
      records.append(record)
      pending = b''
    else:
      assert kind in (_FIRST, _MIDDLE), f'bad chunk type {kind} in {path}'
  return records


def _runs(exp_dir, wait=True):
  """Every offline W&B run under ``<exp_dir>/wandb``, as a dict: the run's
  identity, its config, its history rows and its metric definitions.

  ``wait``: first wait for W&B to write everything (`run.finish()` returns
  before its service has closed the run's log; `wandb.teardown` waits).
  """
  if wait:
    import wandb  # pylint: disable=g-import-not-at-top
    wandb.teardown()
  runs = []
  for path in sorted(glob.glob(os.path.join(
      exp_dir, 'wandb', 'offline-run-*', 'run-*.wandb'))):
    run = dict(path=path, config={}, history=[], step_metric={}, exited=False)
    for record in _records(path):
      kind = record.WhichOneof('record_type')
      if kind == 'run':
        r = record.run
        run.update(name=r.display_name, group=r.run_group,
                   job_type=r.job_type, project=r.project, tags=list(r.tags))
        updates = r.config.update
      elif kind == 'config':
        updates = record.config.update
      else:
        updates = ()
      for item in updates:
        run['config'][item.key] = json.loads(item.value_json)
      if kind == 'history':
        run['history'].append({
            item.key or '/'.join(item.nested_key): json.loads(item.value_json)
            for item in record.history.item})
      elif kind == 'metric' and record.metric.name:
        run['step_metric'][record.metric.name] = record.metric.step_metric
      elif kind == 'exit':
        run['exited'] = True
    run['config'].pop('_wandb', None)
    runs.append(run)
  return runs


def _rows_with(run, key):
  return [row for row in run['history'] if key in row]


# ----------------------------------------------------------------------------
# The sink.


def test_metric_logger_writes_an_offline_run_with_metrics_and_config(
    tmp_path, offline):
  """Two loggers of one process share the run (as the single launcher's
  nodes do); each label has its own x-axis, ``<label>/step``; [P] metrics
  are split per member as in the CSV; the run is finished by the last
  close."""
  exp_dir = str(tmp_path / 'exp_a')
  config = {'algo': 'impala', 'network': {'mlp_sizes': [32]}, 'seed': 3}
  options = mlog.WandbOptions(config=config, tags=('unit',))
  learner = mlog.MetricLogger(exp_dir, tensorboard=False, wandb=options)
  counter = mlog.MetricLogger(exp_dir, tensorboard=False, wandb=options)
  assert learner.wandb_run is counter.wandb_run is not None
  learner.write('learner', 1000, {'loss': np.array([0.5, 0.25]), 'step': 7})
  counter.write('actor', 400, {'episode_return': np.float32(1.5)})
  learner.write('learner', 2000, {'loss': np.array([0.4, 0.2]), 'step': 8})
  learner.close()
  counter.write('actor', 900, {'episode_return': 2.5})  # still open
  counter.close()

  (run,) = _runs(exp_dir)
  assert run['exited']
  assert (run['name'], run['group'], run['job_type']) == ('exp_a', 'exp_a',
                                                          'train')
  assert run['project'] == 'marl_jax' and run['tags'] == ['unit']
  assert run['config'] == config
  learner_rows = _rows_with(run, 'learner/step')
  assert [r['learner/step'] for r in learner_rows] == [1000, 2000]
  assert [(r['learner/member_0/loss'], r['learner/member_1/loss'])
          for r in learner_rows] == [(0.5, 0.25), (0.4, 0.2)]
  assert [r['learner/metric_step'] for r in learner_rows] == [7, 8]
  actor_rows = _rows_with(run, 'actor/step')
  assert [(r['actor/step'], r['actor/episode_return'])
          for r in actor_rows] == [(400, 1.5), (900, 2.5)]
  # W&B's own step counts the writes; the labels' steps are the x-axes.
  assert [r['_step'] for r in run['history']] == [0, 1, 2, 3]
  assert run['step_metric']['learner/member_1/loss'] == 'learner/step'
  assert run['step_metric']['actor/episode_return'] == 'actor/step'
  # The other sinks are unchanged.
  assert os.path.isfile(learner.csv_path('learner'))


def test_a_node_has_a_run_of_its_own_in_the_experiments_group(tmp_path,
                                                                offline):
  exp_dir = str(tmp_path / 'exp_b')
  options = mlog.WandbOptions(project='proj', name='ring', node='evaluator',
                              config={'seed': 0})
  with mlog.MetricLogger(exp_dir, tensorboard=False, wandb=options) as logger:
    logger.write('evaluator', 10, {'episode_return': np.array([1.0])})
  # Closing a node's run waited for W&B: its process may end without atexit.
  (run,) = _runs(exp_dir, wait=False)
  assert run['exited']
  assert (run['name'], run['group'], run['job_type'], run['project']) == (
      'ring-evaluator', 'ring', 'evaluator', 'proj')
  assert _rows_with(run, 'evaluator/member_0/episode_return')


def test_a_run_that_cannot_start_is_one_line_naming_offline_mode(
    tmp_path, offline, monkeypatch):
  monkeypatch.setenv('WANDB_MODE', 'online')
  monkeypatch.setenv('WANDB_API_KEY', 'bad')  # refused before any connection
  exp_dir = tmp_path / 'exp_c'
  with pytest.raises(config_lib.ConfigError) as e:
    mlog.MetricLogger(str(exp_dir), wandb=mlog.WandbOptions())
  message = str(e.value)
  assert '\n' not in message and 'WANDB_API_KEY' in message
  assert f'WANDB_MODE=offline to keep the run in {exp_dir}/wandb' in message


def test_wandb_options_give_nodes_their_own_runs_under_local_and_ray():
  config = impala_configs.get_config('toy')
  assert mlog.wandb_options(config, 'learner') is None  # off by default
  config.logger.wandb = True
  config.logger.wandb_tags = ('a', 'b')
  for launcher, node in (('local', 'learner'), ('ray', 'learner'),
                         ('single', '')):
    config.launcher = launcher
    options = mlog.wandb_options(config, 'learner')
    assert options.node == node, launcher
    assert options.project == 'marl_jax' and options.entity == ''
    assert options.tags == ('a', 'b') and options.name == ''
    assert options.config == config.to_dict()
  assert mlog.wandb_options(config).node == ''  # anakin: one process
  # A config saved before the logger keys existed (a resumed run).
  del config['logger']
  assert mlog.wandb_options(config, 'learner') is None


# ----------------------------------------------------------------------------
# A whole run.


def test_a_single_launcher_run_logs_learner_and_episodes_to_one_run(
    tmp_path, offline):
  """``--launcher=single``: the learner's and the counter's loggers share the
  process's one run, which holds every row of learner.csv and actor.csv and
  the whole config."""
  from marl_jax.runtime.launchers import single  # pylint: disable=g-import-not-at-top
  config = impala_configs.get_config('toy')
  config.launcher = 'single'
  config.progress_every_s = 1e9
  config.num_steps = 600
  config.log_every_updates = 1
  config.eval_every_updates = 0
  config.logger.wandb = True
  config.logger.wandb_name = 'toy_wandb'
  exp_dir = str(tmp_path / 'run')
  result = single.run(config, exp_dir)
  assert result.learner_steps > 0

  (run,) = _runs(exp_dir)  # one process, one run, in the run directory
  assert (run['name'], run['group'], run['job_type']) == (
      'toy_wandb', 'toy_wandb', 'train')
  assert run['exited']
  assert run['config'] == json.loads(json.dumps(config.to_dict()))
  assert run['config']['logger']['wandb'] is True
  for label, key in (('learner', 'member_0/loss'),
                     ('actor', 'member_0/episode_return')):
    with open(os.path.join(exp_dir, f'{label}.csv'), newline='') as f:
      csv_rows = list(csv.DictReader(f))
    assert csv_rows and key in csv_rows[0], label
    wandb_rows = _rows_with(run, f'{label}/step')
    assert len(wandb_rows) == len(csv_rows), label
    for csv_row, wandb_row in zip(csv_rows, wandb_rows):
      assert wandb_row[f'{label}/step'] == int(csv_row['step'])
      metrics = {k: v for k, v in csv_row.items() if k not in ('step', 'time')}
      for name, value in metrics.items():
        np.testing.assert_allclose(wandb_row[f'{label}/{name}'], float(value),
                                   rtol=1e-12, err_msg=f'{label}/{name}')


# ----------------------------------------------------------------------------
# Without wandb.


def test_without_wandb_the_run_stops_before_it_starts_in_one_line(
    tmp_path, monkeypatch):
  """Runs whether or not wandb is installed: an import of wandb fails."""
  monkeypatch.setitem(sys.modules, 'wandb', None)
  config = impala_configs.get_config('toy')
  config.logger.wandb = True
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(config)
  assert str(e.value) == config_lib.WANDB_MISSING
  assert str(e.value) == ('logger.wandb=True needs the wandb package: '
                          'pip install wandb')
  with pytest.raises(config_lib.ConfigError, match='pip install wandb'):
    mlog.MetricLogger(str(tmp_path / 'direct'), wandb=mlog.WandbOptions())
  config.logger.wandb = False
  config_lib.validate(config)  # off: wandb is not needed

  # train.py: one line, exit status 2, and no run directory.
  exp_dir = tmp_path / 'run'
  argv = ['train.py', '--config=configs/impala.py:toy', '--launcher=single',
          '--config.logger.wandb=True', f'--exp_dir={exp_dir}']
  script = ('import runpy, sys; sys.modules["wandb"] = None; '
            f'sys.argv = {argv!r}; '
            'runpy.run_path("train.py", run_name="__main__")')
  proc = subprocess.run([sys.executable, '-c', script], capture_output=True,
                        text=True, cwd=_ROOT, timeout=300, check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if 'error' in l]
  assert errors == ['train.py: error: logger.wandb=True needs the wandb '
                    'package: pip install wandb'], proc.stderr[-2000:]
  assert not exp_dir.exists()
