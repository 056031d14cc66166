"""Metric logging (CSV, TensorBoard, Weights & Biases) and a progress line.

`MetricLogger` writes each labelled stream of metrics (``'learner'``,
``'actor'``, ``'evaluator'``, ...) to its own CSV file in the run directory,
``<run_dir>/<label>.csv``, and all of them to TensorBoard event files in the
same directory (tags ``<label>/<key>``). One file per label keeps streams with
different columns and step counts apart, and each is a plain table that
`csv.DictReader` or pandas reads directly.

CSV robustness:

* columns are ``step``, ``time`` (unix seconds), then the metric keys in the
  order first seen (metrics themselves named ``step`` or ``time`` become
  ``metric_step`` / ``metric_time``); a row missing a key has an empty cell;
* a write with a key the file has not seen rewrites that file once with the
  union of columns (to a temporary file, then an atomic rename);
* every write is flushed, so a crash loses nothing already written;
* an existing file (a resumed run) is appended to, keeping its columns;
* floats are written with Python's shortest round-trip repr, so values read
  back exactly; non-finite values appear as ``nan`` / ``inf``.

Array metrics of shape ``[P]`` (one value per population member) are expanded
to ``member_<i>/<key>``; scalars (python or numpy/jax 0-d) are kept as they are.

TensorBoard events are written by tensorboardX's background thread and are
complete after `close()` (or its periodic flush); the CSV is the crash-safe
record.

Weights & Biases (optional, `WandbOptions`; the `wandb` package is not a
dependency) gets the same flattened metrics as ``<label>/<key>``, each plotted
against ``<label>/step``, the `step` given to `write` (W&B's own step only
counts calls: streams and processes log at unrelated steps). The loggers of one
process with the same options share one run, finished when the last of them
closes; its files are in ``<run_dir>/wandb/`` (with ``WANDB_MODE=offline``
only there, for a later ``wandb sync``).

`ProgressLine` prints one status line at a steady cadence, e.g.::

  [  1m05s] steps 52,000/200,000 (26%) | 812 steps/s | return m0 12.3 m1 10.1 | ETA 3m02s
"""

import collections
import csv
import math
import numbers
import os
import re
import threading
import time
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

__all__ = [
    'MetricLogger',
    'ProgressLine',
    'WandbOptions',
    'flatten_metrics',
    'format_count',
    'format_duration',
    'format_number',
    'format_rate',
    'format_returns',
    'wandb_options',
]

_FIXED_COLUMNS = ('step', 'time')
_MAX_MEMBERS_LISTED = 8


# ----------------------------------------------------------------------------
# Metric flattening.


def _to_scalar(key: str, value: Any) -> int | float:
  """Converts a scalar-like value to a python int or float."""
  if isinstance(value, (bool, np.bool_)):
    return int(value)
  if isinstance(value, numbers.Integral):
    return int(value)
  if isinstance(value, numbers.Real):
    return float(value)
  array = np.asarray(value)
  if array.ndim != 0 or array.dtype.kind not in 'biuf':
    raise ValueError(f'metric {key!r} is not a number: {value!r}')
  return int(array) if array.dtype.kind in 'biu' else float(array)


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, int | float]:
  """Turns scalar and per-member `[P]` metrics into a flat dict of numbers.

  Args:
    metrics: maps names to python/numpy/jax scalars or 1-D arrays with one
      value per population member.

  Returns:
    `{name: number}` for scalars and `{'member_<i>/<name>': number}` for each
    entry of a 1-D array, in the input order. Integers stay ints.

  Raises:
    ValueError: for a non-numeric value or an array of rank >= 2.
  """
  flat: dict[str, int | float] = {}
  for key, value in metrics.items():
    key = str(key)
    if isinstance(value, numbers.Number):
      flat[key] = _to_scalar(key, value)
      continue
    array = np.asarray(value)
    if array.ndim == 0:
      flat[key] = _to_scalar(key, array)
    elif array.ndim == 1:
      for i, v in enumerate(array):
        name = f'member_{i}/{key}'
        flat[name] = _to_scalar(name, v)
    else:
      raise ValueError(
          f'metric {key!r} has shape {array.shape}; expected a scalar or a '
          '[population_size] array (reduce it before logging)')
  return flat


def _csv_cell(value: int | float | None) -> str:
  if value is None:
    return ''
  return repr(value) if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------
# Weights & Biases.


class WandbOptions(NamedTuple):
  """Which Weights & Biases run a `MetricLogger` writes to.

  Every run is in the group `name`, the experiment. A logger with a `node`
  (a program node in a process of its own: launchers local and ray) has a run
  of its own, named ``<name>-<node>`` with job_type `node`; loggers without one
  share the process's run, named `name` with job_type ``'train'`` (launcher
  single, whose nodes share a process, and anakin).
  """
  project: str = 'marl_jax'
  entity: str = ''  # '': the W&B account's default entity
  name: str = ''  # the experiment; '': the run directory's basename
  tags: tuple[str, ...] = ()
  node: str = ''
  config: Mapping[str, Any] | None = None  # the run's config, logged once


def wandb_options(config, node: str | None = None) -> WandbOptions | None:
  """The W&B options of a run's config (its `logger` block); None when
  `logger.wandb` is off.

  Args:
    config: the run's config, a `ml_collections.ConfigDict` or its dict.
    node: the program node that logs ('learner', 'counter', 'evaluator'). It
      gets a run of its own only where nodes have processes of their own
      (launchers local and ray); None (anakin) or launcher single: the
      process's run.
  """
  logger = config.get('logger')
  if not (logger and logger.get('wandb', False)):
    return None
  if node is not None and config.get('launcher') == 'single':
    node = None
  tags = logger.get('wandb_tags') or ()
  tags = (tags,) if isinstance(tags, str) else tuple(str(t) for t in tags)
  as_dict = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  return WandbOptions(
      project=logger.get('wandb_project') or 'marl_jax',
      entity=logger.get('wandb_entity') or '',
      name=logger.get('wandb_name') or '', tags=tags, node=node or '',
      config=as_dict)


class _WandbRun:
  """A W&B run of this process, shared by the loggers with the same options
  and run directory, finished when the last of them releases it.

  A node's run (`WandbOptions.node`) is the only one of its process, which
  may end without running atexit hooks (multiprocessing, Ray), where W&B
  would otherwise write the rest of the run's files: so its release also
  waits for W&B to write everything (`wandb.teardown`).
  """

  _lock = threading.Lock()
  _open: dict[tuple, '_WandbRun'] = {}

  def __init__(self, key: tuple, run: Any, alone: bool):
    self._key = key
    self.run = run
    self._alone = alone  # a node's run, the only one of its process
    self._users = 0
    self._defined: set[str] = set()

  @classmethod
  def acquire(cls, run_dir: str, options: WandbOptions) -> '_WandbRun':
    key = (run_dir, options.project, options.entity, options.name,
           options.node)
    with cls._lock:
      shared = cls._open.get(key)
      if shared is None:
        run = _start_wandb_run(run_dir, options)
        shared = cls._open[key] = cls(key, run, alone=bool(options.node))
      shared._users += 1
      return shared

  def log(self, label: str, step: int,
          flat: Mapping[str, int | float]) -> None:
    """Logs one row against the label's own x-axis, ``<label>/step``."""
    step_key = f'{label}/step'
    row = {step_key: step}
    row.update((f'{label}/{"metric_step" if k == "step" else k}', v)
               for k, v in flat.items())
    with self._lock:
      for name in row:
        if name not in self._defined:
          if name == step_key:
            self.run.define_metric(name, hidden=True)
          else:
            self.run.define_metric(name, step_metric=step_key)
          self._defined.add(name)
      self.run.log(row)

  def release(self) -> None:
    with self._lock:
      self._users -= 1
      if self._users:
        return
      del self._open[self._key]
    self.run.finish()
    if self._alone:
      from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
      config_lib.import_wandb().teardown()


def _start_wandb_run(run_dir: str, options: WandbOptions) -> Any:
  """`wandb.init` for `options`, its files in ``<run_dir>/wandb``."""
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  wandb = config_lib.import_wandb()
  name = options.name or os.path.basename(run_dir)
  try:
    return wandb.init(
        project=options.project, entity=options.entity or None,
        name=f'{name}-{options.node}' if options.node else name, group=name,
        job_type=options.node or 'train', tags=list(options.tags) or None,
        config=dict(options.config or {}), dir=run_dir,
        # A run of its own, beside any the user's code has open.
        reinit='create_new')
  except wandb.errors.Error as e:
    reason = ' '.join(str(e).split()).rstrip('.')
    raise config_lib.ConfigError(
        f'logger.wandb=True: W&B could not start a run: {reason}. Or set '
        f'WANDB_MODE=offline to keep the run in {run_dir}/wandb for a later '
        '`wandb sync`.') from e


# ----------------------------------------------------------------------------
# MetricLogger.


class _CsvStream:
  """One append-only CSV file whose columns may grow."""

  def __init__(self, path: str):
    self.path = path
    self.columns: list[str] = []
    self._file = None
    if os.path.isfile(path) and os.path.getsize(path) > 0:
      with open(path, newline='') as f:
        header = next(csv.reader(f), None)
      if header and tuple(header[:len(_FIXED_COLUMNS)]) == _FIXED_COLUMNS:
        self.columns = header
        with open(path, 'rb') as f:
          f.seek(-1, os.SEEK_END)
          complete = f.read(1) == b'\n'
        self._file = open(path, 'a', newline='')
        if not complete:  # A row cut short by a crash: end it.
          self._file.write('\r\n')
    if self._file is None:  # New (or unusable) file: start afresh.
      self.columns = list(_FIXED_COLUMNS)
      self._file = open(path, 'w', newline='')
      self._write_row(self.columns)

  def _write_row(self, cells: list[str]) -> None:
    csv.writer(self._file).writerow(cells)
    self._file.flush()

  def write(self, row: Mapping[str, int | float]) -> None:
    new = [k for k in row if k not in self.columns]
    if new:
      self._grow(new)
    self._write_row([_csv_cell(row.get(c)) for c in self.columns])

  def _grow(self, new_columns: list[str]) -> None:
    """Rewrites the file with extra columns (atomically)."""
    self._file.close()
    with open(self.path, newline='') as f:
      old_rows = list(csv.reader(f))[1:]
    columns = self.columns + new_columns
    tmp = self.path + '.tmp'
    with open(tmp, 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(columns)
      pad = [''] * len(new_columns)
      for cells in old_rows:
        writer.writerow(cells + [''] * (len(self.columns) - len(cells)) + pad)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self.path)
    self.columns = columns
    self._file = open(self.path, 'a', newline='')

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None


class MetricLogger:
  """Writes labelled metrics to per-label CSV files, TensorBoard and W&B.

  Example::

    logger = MetricLogger('runs/impala_overcooked_0')
    logger.write('learner', step, {'loss': 0.3, 'episode_return': returns})
    logger.close()

  Thread-safe: one logger may be shared by the nodes of a single process.
  """

  def __init__(self, run_dir: str | os.PathLike, *, csv_files: bool = True,
               tensorboard: bool = True,
               wandb: WandbOptions | None = None,
               time_fn: Callable[[], float] = time.time):
    """Creates the run directory and the writers.

    Args:
      run_dir: directory for `<label>.csv` files and TensorBoard events.
      csv_files: write CSV files.
      tensorboard: write TensorBoard event files (via tensorboardX).
      wandb: also log to this Weights & Biases run (see `wandb_options`);
        None: no W&B.
      time_fn: wall clock for the `time` column and event timestamps.

    Raises:
      marl_jax.utils.config.ConfigError: `wandb` is given and the wandb
        package is missing, or W&B cannot start a run (e.g. not logged in).
    """
    self._run_dir = os.path.abspath(os.fspath(run_dir))
    os.makedirs(self._run_dir, exist_ok=True)
    self._wandb = (None if wandb is None else
                   _WandbRun.acquire(self._run_dir, wandb))
    self._csv_enabled = csv_files
    self._time_fn = time_fn
    self._streams: dict[str, _CsvStream] = {}
    self._lock = threading.Lock()
    self._closed = False
    self._tb = None
    if tensorboard:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._tb = tensorboardX.SummaryWriter(logdir=self._run_dir, flush_secs=10)

  @property
  def run_dir(self) -> str:
    """The absolute run directory."""
    return self._run_dir

  @property
  def wandb_run(self) -> Any:
    """The W&B run written to (a `wandb.Run`), or None."""
    return None if self._wandb is None else self._wandb.run

  def csv_path(self, label: str) -> str:
    """The CSV file that `label` is written to."""
    return os.path.join(self._run_dir, f'{_safe_label(label)}.csv')

  def write(self, label: str, step: int, metrics: Mapping[str, Any]) -> None:
    """Writes one row of metrics.

    Args:
      label: the stream, e.g. 'learner', 'actor', 'evaluator'.
      step: the x-axis value (learner steps, env steps, ...).
      metrics: scalars and `[P]` per-member arrays (see `flatten_metrics`).

    Raises:
      ValueError: bad metric values (see `flatten_metrics`).
      RuntimeError: the logger was closed.
    """
    flat = flatten_metrics(metrics)
    step = int(step)
    now = float(self._time_fn())
    with self._lock:
      if self._closed:
        raise RuntimeError(f'MetricLogger for {self._run_dir} is closed')
      if self._csv_enabled:
        stream = self._streams.get(label)
        if stream is None:
          stream = self._streams[label] = _CsvStream(self.csv_path(label))
        row = {'step': step, 'time': now}
        row.update((f'metric_{k}' if k in _FIXED_COLUMNS else k, v)
                   for k, v in flat.items())
        stream.write(row)
      if self._tb is not None:
        for key, value in flat.items():
          self._tb.add_scalar(f'{label}/{key}', float(value), step,
                              walltime=now)
      if self._wandb is not None:
        self._wandb.log(label, step, flat)

  def flush(self) -> None:
    """Asks TensorBoard to flush (CSV rows are flushed on every write)."""
    with self._lock:
      if self._tb is not None and not self._closed:
        self._tb.flush()

  def close(self) -> None:
    """Closes all files (and finishes the W&B run if no other logger of the
    process shares it); idempotent."""
    with self._lock:
      if self._closed:
        return
      self._closed = True
      for stream in self._streams.values():
        stream.close()
      if self._tb is not None:
        self._tb.close()
      if self._wandb is not None:
        self._wandb.release()

  def __enter__(self) -> 'MetricLogger':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _safe_label(label: str) -> str:
  safe = re.sub(r'[^A-Za-z0-9_.-]', '_', str(label)).strip('.')
  return safe or 'metrics'


# ----------------------------------------------------------------------------
# Formatting helpers.


def format_duration(seconds: float) -> str:
  """Formats a duration compactly: '7s', '1m05s', '2h03m', '3d04h'.

  Seconds are truncated, not rounded. Negative or non-finite inputs give '?'.
  """
  if seconds is None or not math.isfinite(seconds) or seconds < 0:
    return '?'
  s = int(seconds)
  days, s = divmod(s, 86400)
  hours, s = divmod(s, 3600)
  minutes, s = divmod(s, 60)
  if days:
    return f'{days}d{hours:02d}h'
  if hours:
    return f'{hours}h{minutes:02d}m'
  if minutes:
    return f'{minutes}m{s:02d}s'
  return f'{s}s'


def format_count(n: float) -> str:
  """Formats a count with thousands separators: 52000 -> '52,000'."""
  return f'{int(n):,}'


def format_rate(per_second: float | None) -> str:
  """Formats a speed: 812.4 -> '812', 3.14 -> '3.1', 12345.6 -> '12,346'."""
  if per_second is None or not math.isfinite(per_second):
    return '?'
  if abs(per_second) < 10:
    return f'{per_second:.1f}'
  return f'{per_second:,.0f}'


def format_number(x: float | None) -> str:
  """Formats a metric value: '12.3', '-0.042', '1,234', and '-' for NaN/None."""
  if x is None:
    return '-'
  x = float(x)
  if math.isnan(x):
    return '-'
  if math.isinf(x):
    return 'inf' if x > 0 else '-inf'
  if abs(x) >= 1000:
    return f'{x:,.0f}'
  if abs(x) >= 1 or x == 0:
    return f'{x:.1f}'
  return f'{x:.2g}'


def format_returns(member_returns: Any) -> str:
  """Formats mean returns per member: 'm0 12.3 m1 10.1'.

  Populations larger than 8 are summarised as 'mean 11.2 min 3.1 max 20.0
  (32 members)'. NaN (no finished episode yet) shows as '-'.
  """
  r = np.asarray(member_returns, dtype=np.float64).reshape(-1)
  if r.size <= _MAX_MEMBERS_LISTED:
    return ' '.join(f'm{i} {format_number(v)}' for i, v in enumerate(r))
  finite = r[np.isfinite(r)]
  if finite.size == 0:
    return f'mean - ({r.size} members)'
  return (f'mean {format_number(finite.mean())} min '
          f'{format_number(finite.min())} max {format_number(finite.max())} '
          f'({r.size} members)')


# ----------------------------------------------------------------------------
# ProgressLine.


def _default_print(line: str) -> None:
  print(line, flush=True)


class ProgressLine:
  """Prints a one-line status every `interval_s` seconds.

  The speed is measured over the last `window_s` seconds (from the newest
  printed sample at least `window_s` old, or the start), and the ETA is the
  remaining steps at that speed.

  Example::

    progress = ProgressLine(total_steps=200_000, interval_s=10)
    while ...:
      progress.update(env_steps, member_returns)
    progress.final()
  """

  def __init__(self, total_steps: int | None = None, *,
               interval_s: float = 10.0, window_s: float = 60.0,
               initial_steps: int = 0,
               time_fn: Callable[[], float] = time.monotonic,
               print_fn: Callable[[str], None] = _default_print):
    """Starts the clock.

    Args:
      total_steps: the target step count, for % and ETA; None shows neither.
      interval_s: minimum seconds between two printed lines.
      window_s: span of the recent-speed window.
      initial_steps: steps already done at construction (a resumed run), so
        they do not count towards the speed.
      time_fn: monotonic clock, injectable for tests.
      print_fn: where lines go (default: print with flush).
    """
    if interval_s < 0 or window_s <= 0:
      raise ValueError('interval_s must be >= 0 and window_s > 0, got '
                       f'{interval_s} and {window_s}')
    self._total = total_steps
    self._interval = float(interval_s)
    self._window = float(window_s)
    self._time_fn = time_fn
    self._print_fn = print_fn
    self._start_time = float(time_fn())
    self._initial_steps = int(initial_steps)
    self._samples = collections.deque([(self._start_time, self._initial_steps)])
    self._last_print = self._start_time
    self._last_steps = self._initial_steps
    self._last_returns = None
    self._last_extra: Mapping[str, Any] | None = None

  def _recent_rate(self, now: float, steps: int) -> float | None:
    while len(self._samples) > 1 and self._samples[1][0] <= now - self._window:
      self._samples.popleft()
    t0, s0 = self._samples[0]
    return (steps - s0) / (now - t0) if now > t0 else None

  def format_line(self, now: float, steps: int, rate: float | None,
                  member_returns: Any = None,
                  extra: Mapping[str, Any] | None = None,
                  done: bool = False) -> str:
    """Builds the status line (pure; exposed for tests and custom output)."""
    parts = [f'[{format_duration(now - self._start_time):>7}] steps '
             + format_count(steps)]
    if self._total:
      pct = int(100 * steps // self._total)
      parts[0] += f'/{format_count(self._total)} ({pct}%)'
    parts.append(f'{format_rate(rate)} steps/s')
    if member_returns is not None:
      parts.append('return ' + format_returns(member_returns))
    for key, value in (extra or {}).items():
      parts.append(f'{key} {_format_extra(value)}')
    if done:
      parts.append(f'done in {format_duration(now - self._start_time)}')
    elif self._total:
      remaining = max(self._total - steps, 0)
      eta = (remaining / rate if rate and rate > 0
             else (0.0 if remaining == 0 else None))
      parts.append(f'ETA {format_duration(eta) if eta is not None else "?"}')
    return ' | '.join(parts)

  def update(self, env_steps: int, member_returns: Any = None,
             extra: Mapping[str, Any] | None = None) -> str | None:
    """Records progress; prints a line if `interval_s` has passed.

    Args:
      env_steps: total environment steps so far (including `initial_steps`).
      member_returns: mean recent episode return per member, shape [P], or
        None. NaN entries show as '-'.
      extra: more `name: value` pairs to show, e.g. {'loss': 0.31}.

    Returns:
      The printed line, or None if nothing was printed.
    """
    now = float(self._time_fn())
    self._last_steps = int(env_steps)
    if member_returns is not None:
      self._last_returns = np.asarray(member_returns)
    if extra is not None:
      self._last_extra = dict(extra)
    if now - self._last_print < self._interval:
      return None
    rate = self._recent_rate(now, self._last_steps)
    line = self.format_line(now, self._last_steps, rate, self._last_returns,
                            self._last_extra)
    self._samples.append((now, self._last_steps))
    self._last_print = now
    self._print_fn(line)
    return line

  def final(self, env_steps: int | None = None, member_returns: Any = None,
            extra: Mapping[str, Any] | None = None) -> str:
    """Prints a last line with the average speed of the whole run.

    Args:
      env_steps: final step count (default: the last one given to `update`).
      member_returns: final returns per member (default: the last ones).
      extra: final extra values (default: the last ones).

    Returns:
      The printed line.
    """
    now = float(self._time_fn())
    if env_steps is not None:
      self._last_steps = int(env_steps)
    if member_returns is not None:
      self._last_returns = np.asarray(member_returns)
    if extra is not None:
      self._last_extra = dict(extra)
    elapsed = now - self._start_time
    rate = ((self._last_steps - self._initial_steps) / elapsed
            if elapsed > 0 else None)
    line = self.format_line(now, self._last_steps, rate, self._last_returns,
                            self._last_extra, done=True)
    self._print_fn(line)
    return line


def _format_extra(value: Any) -> str:
  if isinstance(value, str):
    return value
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, numbers.Integral):
    return format_count(value)
  try:
    return format_number(float(value))
  except (TypeError, ValueError):
    return str(value)
