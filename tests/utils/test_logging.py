"""Tests for marl_jax.utils.logging."""

import csv
import glob
import math
import os
import struct

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c

from marl_jax.utils import logging as mlog


# ----------------------------------------------------------------------------
# Helpers.


def _read_csv(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def _read_events(run_dir):
  """Parses TFRecord event files (length, crc, data, crc) into Event protos."""
  events = []
  for path in sorted(glob.glob(os.path.join(run_dir, 'events.out.tfevents.*'))):
    with open(path, 'rb') as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      header = data[pos:pos + 8]
      (length,) = struct.unpack('<Q', header)
      (header_crc,) = struct.unpack('<I', data[pos + 8:pos + 12])
      assert header_crc == masked_crc32c(header)
      payload = data[pos + 12:pos + 12 + length]
      end = pos + 12 + length
      (payload_crc,) = struct.unpack('<I', data[end:end + 4])
      assert payload_crc == masked_crc32c(payload)
      events.append(event_pb2.Event.FromString(payload))
      pos += 16 + length
  return events


def _scalars(run_dir):
  """{tag: [(step, value), ...]} from the event files."""
  out = {}
  for event in _read_events(run_dir):
    for value in event.summary.value:
      out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out


class FakeClock:

  def __init__(self, t=1000.0):
    self.t = t

  def __call__(self):
    return self.t


# ----------------------------------------------------------------------------
# flatten_metrics.


def test_flatten_metrics_expands_members_and_keeps_scalars():
  flat = mlog.flatten_metrics({
      'loss': np.float32(0.5),
      'updates': 3,
      'lr': jnp.asarray(1e-3),
      'episode_return': np.array([1.5, -2.0, np.nan]),
      'done': True,
  })
  assert list(flat) == ['loss', 'updates', 'lr', 'member_0/episode_return',
                        'member_1/episode_return', 'member_2/episode_return',
                        'done']
  assert flat['loss'] == 0.5 and type(flat['loss']) is float
  assert flat['updates'] == 3 and type(flat['updates']) is int
  assert flat['lr'] == pytest.approx(1e-3)
  assert flat['member_1/episode_return'] == -2.0
  assert math.isnan(flat['member_2/episode_return'])
  assert flat['done'] == 1
  with pytest.raises(ValueError, match=r"'q' has shape \(2, 3\)"):
    mlog.flatten_metrics({'q': np.zeros((2, 3))})
  with pytest.raises(ValueError, match="'name' is not a number"):
    mlog.flatten_metrics({'name': 'abc'})


# ----------------------------------------------------------------------------
# MetricLogger.


def test_csv_round_trip_with_members_nan_and_new_columns(tmp_path):
  clock = FakeClock(1_700_000_000.25)
  logger = mlog.MetricLogger(tmp_path, tensorboard=False, time_fn=clock)
  logger.write('learner', 10, {'loss': 0.1 + 0.2, 'grad_norm': np.float32(1.5)})
  # Flushed on every write: readable before close().
  rows = _read_csv(tmp_path / 'learner.csv')
  assert rows == [{'step': '10', 'time': '1700000000.25',
                   'loss': '0.30000000000000004', 'grad_norm': '1.5'}]

  clock.t += 1
  logger.write('learner', 20, {'loss': float('nan'),
                               'episode_return': np.array([3.25, -1.0]),
                               'step': 7})
  clock.t += 1
  logger.write('learner', 30, {'grad_norm': float('inf')})
  logger.write('actor', 500, {'steps_per_s': 812.5})
  logger.close()
  logger.close()  # Idempotent.

  rows = _read_csv(tmp_path / 'learner.csv')
  with open(tmp_path / 'learner.csv', newline='') as f:
    header = next(csv.reader(f))
  assert header == ['step', 'time', 'loss', 'grad_norm',
                    'member_0/episode_return', 'member_1/episode_return',
                    'metric_step']
  assert [r['step'] for r in rows] == ['10', '20', '30']
  assert float(rows[0]['loss']) == 0.1 + 0.2  # Exact round trip.
  assert rows[0]['member_0/episode_return'] == ''  # Column added later.
  assert math.isnan(float(rows[1]['loss']))
  assert rows[1]['grad_norm'] == ''
  assert float(rows[1]['member_0/episode_return']) == 3.25
  assert float(rows[1]['member_1/episode_return']) == -1.0
  assert rows[1]['metric_step'] == '7'
  assert float(rows[2]['grad_norm']) == math.inf
  assert float(rows[2]['time']) == 1_700_000_002.25
  assert _read_csv(tmp_path / 'actor.csv') == [
      {'step': '500', 'time': '1700000002.25', 'steps_per_s': '812.5'}]
  assert not glob.glob(str(tmp_path / '*.tmp'))
  with pytest.raises(RuntimeError, match='closed'):
    logger.write('learner', 40, {'loss': 1.0})


def test_csv_appends_when_the_run_resumes(tmp_path):
  with mlog.MetricLogger(tmp_path, tensorboard=False,
                         time_fn=FakeClock(5.0)) as logger:
    logger.write('learner', 1, {'loss': 1.0, 'kl': 0.5})
  with open(tmp_path / 'learner.csv', 'a', newline='') as f:
    f.write('9,7.0,3.')  # A row cut short by a crash.
  with mlog.MetricLogger(tmp_path, tensorboard=False,
                         time_fn=FakeClock(6.0)) as logger:
    logger.write('learner', 2, {'kl': 0.25, 'loss': 2.0})
    logger.write('learner', 3, {'entropy': 0.75})
  rows = _read_csv(tmp_path / 'learner.csv')
  assert rows.pop(1) == {'step': '9', 'time': '7.0', 'loss': '3.', 'kl': '',
                         'entropy': ''}
  assert rows == [
      {'step': '1', 'time': '5.0', 'loss': '1.0', 'kl': '0.5', 'entropy': ''},
      {'step': '2', 'time': '6.0', 'loss': '2.0', 'kl': '0.25', 'entropy': ''},
      {'step': '3', 'time': '6.0', 'loss': '', 'kl': '', 'entropy': '0.75'},
  ]


def test_label_becomes_a_safe_file_name(tmp_path):
  logger = mlog.MetricLogger(tmp_path, tensorboard=False)
  assert (logger.csv_path('eval/cross play')
          == str(tmp_path / 'eval_cross_play.csv'))
  logger.close()


def test_tensorboard_event_file_holds_the_scalars(tmp_path):
  logger = mlog.MetricLogger(tmp_path, time_fn=FakeClock(1234.5))
  logger.write('learner', 10,
               {'loss': 0.5, 'episode_return': np.array([1.0, 2.5])})
  logger.write('learner', 20, {'loss': float('nan')})
  logger.close()
  assert glob.glob(str(tmp_path / 'events.out.tfevents.*'))
  scalars = _scalars(tmp_path)
  assert scalars['learner/loss'][0] == (10, 0.5)
  assert scalars['learner/loss'][1][0] == 20
  assert math.isnan(scalars['learner/loss'][1][1])
  assert scalars['learner/member_0/episode_return'] == [(10, 1.0)]
  assert scalars['learner/member_1/episode_return'] == [(10, 2.5)]
  wall_times = {e.wall_time for e in _read_events(tmp_path) if e.summary.value}
  assert wall_times == {1234.5}


# ----------------------------------------------------------------------------
# Formatting helpers.


@pytest.mark.parametrize('seconds, text', [
    (0, '0s'), (7.9, '7s'), (59, '59s'), (60, '1m00s'), (65, '1m05s'),
    (182, '3m02s'), (3599, '59m59s'), (3600, '1h00m'), (7384, '2h03m'),
    (86400 + 4 * 3600 + 59, '1d04h'), (-1, '?'), (math.inf, '?'),
    (math.nan, '?'),
])
def test_format_duration(seconds, text):
  assert mlog.format_duration(seconds) == text


def test_format_numbers():
  assert mlog.format_count(52000) == '52,000'
  assert mlog.format_count(1234567.9) == '1,234,567'
  assert mlog.format_rate(812.4) == '812'
  assert mlog.format_rate(12345.6) == '12,346'
  assert mlog.format_rate(3.14159) == '3.1'
  assert mlog.format_rate(None) == '?'
  assert mlog.format_number(12.345) == '12.3'
  assert mlog.format_number(-0.0421) == '-0.042'
  assert mlog.format_number(0) == '0.0'
  assert mlog.format_number(1234.5) == '1,234'
  assert mlog.format_number(float('nan')) == '-'
  assert mlog.format_number(float('-inf')) == '-inf'


def test_format_returns():
  assert mlog.format_returns([12.34, 10.06]) == 'm0 12.3 m1 10.1'
  assert mlog.format_returns(np.array([np.nan, 1.0])) == 'm0 - m1 1.0'
  many = np.arange(10, dtype=np.float32)
  assert mlog.format_returns(many) == 'mean 4.5 min 0.0 max 9.0 (10 members)'
  assert mlog.format_returns(np.full(9, np.nan)) == 'mean - (9 members)'


# ----------------------------------------------------------------------------
# ProgressLine.


def test_progress_line_cadence_speed_and_eta():
  clock, lines = FakeClock(100.0), []
  progress = mlog.ProgressLine(200_000, interval_s=10, window_s=30,
                               time_fn=clock, print_fn=lines.append)
  clock.t = 105.0
  assert progress.update(4_000, np.array([1.0, 2.0])) is None  # Too early.
  clock.t = 110.0
  line = progress.update(8_000, np.array([12.34, 10.06]))
  # 8,000 steps in 10 s = 800/s; 192,000 left / 800 = 240 s.
  assert line == ('[    10s] steps 8,000/200,000 (4%) | 800 steps/s | '
                  'return m0 12.3 m1 10.1 | ETA 4m00s')
  assert lines == [line]

  clock.t = 119.0
  assert progress.update(15_000) is None
  clock.t = 120.0  # Returns are remembered from the last call that had them.
  line = progress.update(20_000, extra={'loss': 0.25, 'updates': 1200})
  # Window starts at t=100 (< 30 s old): 20,000 / 20 s = 1,000/s;
  # 180,000 / 1,000 = 180 s.
  assert line == ('[    20s] steps 20,000/200,000 (10%) | 1,000 steps/s | '
                  'return m0 12.3 m1 10.1 | loss 0.25 | updates 1,200 | '
                  'ETA 3m00s')

  clock.t = 130.0
  progress.update(30_000)
  clock.t = 165.0  # 65 s in: the window now starts at the t=130 sample.
  line = progress.update(52_000)
  # (52,000 - 30,000) / 35 s = 628.57/s; 148,000 / 628.57 = 235.45 s.
  assert line.startswith('[  1m05s] steps 52,000/200,000 (26%) | 629 steps/s')
  assert line.endswith('| ETA 3m55s')
  assert len(lines) == 4

  clock.t = 400.0
  final = progress.final(200_000)
  # Whole run: 200,000 steps in 300 s.
  assert final == ('[  5m00s] steps 200,000/200,000 (100%) | 667 steps/s | '
                   'return m0 12.3 m1 10.1 | loss 0.25 | updates 1,200 | '
                   'done in 5m00s')
  assert lines[-1] == final


def test_progress_line_resumed_run_and_unknown_total():
  clock, lines = FakeClock(0.0), []
  progress = mlog.ProgressLine(1_000, interval_s=5, initial_steps=600,
                               time_fn=clock, print_fn=lines.append)
  clock.t = 5.0
  # Only the 100 new steps count: 20/s, 300 left -> 15 s.
  assert progress.update(700).endswith('| 20 steps/s | ETA 15s')
  clock.t = 10.0
  assert progress.update(700).endswith('| 10 steps/s | ETA 30s')

  no_total = mlog.ProgressLine(None, interval_s=1, time_fn=clock,
                               print_fn=lines.append)
  clock.t = 12.0
  assert no_total.update(50) == '[     2s] steps 50 | 25 steps/s'


def test_progress_line_stalled_run_has_unknown_eta():
  clock, lines = FakeClock(0.0), []
  progress = mlog.ProgressLine(100, interval_s=1, time_fn=clock,
                               print_fn=lines.append)
  clock.t = 3.0
  assert progress.update(0).endswith('| 0.0 steps/s | ETA ?')


def test_progress_line_default_print_flushes(capsys):
  clock = FakeClock(0.0)
  progress = mlog.ProgressLine(10, interval_s=0, time_fn=clock)
  clock.t = 2.0
  progress.update(4)
  assert capsys.readouterr().out == (
      '[     2s] steps 4/10 (40%) | 2.0 steps/s | ETA 3s\n')
