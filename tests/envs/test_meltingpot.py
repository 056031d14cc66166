"""Melting Pot substrates and scenarios through our contract.

Substrates take 0.1-1 s to build, so environments are shared per module and
stepped only a few times; the TensorFlow check runs in a subprocess.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from marl_jax import envs
from marl_jax.envs import meltingpot
from marl_jax.envs.meltingpot import env as meltingpot_env
from marl_jax.types import StepType

if meltingpot.package_dir() is None:
  pytest.skip('dm-meltingpot is not installed (pip install -r '
              'requirements.txt installs it)', allow_module_level=True)

CRAMPED = 'collaborative_cooking__cramped'  # RGB only: INVENTORY etc. zeroed
RPS = 'running_with_scissors_in_the_matrix__repeated'  # INVENTORY [3], READY
COINS = 'coins'  # rewards come quickly under random play
# Several observation layouts: RGB only; INVENTORY and READY_TO_SHOOT;
# READY_TO_SHOOT only with 7 players.
SPEC_SUBSTRATES = (CRAMPED, RPS, 'commons_harvest__open', COINS)


@pytest.fixture(scope='module')
def substrate_envs():
  built = {name: envs.make(f'meltingpot/{name}', seed=0)
           for name in SPEC_SUBSTRATES}
  yield built
  for env in built.values():
    env.close()


def check_timestep(ts, spec):
  assert set(ts.observation) == set(spec.observation)
  for key, s in spec.observation.items():
    value = np.asarray(ts.observation[key])
    assert value.shape == (spec.num_agents,) + tuple(s.shape), key
    assert value.dtype == s.dtype, key
  assert ts.reward.shape == (spec.num_agents,)
  assert ts.reward.dtype == np.float32
  assert np.asarray(ts.discount).dtype == np.float32
  assert set(ts.info) == set(spec.info_keys)
  for value in ts.info.values():
    assert value.shape == (spec.num_agents,) and value.dtype == np.float32


def test_every_substrate_and_scenario_is_registered():
  names = envs.list_envs()
  for name in ('meltingpot/clean_up', f'meltingpot/{CRAMPED}',
               'meltingpot_scenario/clean_up_0'):
    assert name in names
  assert len(meltingpot.SUBSTRATES) == 49
  assert len(meltingpot.SCENARIOS) == 312


def test_fallback_names_match_the_installed_package():
  assert (meltingpot_env._fallback_names()  # pylint: disable=protected-access
          == (meltingpot.SUBSTRATES, meltingpot.SCENARIOS))


@pytest.mark.parametrize('name', SPEC_SUBSTRATES)
def test_spec_matches_timesteps(substrate_envs, name):
  env = substrate_envs[name]
  spec = env.spec()
  assert spec.num_agents == len(env.roles)
  assert set(spec.observation) == {'RGB', 'INVENTORY', 'READY_TO_SHOOT',
                                   'COLLECTIVE_REWARD', 'GLOBAL'}
  ts = env.reset()
  assert ts.step_type == StepType.FIRST and (ts.reward == 0).all()
  rng = np.random.default_rng(0)
  for _ in range(3):
    check_timestep(ts, spec)
    ts = env.step(rng.integers(0, spec.num_actions, size=spec.num_agents))
    assert ts.step_type == StepType.MID and ts.discount == 1.0
  check_timestep(ts, spec)


def test_zero_filled_and_real_keys(substrate_envs):
  cramped, rps = substrate_envs[CRAMPED], substrate_envs[RPS]
  assert cramped.zero_filled == ('INVENTORY', 'READY_TO_SHOOT')
  assert cramped.spec().observation['INVENTORY'].shape == (1,)
  assert cramped.spec().observation['READY_TO_SHOOT'].shape == ()
  ts = cramped.step(np.array([1, 2]))
  assert not ts.observation['INVENTORY'].any()
  assert not ts.observation['READY_TO_SHOOT'].any()
  assert rps.zero_filled == ()
  assert rps.spec().observation['INVENTORY'].shape == (3,)
  assert set(substrate_envs['commons_harvest__open'].zero_filled) == {
      'INVENTORY'}


def test_global_is_the_world_frame_and_optional(substrate_envs):
  env = substrate_envs[RPS]
  ts = env.step(np.array([3, 4]))
  frame = env.render()
  assert frame.dtype == np.uint8 and frame.shape == tuple(
      env.spec().observation['GLOBAL'].shape)
  assert frame.shape[:2] != env.spec().observation['RGB'].shape[:2]
  for i in range(env.spec().num_agents):
    np.testing.assert_array_equal(ts.observation['GLOBAL'][i], frame)
  assert not ts.observation['GLOBAL'].flags.writeable
  bare = envs.make(f'meltingpot/{CRAMPED}', global_state='none')
  assert 'GLOBAL' not in bare.spec().observation
  assert 'GLOBAL' not in bare.reset().observation
  bare.close()


def test_collective_reward_is_the_sum_of_rewards(substrate_envs):
  env = substrate_envs[COINS]
  env.reset()
  rng = np.random.default_rng(1)
  rewarded = 0
  for _ in range(150):
    ts = env.step(rng.integers(0, env.spec().num_actions, size=2))
    np.testing.assert_allclose(ts.observation['COLLECTIVE_REWARD'],
                               np.full(2, ts.reward.sum()))
    rewarded += bool(ts.reward.any())
  assert rewarded > 0


def test_episode_ends_at_the_horizon_and_restarts():
  env = envs.make(f'meltingpot/{CRAMPED}', max_episode_steps=5)
  assert env.spec().max_episode_steps == 5
  env.reset()
  noop = np.zeros(2, np.int32)
  steps = [env.step(noop) for _ in range(5)]
  assert [int(ts.step_type) for ts in steps] == [StepType.MID] * 4 + [
      StepType.LAST]
  assert steps[-1].discount == 1.0  # a time limit, not a termination
  ts = env.step(noop)  # a step after LAST starts the next episode
  assert ts.step_type == StepType.FIRST and (ts.reward == 0).all()
  assert env.step(noop).step_type == StepType.MID
  env.close()


def test_default_horizon_is_the_substrates(substrate_envs):
  env = substrate_envs[CRAMPED]
  assert env.spec().max_episode_steps == 1000
  env.reset()
  noop = np.zeros(2, np.int32)
  types = [int(env.step(noop).step_type) for _ in range(1000)]
  assert types[-1] == StepType.LAST and StepType.LAST not in types[:-1]


def test_seed_leaves_the_global_random_state_alone():
  import random  # pylint: disable=g-import-not-at-top
  random.seed(123)
  expected = random.random()
  random.seed(123)
  envs.make(f'meltingpot/{COINS}', seed=7).close()
  assert random.random() == expected


def test_scenario_reports_focal_and_background_rewards_apart():
  env = envs.make('meltingpot_scenario/coins_0', background='random', seed=1)
  spec = env.spec()
  assert env.is_focal.tolist() == [True, False]
  assert spec.num_agents == 1 and spec.info_keys == ('background_reward',)
  full = []  # every player's reward, as the substrate gave them
  env.meltingpot_env.observables().substrate.timestep.subscribe(
      lambda ts: full.append(np.asarray(ts.reward, np.float32)))
  ts = env.reset()
  check_timestep(ts, spec)
  rng = np.random.default_rng(0)
  focal_rewarded = background_rewarded = 0
  for _ in range(300):
    ts = env.step(rng.integers(0, spec.num_actions, size=1))
    check_timestep(ts, spec)
    np.testing.assert_array_equal(ts.reward, full[-1][env.is_focal])
    np.testing.assert_array_equal(env.last_background_rewards,
                                  full[-1][~env.is_focal])
    np.testing.assert_allclose(ts.info['background_reward'],
                               full[-1][~env.is_focal].mean())
    focal_rewarded += bool(ts.reward.any())
    background_rewarded += bool(env.last_background_rewards.any())
    if ts.last():
      break
  assert focal_rewarded > 0 and background_rewarded > 0
  env.close()


def test_scenario_background_can_be_any_policy():
  class Alternate(meltingpot.BackgroundPolicy):
    """Counts its steps in its state: NOOP, then FORWARD, ..."""

    def initial_state(self):
      return 0

    def step(self, timestep, prev_state):
      assert 'RGB' in timestep.observation
      return prev_state % 2, prev_state + 1

  policy = Alternate()
  env = envs.make('meltingpot_scenario/coins_0', background=policy,
                  max_episode_steps=4)
  ts = env.reset()
  for _ in range(5):
    ts = env.step(np.zeros(1, np.int32))
  assert ts.first()  # the episode of 4 steps ended and a new one started
  env.close()
  noop = envs.make('meltingpot_scenario/coins_0', background='noop',
                   max_episode_steps=3)
  noop.reset()
  assert noop.step(np.zeros(1, np.int32)).info['background_reward'].shape == (
      1,)
  noop.close()


def test_scenario_background_can_be_a_factory_the_env_owns():
  built = []

  class Counting(meltingpot.BackgroundPolicy):
    """Records setup and close; always NOOP."""

    def __init__(self):
      self.closed = False
      self.substrate = None

    def setup(self, substrate, num_actions, converter):
      super().setup(substrate, num_actions, converter)
      self.substrate = substrate
      self.spec = converter.spec

    def step(self, timestep, prev_state):
      return 0, prev_state

    def close(self):
      self.closed = True

  def factory(substrate, seed):
    built.append((substrate, seed, Counting()))
    return built[-1][2]

  env = envs.make('meltingpot_scenario/coins_0', background=factory,
                  global_state='none', max_episode_steps=3, seed=5)
  assert [(s, seed) for s, seed, _ in built] == [('coins', 5)]
  policy = built[0][2]
  # Background players see GLOBAL whatever the env's global_state.
  assert policy.substrate == 'coins' and 'GLOBAL' in policy.spec
  env.reset()
  for _ in range(4):
    ts = env.step(np.zeros(1, np.int32))
  assert ts.first()
  assert not policy.closed
  env.close()
  assert policy.closed  # the env built it, the env closes it
  with pytest.raises(ValueError, match='Policy interface'):
    envs.make('meltingpot_scenario/coins_0', background=lambda **_: object())


def test_official_bots_missing_is_a_clear_error():
  if meltingpot.bots_installed():
    pytest.skip('the official bots are installed')
  with pytest.raises(meltingpot.MissingBotsError) as error:
    envs.make('meltingpot_scenario/coins_0')
  message = str(error.value)
  assert meltingpot.ASSETS_URL in message
  assert 'pip install --no-cache-dir' in message
  assert "background='random'" in message


def test_no_tensorflow_without_official_bots():
  code = (
      'import sys, numpy as np\n'
      'from marl_jax import envs\n'
      'envs.list_envs()\n'
      'assert "meltingpot" not in sys.modules\n'
      f'env = envs.make("meltingpot/{CRAMPED}")\n'
      'env.reset(); env.step(np.zeros(2, np.int32))\n'
      'env = envs.make("meltingpot_scenario/coins_0", background="noop")\n'
      'env.reset(); env.step(np.zeros(1, np.int32))\n'
      'import meltingpot; assert meltingpot.substrate.SUBSTRATES\n'
      'assert "tensorflow" not in sys.modules, "tensorflow was imported"\n')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]


def test_render_frames_make_a_video(tmp_path):
  from marl_jax.utils import video  # pylint: disable=g-import-not-at-top
  env = envs.make(f'meltingpot/{CRAMPED}', max_episode_steps=10)
  env.reset()
  frames = [env.render()]
  for _ in range(4):
    env.step(np.array([1, 3]))
    frames.append(env.render())
  path = video.write_video(frames, str(tmp_path / 'cramped.gif'), fps=5)
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  read = imageio.mimread(path)  # (identical consecutive frames may merge)
  assert 1 <= len(read) <= 5 and read[0].shape[:2] == frames[0].shape[:2]
  env.close()


def test_unknown_names_and_bad_arguments():
  with pytest.raises(envs.UnknownEnvironmentError, match='meltingpot/clean_up'):
    envs.make('meltingpot/clean_upp')
  with pytest.raises(envs.UnknownEnvironmentError, match='clean_up_0'):
    envs.make('meltingpot_scenario/clean_up_00')
  with pytest.raises(ValueError, match='clean_up'):
    meltingpot.MeltingPot('clean_upp')
  with pytest.raises(ValueError, match='global_state'):
    meltingpot.MeltingPot(CRAMPED, global_state='world')
  with pytest.raises(ValueError, match='roles'):
    meltingpot.MeltingPot(CRAMPED, roles=('chef',))
  with pytest.raises(ValueError, match='background'):
    meltingpot.MeltingPot(scenario='coins_0', background='bots_please')
  with pytest.raises(ValueError, match='shape'):
    env = meltingpot.MeltingPot(CRAMPED)
    env.reset()
    env.step(np.zeros(3, np.int32))


def test_missing_package_is_an_install_hint(monkeypatch):
  monkeypatch.setattr(meltingpot_env, 'package_dir', lambda: None)
  with pytest.raises(ImportError, match='pip install'):
    meltingpot.modules.__wrapped__()
  substrates, scenarios = meltingpot_env._fallback_names()  # pylint: disable=protected-access
  assert CRAMPED in substrates and 'clean_up_22' in scenarios


def test_assets_shim_makes_a_standin_archive_offline(tmp_path):
  """third_party/meltingpot_assets writes the stand-in, then keeps it."""
  setup = os.path.join(os.path.dirname(__file__), '..', '..', 'third_party',
                       'meltingpot_assets', 'setup.py')
  env = dict(os.environ, TMPDIR=str(tmp_path),
             MARL_JAX_MELTINGPOT_ASSETS='offline')
  for _ in range(2):
    result = subprocess.run([sys.executable, setup, '--name'], env=env,
                            capture_output=True, text=True, timeout=60,
                            cwd=os.path.dirname(setup))
    assert result.returncode == 0, result.stderr
  archive = tmp_path / meltingpot.ASSETS_ARCHIVE
  import tarfile  # pylint: disable=g-import-not-at-top
  with tarfile.open(archive) as tar:
    names = tar.getnames()
  assert names == ['assets', f'assets/{meltingpot.STANDIN_MARKER}']
  assert 'keeping the stand-in' in result.stderr
