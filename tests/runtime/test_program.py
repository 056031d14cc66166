"""The distributed program: courier calls, the replay node, the launchers."""

import os
import pickle
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from configs import impala as impala_configs
from marl_jax.replay.server import ReplayNode
from marl_jax.replay.table import ReplayTimeoutError, TableSpec
from marl_jax.runtime import courier, launchers, program as program_lib
from marl_jax.runtime.launchers import local


class Echo:
  """A node object for courier tests."""

  def __init__(self):
    self.release = threading.Event()

  def add(self, a, b=0):
    return a + b

  def fail(self):
    raise ReplayTimeoutError('starved: table member_0 has 0 of 32 items')

  def wait(self):
    self.release.wait(10)
    return 'released'

  def free(self):
    self.release.set()
    return True


@pytest.fixture
def echo_server(tmp_path):
  obj = Echo()
  server = courier.Server(obj, str(tmp_path / 'echo.sock'))
  yield obj, server
  server.close()


def test_courier_calls_return_results_and_raise_remote_errors(echo_server):
  _, server = echo_server
  client = courier.Client(server.address, 'echo')
  assert client.add(2, b=3) == 5
  big = np.arange(200_000, dtype=np.float32)
  np.testing.assert_array_equal(client.add(big, 1), big + 1)
  with pytest.raises(ReplayTimeoutError, match='starved') as info:
    client.fail()
  assert "Raised in node 'echo'" in str(info.value.__notes__[0])
  with pytest.raises(AttributeError):
    client.call('_private')
  # A handle travels to other processes as its address.
  clone = pickle.loads(pickle.dumps(client))
  assert clone.add(1, 1) == 2


def test_courier_serves_each_connection_in_its_own_thread(echo_server):
  _, server = echo_server
  client = courier.Client(server.address, 'echo')
  out = {}
  waiter = threading.Thread(target=lambda: out.update(r=client.wait()))
  waiter.start()
  time.sleep(0.2)
  assert waiter.is_alive()  # Blocked in the server...
  assert client.free()  # ...while another call from another thread gets in.
  waiter.join(5)
  assert out['r'] == 'released'


def test_courier_client_names_a_node_that_is_not_there(tmp_path):
  client = courier.Client(str(tmp_path / 'none.sock'), 'replay',
                          connect_timeout=0.3)
  with pytest.raises(courier.NodeUnavailableError, match="'replay'"):
    client.add(1)


def _replay(population_size=2, sampler='fifo', batch_size=2, max_size=4):
  spec = TableSpec(sampler=sampler, item='sequence', sequence_length=3,
                   batch_size=batch_size, max_size=max_size)
  config = dict(population_size=population_size, seed=0)
  return ReplayNode(config, table_spec=spec)


def _item(x):
  return {'x': np.full((3,), x, np.float32)}


def test_replay_node_stacks_each_members_queue_in_order():
  replay = _replay()
  assert replay.insert([(0, _item(1)), (1, _item(10)), (0, _item(2)),
                        (1, _item(20)), (0, _item(3))]) == []
  items, info = replay.sample(timeout=1)
  assert items['x'].shape == (2, 2, 3)  # [P, B, ...]
  np.testing.assert_array_equal(items['x'][:, :, 0], [[1, 2], [10, 20]])
  assert info['keys'].shape == (2, 2)
  assert replay.info()['sizes'] == [1, 0]


def test_replay_node_timeouts_lose_nothing():
  replay = _replay(max_size=2)
  # A full queue: the insert reports what went in, the writer keeps the rest.
  assert replay.insert([(0, _item(1)), (0, _item(2)), (0, _item(3))],
                       timeout=0.3) == [2]
  # Member 1 has nothing: the sample times out, member 0's batch is held.
  with pytest.raises(ReplayTimeoutError):
    replay.sample(timeout=0.3)
  assert replay.insert([(0, _item(3)), (1, _item(10)), (1, _item(11))]) == []
  items, _ = replay.sample(timeout=1)
  np.testing.assert_array_equal(items['x'][:, :, 0], [[1, 2], [10, 11]])
  assert replay.insert([(0, _item(4)), (1, _item(12)), (1, _item(13))]) == []
  items, _ = replay.sample(timeout=1)
  np.testing.assert_array_equal(items['x'][:, :, 0], [[3, 4], [12, 13]])


def test_a_full_member_queue_does_not_hold_up_the_others():
  replay = _replay(max_size=2)
  # Member 0's queue fills after two items; member 1's items behind them still
  # go in, each member's in order, and member 0's third comes back.
  left = replay.insert([(0, _item(1)), (0, _item(2)), (0, _item(3)),
                        (1, _item(10)), (1, _item(11))], timeout=0.3)
  assert left == [2]
  items, _ = replay.sample(timeout=1)
  np.testing.assert_array_equal(items['x'][:, :, 0], [[1, 2], [10, 11]])


def test_replay_node_breaks_a_population_deadlock_by_dropping_the_oldest():
  replay = _replay(max_size=2)
  replay.insert([(0, _item(1)), (0, _item(2))])
  # The learner takes member 0's batch and waits for member 1's...
  out = {}
  sampler = threading.Thread(
      target=lambda: out.update(batch=replay.sample(timeout=5)))
  sampler.start()
  time.sleep(0.2)
  # ...while a writer fills member 0's queue and gets stuck on it: its insert
  # goes in by dropping member 0's oldest item instead of waiting for ever.
  assert replay.insert([(0, _item(3)), (0, _item(4)), (0, _item(5))],
                       timeout=3) == []
  assert replay.info()['dropped'] == 1
  replay.insert([(1, _item(10)), (1, _item(11))])
  sampler.join(5)
  np.testing.assert_array_equal(out['batch'][0]['x'][:, :, 0],
                                [[1, 2], [10, 11]])
  assert replay.info()['sizes'] == [2, 0]  # 4 and 5 kept, 3 dropped


def test_replay_node_uniform_and_prioritized_tables():
  for sampler in ('uniform', 'prioritized'):
    replay = _replay(sampler=sampler, population_size=1, max_size=8)
    with pytest.raises(ReplayTimeoutError):  # min size = batch size
      replay.sample(timeout=0.1)
    replay.insert([(0, _item(i)) for i in range(5)])
    for _ in range(3):
      items, info = replay.sample(timeout=1)
      assert set(items['x'][0, :, 0]) <= set(range(5))
      np.testing.assert_allclose(info['probabilities'], 0.2)
    assert replay.info()['sizes'] == [5]  # sampling does not consume


def test_replay_node_rejects_an_unknown_member():
  with pytest.raises(ValueError, match='member 3'):
    _replay().insert([(3, _item(0))])


def test_make_program_has_the_node_groups_of_the_design(tmp_path):
  config = impala_configs.get_config('toy')
  config.num_actors = 3
  prog = program_lib.make_program(config, str(tmp_path))
  assert list(prog.groups) == ['counter', 'replay', 'learner', 'actor',
                               'evaluator']
  assert [n.label for n in prog.groups['actor']] == ['actor_0', 'actor_1',
                                                     'actor_2']
  learner = prog.groups['learner'][0]
  # Handles refer to the nodes they name.
  handles = [a for a in learner.args if isinstance(a, program_lib.Handle)]
  assert [h.node.label for h in handles] == ['replay', 'counter']
  config.eval_every_updates = 0
  assert 'evaluator' not in program_lib.make_program(config, str(tmp_path)).groups


def test_the_replay_node_builds_the_algorithms_table_in_its_own_process(
    tmp_path):
  """make_program passes the replay node a function of the config, not a
  TableSpec: the algorithm is built where the node runs."""
  from marl_jax.runtime import learner as learner_lib  # pylint: disable=g-import-not-at-top
  config = impala_configs.get_config('toy')
  replay = program_lib.make_program(config, str(tmp_path)).groups['replay'][0]
  assert replay.constructor is ReplayNode
  assert replay.args[1] is learner_lib.replay_table
  node = ReplayNode(*replay.args, **replay.kwargs)
  _, algorithm = learner_lib.spec_and_algorithm(config)
  assert node.spec == algorithm.replay_table
  assert node.info()['sizes'] == [0] * config.population_size


def _toy_config(launcher, num_steps=12_000, algo='impala'):
  if algo == 'opre':
    from configs import opre as opre_configs  # pylint: disable=g-import-not-at-top
    config = opre_configs.get_config('toy')
  else:
    config = impala_configs.get_config('toy')
  config.launcher = launcher
  config.num_steps = num_steps
  config.num_actors = 2
  config.num_envs_per_actor = 4
  config.progress_every_s = 60.
  config.eval_every_updates = 50
  return config


def _child_pids(pid):
  """Live child processes of ``pid``, but multiprocessing's resource tracker."""
  out = []
  for entry in os.listdir('/proc'):
    if entry.isdigit():
      try:
        with open(f'/proc/{entry}/stat') as f:
          fields = f.read().rsplit(')', 1)[1].split()
        with open(f'/proc/{entry}/cmdline') as f:
          cmdline = f.read()
      except OSError:
        continue
      if (int(fields[1]) == pid and fields[0] != 'Z' and
          'resource_tracker' not in cmdline):
        out.append(int(entry))
  return out


# toy/cue_coordination: 16 steps, 4 actions, reward 1 when both agents play
# the observed cue. Random play gets 16 / 4**2 = 1; a policy that ignores the
# cue gets at most 4 (the cue cycles through every action, whatever the step);
# optimal play 16. IMPALA reaches > 12 in 12k steps through local and ray
# (11.96 once under single, whose synchronous loop differs), so its bar is 11.
# OPRE (4 options, the posterior on GLOBAL from the global_state wrapper)
# reached 15.4-15.8 in 8 of 9 local runs of 12k steps and 11.8 in one, so its
# bar is 10. Both are well above what any cue-blind policy can get (4).
_TOY_MIN_RETURN = {'impala': 11., 'opre': 10.}


@pytest.mark.parametrize('launcher,algo', [('single', 'impala'),
                                           ('local', 'impala'),
                                           ('ray', 'impala'),
                                           ('local', 'opre')])
def test_program_learns_the_toy_game_and_writes_a_loadable_run(tmp_path,
                                                               launcher, algo):
  """The same program (the same node classes) under every launcher."""
  if launcher == 'ray':
    pytest.importorskip('ray')
  from marl_jax import run_dir  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  config = _toy_config(launcher, algo=algo)
  exp_dir = str(tmp_path / 'run')
  os.makedirs(exp_dir)
  with open(os.path.join(exp_dir, 'config.json'), 'w') as f:
    f.write(config_lib.to_json(config))
  result = launchers.run(config, exp_dir)
  assert not result.interrupted
  assert result.env_steps >= config.num_steps
  # Every update consumes batch_size sequences of T steps (one agent each).
  per_update = config.batch_size * config.sequence_length / 2
  assert result.learner_steps >= 0.5 * config.num_steps / per_update
  assert result.member_returns[0] > _TOY_MIN_RETURN[algo]  # of 16; random ~1
  for name in ('learner.csv', 'actor.csv', 'evaluator.csv'):
    assert os.path.getsize(os.path.join(exp_dir, name)) > 0, name
  _, algorithm, params, meta = run_dir.load_run(exp_dir)
  assert algorithm.name == algo
  assert meta['learner_steps'] == result.learner_steps
  assert meta['env_steps'] >= config.num_steps
  assert not _child_pids(os.getpid()) or launcher == 'ray'


def test_a_failing_node_stops_the_program_and_is_named(tmp_path):
  config = _toy_config('local')
  config.env = 'overcooked/cramped_room'  # the actors' envs...
  config.env_kwargs = {}
  prog = program_lib.make_program(config, str(tmp_path))
  # ...but actor_1 gets a config whose environment cannot be built.
  bad = dict(prog.groups['actor'][1].args[0])
  bad['env_kwargs'] = {'horizon': -1}
  node = prog.groups['actor'][1]
  node.args = (bad,) + node.args[1:]
  t0 = time.monotonic()
  with pytest.raises(program_lib.ProgramError,
                     match="Node 'actor_1' failed"):
    local.launch(prog)
  assert time.monotonic() - t0 < 120
  time.sleep(0.5)
  assert not _child_pids(os.getpid())  # nothing left running


class _Idle:
  """A node that runs until the program stops (process-title test)."""

  def __init__(self, counter):
    self._counter = counter

  def run(self):
    while not self._counter.should_stop():
      time.sleep(0.05)
    return {}


def _proc_names(pid):
  with open(f'/proc/{pid}/cmdline', 'rb') as f:
    cmdline = f.read().replace(b'\0', b' ').decode().strip()
  with open(f'/proc/{pid}/comm') as f:
    comm = f.read().strip()
  return cmdline, comm


def test_node_processes_are_named_after_their_nodes(tmp_path):
  """Under the local launcher ``ps`` shows ``marl_jax actor_0`` (the command
  line) and ``top`` ``actor_0`` (the comm name), not ``spawn_main``."""
  from marl_jax.runtime.counter import Counter  # pylint: disable=g-import-not-at-top
  prog = program_lib.Program('titles')
  counter = prog.add_node(program_lib.CourierNode(
      Counter, dict(num_steps=10, population_size=1), str(tmp_path)),
                          label='counter')
  prog.add_node(program_lib.CourierNode(_Idle, counter), label='learner')
  with prog.group('actor'):
    for _ in range(2):
      prog.add_node(program_lib.CourierNode(_Idle, counter))
  pids, names = {}, {}

  def named(_):
    for label, pid in pids.items():
      try:
        names[label] = _proc_names(pid)
      except OSError:
        pass
    return all(names.get(label, ('', ''))[0] == f'marl_jax {label}'
               for label in pids)

  out = local.launch(prog, stop_when=named, progress_every_s=0.2,
                     on_start=lambda label, pid: pids.update({label: pid}))
  assert set(pids) == {'counter', 'learner', 'actor_0', 'actor_1'}
  for label in pids:
    assert names[label] == (f'marl_jax {label}', label), names
  assert set(out['results']) == {'learner', 'actor_0', 'actor_1'}
  assert not _child_pids(os.getpid())


def test_an_unreachable_ray_address_is_one_clear_error():
  """A quick TCP check before ray.init, which would retry for ever."""
  pytest.importorskip('ray')
  from marl_jax.runtime.launchers import ray as ray_launcher  # pylint: disable=g-import-not-at-top
  assert ray_launcher._host_and_port('10.0.0.1:6380') == ('10.0.0.1', 6380)  # pylint: disable=protected-access
  assert ray_launcher._host_and_port('ray://head:10001') == ('head', 10001)  # pylint: disable=protected-access
  assert ray_launcher._host_and_port('[::1]:7000') == ('::1', 7000)  # pylint: disable=protected-access
  assert ray_launcher._host_and_port('auto') is None  # pylint: disable=protected-access
  for address, says in [('127.0.0.1:1', 'no Ray cluster reachable'),
                        ('no-such-host.invalid:6379', 'cannot resolve host'),
                        ('127.0.0.1:port', 'is not a port')]:
    t0 = time.monotonic()
    with pytest.raises(program_lib.ProgramError, match=says) as info:
      ray_launcher.check_reachable(address, timeout=2.)
    assert time.monotonic() - t0 < 15
    assert f'--ray_address={address}' in str(info.value)
    assert '\n' not in str(info.value)


def test_train_py_fails_fast_on_an_unreachable_ray_address(tmp_path):
  """Ray alone would retry 127.0.0.1:1 without end: train.py exits non-zero
  within 30 s with one line naming the address."""
  pytest.importorskip('ray')
  root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
  t0 = time.monotonic()
  proc = subprocess.run(
      [sys.executable, 'train.py', '--launcher=ray',
       '--ray_address=127.0.0.1:1', '--config=configs/impala.py:toy',
       '--num_steps=1000', f'--exp_dir={tmp_path / "run"}'],
      cwd=root, capture_output=True, text=True, timeout=60)
  took = time.monotonic() - t0
  assert proc.returncode != 0, proc.stdout + proc.stderr
  assert took < 30, took
  errors = [l for l in proc.stderr.splitlines() if 'error' in l.lower()]
  assert len(errors) == 1, proc.stderr
  assert errors[0].startswith('train.py: error: --ray_address=127.0.0.1:1')
  assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('launcher', ['local', 'ray'])
def test_a_killed_actor_is_restarted_and_the_counts_carry_on(tmp_path,
                                                              launcher):
  """SIGKILL to an actor's process mid-run: the launcher starts it again, the
  counter keeps its totals, and training runs to the end."""
  import csv  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  if launcher == 'ray':
    pytest.importorskip('ray')
    from marl_jax.runtime.launchers import ray as launch_lib  # pylint: disable=g-import-not-at-top
  else:
    launch_lib = local
  config = _toy_config(launcher, num_steps=10_000)
  config.eval_every_updates = 0
  exp_dir = str(tmp_path / 'run')
  prog = program_lib.make_program(config, exp_dir)
  pids = {}
  starts = []
  seen = []
  at_kill = {}

  def on_start(label, pid):
    pids[label] = pid
    starts.append(label)

  def progress(counts):
    seen.append(counts)
    if not at_kill and counts['env_steps'] >= 3_000:
      at_kill.update(counts, pid=pids['actor_0'])
      os.kill(pids['actor_0'], signal.SIGKILL)

  out = launch_lib.launch(prog, progress=progress, progress_every_s=0.2,
                          on_start=on_start)
  assert at_kill, 'the run ended before the kill'
  assert not os.path.exists(f'/proc/{at_kill["pid"]}') or launcher == 'ray'
  counts = out['counts']
  assert counts['env_steps'] >= config.num_steps
  assert counts['learner_steps'] > at_kill['learner_steps']
  # The counter was never reset: its totals only grew, through the kill.
  steps = [c['env_steps'] for c in seen]
  assert steps == sorted(steps)
  with open(os.path.join(exp_dir, 'actor.csv')) as f:
    logged = [float(r['step']) for r in csv.DictReader(f)]
  assert logged == sorted(logged) and logged[-1] >= at_kill['env_steps']
  # actor_0's run() finished: in its second life (Ray raises for a dead
  # actor's task unless it restarted it and ran the task again).
  assert out['results']['actor_0']['env_steps'] > 0
  if launcher == 'local':
    assert out['restarts'] == {'actor_0': 1}
    assert starts.count('actor_0') == 2 and pids['actor_0'] != at_kill['pid']
  assert not _child_pids(os.getpid()) or launcher == 'ray'


def test_resumed_program_continues_counting_from_its_checkpoint(tmp_path):
  config = _toy_config('local', num_steps=4_000)
  config.eval_every_updates = 0
  exp_dir = str(tmp_path / 'run')
  first = launchers.run(config, exp_dir)
  config.num_steps = 8_000
  second = launchers.run(config, exp_dir, resume=True)
  assert second.env_steps >= 8_000
  assert second.learner_steps > first.learner_steps


def test_ctrl_c_stops_every_node_after_a_final_checkpoint(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
  exp_dir = str(tmp_path / 'run')
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  proc = subprocess.Popen(
      [sys.executable, 'train.py', '--config=configs/impala.py:toy',
       '--num_steps=100000000', f'--exp_dir={exp_dir}', '--launcher=local'],
      cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True)
  deadline = time.monotonic() + 120
  learner_csv = os.path.join(exp_dir, 'learner.csv')
  while not (os.path.exists(learner_csv) and os.path.getsize(learner_csv)):
    assert proc.poll() is None and time.monotonic() < deadline
    time.sleep(0.5)
  children = _child_pids(proc.pid)
  assert len(children) >= 5  # counter, replay, learner, 2 actors, evaluator
  proc.send_signal(2)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out
  assert 'interrupted' in out and 'Traceback' not in out
  assert os.listdir(os.path.join(exp_dir, 'checkpoints'))
  time.sleep(0.5)
  alive = [c for c in children if os.path.exists(f'/proc/{c}')]
  assert not alive, f'orphans: {alive}'


_FAIL_LEARNER = """
import os
if os.environ.get('MARL_JAX_TEST_FAIL_LEARNER_AT'):
  from marl_jax.runtime import learner as _learner
  _update = _learner.Learner.update
  _at = int(os.environ['MARL_JAX_TEST_FAIL_LEARNER_AT'])

  def _failing_update(self, batch):
    if self.steps >= _at:
      raise FloatingPointError(f'injected learner failure at update {_at}')
    return _update(self, batch)

  _learner.Learner.update = _failing_update
"""


def test_a_learner_error_stops_every_node_and_train_py_exits_nonzero(
    tmp_path):
  """The learner raises mid-run (injected into every process of train.py by
  a sitecustomize on PYTHONPATH): every node stops, train.py exits 1 and
  prints the learner's error, and no process is left."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
  inject = tmp_path / 'inject'
  inject.mkdir()
  (inject / 'sitecustomize.py').write_text(_FAIL_LEARNER)
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  env['PYTHONPATH'] = os.pathsep.join(
      [str(inject), root] + [p for p in [env.get('PYTHONPATH')] if p])
  env['MARL_JAX_TEST_FAIL_LEARNER_AT'] = '30'
  exp_dir = str(tmp_path / 'run')
  proc = subprocess.Popen(
      [sys.executable, 'train.py', '--config=configs/impala.py:toy',
       '--num_steps=100000000', f'--exp_dir={exp_dir}', '--launcher=local'],
      cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True)
  children = []
  deadline = time.monotonic() + 120
  while proc.poll() is None and time.monotonic() < deadline:
    children = sorted(set(children) | set(_child_pids(proc.pid)))
    time.sleep(0.2)
  out, _ = proc.communicate(timeout=60)
  assert proc.returncode == 1, out
  assert "Node 'learner' failed" in out, out
  assert 'FloatingPointError: injected learner failure at update 30' in out
  assert len(children) >= 5  # counter, replay, learner, 2 actors, evaluator
  deadline = time.monotonic() + 30
  alive = children
  while alive and time.monotonic() < deadline:
    time.sleep(0.5)
    alive = [c for c in children if os.path.exists(f'/proc/{c}')]
  assert not alive, f'orphans: {alive}'


@pytest.mark.parametrize('prioritized', [True, False])
def test_qmix_learns_from_joint_episodes_through_the_local_program(
    tmp_path, prioritized):
  """Actors write whole joint episodes; the learner samples a prioritized (or
  uniform) episode table, weights and re-prioritizes it."""
  import csv  # pylint: disable=g-import-not-at-top
  from configs import qmix as qmix_configs  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import make_jax  # pylint: disable=g-import-not-at-top
  config = qmix_configs.get_config('toy')
  config.prioritized_replay = prioritized
  config.progress_every_s = 60.
  exp_dir = str(tmp_path / 'run')
  result = launchers.run(config, exp_dir)
  optimal = make_jax(config.env).optimal_return
  assert result.member_returns[0] >= 0.8 * optimal, result.member_returns
  with open(os.path.join(exp_dir, 'learner.csv')) as f:
    rows = list(csv.DictReader(f))
  assert rows and 'priorities' not in rows[0]
  assert all(np.isfinite(float(r['member_0/loss'])) for r in rows)
