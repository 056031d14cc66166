"""Melting Pot's bots as held-out partners: names, missing assets, the adapter.

The official saved-model bots cannot run without Melting Pot's assets, so the
adapter is tested with a fake bot that follows meltingpot's ``Policy``
interface, seated by cross-play on a real substrate (``build_bot`` patched).
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from marl_jax import envs
from marl_jax.envs import meltingpot
from marl_jax.envs import wrappers
from marl_jax.evaluation import meltingpot_bots
from marl_jax.evaluation import report

CRAMPED = 'collaborative_cooking__cramped'
CHEF = f'{CRAMPED}__chef_0'

needs_meltingpot = pytest.mark.skipif(meltingpot.package_dir() is None,
                                      reason='dm-meltingpot is not installed')


def _one_line_error(fn, *args):
  with pytest.raises(meltingpot_bots.BotsError) as e:
    fn(*args)
  message = str(e.value)
  assert '\n' not in message
  return message


# ----------------------------------------------------------------------------
# Names.
# ----------------------------------------------------------------------------


def test_parse_is_syntax_only():
  assert meltingpot_bots.parse('runs/sp') is None
  assert meltingpot_bots.parse('scripted:random') is None
  assert meltingpot_bots.parse('meltingpot_bots:all') == ('all',)
  assert meltingpot_bots.parse('meltingpot_bots: b , a,b') == ('b', 'a')
  assert 'names no bot' in _one_line_error(meltingpot_bots.parse,
                                           'meltingpot_bots:')
  assert 'empty bot name' in _one_line_error(meltingpot_bots.parse,
                                             'meltingpot_bots:a,,b')
  assert 'all alone' in _one_line_error(meltingpot_bots.parse,
                                        'meltingpot_bots:all,a')


@needs_meltingpot
def test_all_is_the_packages_own_bot_list_of_each_substrate():
  # meltingpot's own registry, grouped by substrate here.
  configs = meltingpot_bots.bot_configs()
  by_substrate = {}
  for name, config in configs.items():
    by_substrate.setdefault(config.substrate, set()).add(name)
  assert set(by_substrate) == set(meltingpot.SUBSTRATES)
  for substrate, names in by_substrate.items():
    got = meltingpot_bots.resolve('meltingpot_bots:all',
                                  f'meltingpot/{substrate}')
    assert set(got) == names and len(got) == len(names), substrate
  assert meltingpot_bots.resolve('meltingpot_bots:all',
                                 f'meltingpot/{CRAMPED}') == tuple(
                                     f'{CRAMPED}__{b}' for b in (
                                         'apprentice_0', 'apprentice_1',
                                         'chef_0', 'chef_1'))
  # A scenario env's substrate; names as given; noop_bot on any substrate.
  assert meltingpot_bots.resolve('meltingpot_bots:all',
                                 f'meltingpot_scenario/{CRAMPED}_1') == (
                                     meltingpot_bots.bots_of(CRAMPED))
  assert meltingpot_bots.resolve(
      f'meltingpot_bots:noop_bot,{CHEF}', f'meltingpot/{CRAMPED}') == (
          'noop_bot', CHEF)


@needs_meltingpot
def test_bad_names_are_one_line_errors():
  env = f'meltingpot/{CRAMPED}'
  message = _one_line_error(meltingpot_bots.resolve,
                            f'meltingpot_bots:{CRAMPED}__chef_9', env)
  assert f"Unknown Melting Pot bot '{CRAMPED}__chef_9'" in message
  assert 'Did you mean' in message and CHEF in message
  message = _one_line_error(meltingpot_bots.resolve,
                            'meltingpot_bots:coins__puppet_cooperator_0', env)
  assert ('coins__puppet_cooperator_0 is a bot of coins, but the runs are '
          f'evaluated on {CRAMPED}') in message
  message = _one_line_error(meltingpot_bots.resolve, 'meltingpot_bots:all',
                            'toy/cue_coordination')
  assert 'Melting Pot substrates' in message
  assert 'toy/cue_coordination' in message


@needs_meltingpot
def test_names_and_missing_assets_without_tensorflow_then_the_package_agrees():
  code = (
      'import sys\n'
      'from marl_jax.envs import meltingpot\n'
      'from marl_jax.evaluation import meltingpot_bots as mb\n'
      f'names = mb.resolve("meltingpot_bots:all", "meltingpot/{CRAMPED}")\n'
      'mb.missing(names)\n'
      'try:\n'
      '  mb.check_installed(names, "meltingpot_bots:all")\n'
      'except mb.BotsError:\n'
      '  pass\n'
      'assert "tensorflow" not in sys.modules, "tensorflow was imported"\n'
      'import meltingpot.bot\n'
      'assert mb.NOOP_BOT == meltingpot.bot.NOOP_BOT_NAME\n'
      'assert meltingpot.bot.BOTS == set(mb.bot_configs()) | {mb.NOOP_BOT}\n')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]


@needs_meltingpot
def test_missing_assets_say_what_and_how_to_install():
  if meltingpot.bots_installed():
    pytest.skip('the official bots are installed')
  names = meltingpot_bots.bots_of(CRAMPED)
  assert meltingpot_bots.missing(names) == names
  assert meltingpot_bots.missing(['noop_bot']) == ()
  message = _one_line_error(meltingpot_bots.check_installed, names,
                            'meltingpot_bots:all')
  assert message.startswith('--heldout=meltingpot_bots:all needs the official '
                            'Melting Pot bots')
  assert CHEF in message and meltingpot.ASSETS_URL in message
  assert 'pip install --no-cache-dir' in message
  assert 'scripted:random' in message
  meltingpot_bots.check_installed(['noop_bot'], 'meltingpot_bots:noop_bot')


def test_installed_saved_models_pass(tmp_path, monkeypatch):

  class Config:
    substrate, roles, model_path = CRAMPED, frozenset({'default'}), str(
        tmp_path)

  monkeypatch.setattr(meltingpot_bots, 'bot_configs', lambda: {CHEF: Config})
  assert meltingpot_bots.missing([CHEF]) == ()
  meltingpot_bots.check_installed([CHEF], f'meltingpot_bots:{CHEF}')


# ----------------------------------------------------------------------------
# The adapter, on a real substrate, with a fake bot.
# ----------------------------------------------------------------------------


class FakeBot:
  """meltingpot's Policy interface: the state counts the slot's steps in the
  episode; the action is ``1 + count``. Records every call."""

  def __init__(self):
    self.calls = []
    self.closed = 0

  def initial_state(self):
    return 0

  def step(self, timestep, prev_state):
    action = 1 + prev_state
    self.calls.append((timestep, prev_state, action))
    return action, prev_state + 1

  def close(self):
    self.closed += 1


class Recorder(wrappers.Wrapper):
  """Keeps every time step returned and every joint action sent."""

  def __init__(self, env):
    super().__init__(env)
    self.timesteps, self.actions = [], []

  def reset(self):
    ts = super().reset()
    self.timesteps.append([ts])
    self.actions.append([])
    return ts

  def step(self, actions):
    self.actions[-1].append(np.array(actions))
    ts = super().step(actions)
    self.timesteps[-1].append(ts)
    return ts


@pytest.fixture
def patched_bots(monkeypatch):
  built = []

  def build_bot(name):
    built.append((name, FakeBot()))
    return built[-1][1]

  monkeypatch.setattr(meltingpot_bots, 'build_bot', build_bot)
  monkeypatch.setattr(meltingpot_bots, 'missing', lambda names: ())
  return built


@needs_meltingpot
def test_a_bot_holds_its_seat_in_cross_play_on_a_real_substrate(patched_bots):
  length = 6
  env = Recorder(envs.make(f'meltingpot/{CRAMPED}', max_episode_steps=length))
  try:
    focal = report.load_scripted('scripted:random', env, seed=0)
    bot_run = report.load_meltingpot_bot(CHEF, env)
    assert bot_run.name == f'meltingpot_bots:{CHEF}' and bot_run.size == 1
    assert [n for n, _ in patched_bots] == [CHEF]
    bot = patched_bots[0][1]
    blocks = report.evaluate_runs(env, [focal], [bot_run], 2, 'episode_return')
  finally:
    env.close()
  assert [(b.focal, b.partner) for b in blocks] == [
      ('scripted:random', 'scripted:random'),
      ('scripted:random', f'meltingpot_bots:{CHEF}')]
  # The bot block is the last two episodes: the bot in slot 1, then slot 0.
  episodes = list(zip(env.timesteps, env.actions))[-2:]
  calls = bot.calls
  assert len(calls) == 2 * length * 2  # episodes x steps x slots
  for e, (timesteps, actions) in enumerate(episodes):
    bot_slot = 1 if e == 0 else 0
    assert len(actions) == length
    # Its proposals for its seat are what the substrate was sent.
    np.testing.assert_array_equal([a[bot_slot] for a in actions],
                                  np.arange(1, length + 1))
    for t in range(length):
      for k in range(2):
        timestep, state, action = calls[(e * length + t) * 2 + k]
        # Each slot's own state, started anew every episode.
        assert state == t and action == t + 1
        # One player's dm_env time step with all the substrate's
        # observations, as meltingpot's Population gives its bots.
        assert {'RGB', 'WORLD.RGB', 'COLLECTIVE_REWARD'} <= set(
            timestep.observation)
        ours = timesteps[t]
        np.testing.assert_array_equal(timestep.observation['RGB'],
                                      ours.observation['RGB'][k])
        assert float(timestep.reward) == float(ours.reward[k])
        assert (int(timestep.step_type) == 0) == (t == 0)
  # The bot is closed with its run, once.
  report.close([bot_run])
  report.close([bot_run])
  assert bot.closed == 1


@needs_meltingpot
def test_a_bot_acts_only_on_its_own_environments_time_step(patched_bots):
  del patched_bots
  env = envs.make(f'meltingpot/{CRAMPED}', max_episode_steps=4)
  other = envs.make(f'meltingpot/{CRAMPED}', max_episode_steps=4)
  try:
    policy = meltingpot_bots.make(CHEF, env)
    ts = env.reset()
    assert policy.step(ts).shape == (2,)
    wrong = ts._replace(observation=dict(
        ts.observation, RGB=np.asarray(ts.observation['RGB']) + 1))
    with pytest.raises(RuntimeError, match='build it with the environment'):
      policy.step(wrong)
    # Another copy of the env (videos): the same bot, not closed by it.
    copy = policy.for_env(other)
    copy.step(other.reset())
    copy.close()
    assert policy._bot.closed == 0  # pylint: disable=protected-access
    policy.close()
  finally:
    env.close()
    other.close()


@needs_meltingpot
def test_env_checks_before_building(patched_bots):
  message = _one_line_error(meltingpot_bots.check_env, CHEF,
                            envs.make('toy/cue_coordination'))
  assert 'plays Melting Pot only' in message
  env = envs.make('meltingpot/daycare', max_episode_steps=4)
  try:
    message = _one_line_error(meltingpot_bots.make, 'daycare__foraging_child_0',
                              env)
    assert 'trained for the role(s) child' in message
    assert 'roles are child, parent' in message
    message = _one_line_error(meltingpot_bots.make, CHEF, env)
    assert f'{CHEF} is a bot of {CRAMPED}; the environment is daycare' in (
        message)
  finally:
    env.close()
  assert not patched_bots  # nothing was built


@needs_meltingpot
def test_report_names_a_bot_partner(tmp_path, patched_bots):
  del patched_bots
  env = envs.make(f'meltingpot/{CRAMPED}', max_episode_steps=3)
  try:
    focal = report.load_scripted('scripted:random', env, seed=0)
    bot_run = report.load_meltingpot_bot(CHEF, env)
    blocks = report.evaluate_runs(env, [focal], [bot_run], 1, 'episode_return')
  finally:
    env.close()
  runs = {r.name: r for r in (focal, bot_run)}
  paths = report.write_report(str(tmp_path), blocks, runs, CRAMPED,
                              'episode_return', 1)
  with open(paths['json']) as f:
    doc = json.load(f)
  assert doc['runs'][f'meltingpot_bots:{CHEF}'] == dict(
      exp_dir='', population_size=1, env_steps=0, scripted=False,
      meltingpot_bot=CHEF)
  assert doc['runs']['scripted:random']['scripted'] is True
  assert {p['partner_run'] for p in doc['pairs']} == {
      'scripted:random', f'meltingpot_bots:{CHEF}'}


def test_a_bot_must_have_meltingpots_policy_interface():
  with pytest.raises(meltingpot_bots.BotsError, match='has no initial_state'):
    meltingpot_bots.BotPolicy(object(), None, 'x')
