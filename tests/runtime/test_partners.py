"""Fixed training partners end to end: a self-play run that keeps its
start, middle and end (``checkpoint_every_steps``) becomes a partner pool
(``<dir>@all``, Fictitious Co-Play's second stage), and what cannot take
partners is refused in one line."""

import os

import pytest

from configs import mappo as mappo_configs
from configs import qmix as qmix_configs
from marl_jax.runtime import anakin, build, partners
from marl_jax.utils import config as config_lib


def _config(**overrides):
  c = mappo_configs.get_config('toy')  # jax/penalty
  c.algo = 'ippo'
  c.num_envs_per_actor = 4
  c.sequence_length = 5
  c.num_minibatches = 2
  c.network.mlp_sizes = (16,)
  c.log_every_updates = 2
  c.progress_every_s = 1e9
  c.update_from_flattened_dict(overrides)
  return c


def _run(exp_dir, config, **kwargs):
  os.makedirs(exp_dir, exist_ok=True)
  config.exp_dir = exp_dir
  with open(os.path.join(exp_dir, 'config.json'), 'w') as f:
    f.write(config_lib.to_json(config))
  return anakin.run(config, exp_dir, **kwargs)


@pytest.fixture(scope='module')
def stage_one(tmp_path_factory):
  """Two self-play seeds, checkpointed at 0, every 200 steps and the end."""
  d = str(tmp_path_factory.mktemp('sp'))
  config = build.prepare(_config(population_size=2, num_steps=400,
                                 checkpoint_every_steps=200,
                                 max_checkpoints_to_keep=10),
                         'anakin').config
  _run(d, config)
  return d


def test_checkpoints_at_fixed_steps_keep_the_start(stage_one):
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  with checkpointing.Checkpointer(os.path.join(stage_one, 'checkpoints'),
                                  max_to_keep=None, read_only=True) as ckpt:
    steps = ckpt.all_steps()
  # 2 members x 4 copies x 5 steps x 2 iterations = 80 steps per chunk.
  assert steps[0] == 0 and len(steps) >= 3
  assert any(0 < s < steps[-1] for s in steps)


def test_a_pool_of_every_checkpoint_trains_a_new_agent(stage_one, tmp_path):
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  with checkpointing.Checkpointer(os.path.join(stage_one, 'checkpoints'),
                                  max_to_keep=None, read_only=True) as ckpt:
    steps = ckpt.all_steps()
  pool = partners.load_pool(f'{stage_one}@all', 'jax/penalty')
  assert pool.size == 2 * len(steps)  # every member of every checkpoint
  base = os.path.basename(stage_one)
  assert pool.names[:2] == (f'{base}[0]@0', f'{base}[1]@0')
  one = partners.load_pool(f'{stage_one}@{steps[-1]}', 'jax/penalty')
  assert one.size == 2
  config = build.prepare(_config(num_steps=200, partners=f'{stage_one}@all'),
                         'anakin').config
  result = _run(str(tmp_path / 'fcp'), config)
  assert result.learner_steps > 0
  assert os.listdir(tmp_path / 'fcp' / 'checkpoints')


def test_what_cannot_take_partners_is_named(stage_one, tmp_path):
  with pytest.raises(config_lib.ConfigError, match='not a run directory'):
    partners.load_pool(str(tmp_path / 'nope'), 'jax/penalty')
  with pytest.raises(config_lib.ConfigError, match='trained on jax/penalty'):
    partners.load_pool(stage_one, 'jax/climbing')
  with pytest.raises(config_lib.ConfigError, match='@<env steps> or @all'):
    partners.parse(f'{stage_one}@latest')
  q = qmix_configs.get_config('toy')
  q.partners = stage_one
  with pytest.raises(build.UnsupportedError, match='whole episodes'):
    build.prepare(q, 'anakin')


def test_the_distributed_env_loop_never_writes_the_partners_slot(stage_one):
  """A pool of one policy (the stage-one run's first member) in one slot of
  every episode: each finished episode reports N - 1 learning slots, every
  written sequence is a learner's (its AGENT_ID is never the partner's seat
  of that episode), and both seats take turns."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime import actor  # pylint: disable=g-import-not-at-top
  config = build.prepare(_config(), 'distributed').config
  envs = [algorithms.make_env(config) for _ in range(3)]
  algo = algorithms.make('ippo', envs[0].spec(), config)
  pool = partners.load_pool(f'{stage_one}@0', 'jax/penalty')
  written = []
  loop = actor.EnvLoop(envs, algo, 1, 'self_play', 5,
                       lambda m, seq: written.append(seq), seed=0,
                       partners=pool)
  params = jax_tree_stack(algo.init)
  # Every emit of copy i writes one sequence (N - 1 = 1), never of the slot
  # its partner plays.
  emitted = []
  original = loop._emit  # pylint: disable=protected-access

  def emit(i):
    before = len(written)
    original(i)
    for seq in written[before:]:
      agent = int(np.argmax(seq.observation['AGENT_ID'][0]))
      assert agent != loop._partner_seat[i]  # pylint: disable=protected-access
    emitted.append(len(written) - before)

  loop._emit = emit  # pylint: disable=protected-access
  seats = []
  for _ in range(20):
    seats.append(loop._partner_seat.copy())  # pylint: disable=protected-access
    loop.run(params, 5)
  stats = loop.pop_episode_stats()
  assert loop.num_episodes >= 3 + 10
  ended = loop.num_episodes - 3  # the first draw of each copy is at reset
  assert len(stats) == ended * (2 - 1)
  assert set(np.concatenate(seats)) == {0, 1}
  assert emitted and set(emitted) == {1}
  agents = [int(np.argmax(s.observation['AGENT_ID'][0])) for s in written]
  assert 0 < sum(agents) < len(agents)  # the learner sat in both slots


def jax_tree_stack(init):
  import jax  # pylint: disable=g-import-not-at-top
  return jax.tree.map(lambda x: x[None], init(jax.random.PRNGKey(0)).params)


def test_the_distributed_program_trains_with_a_pool(stage_one, tmp_path):
  from marl_jax.runtime import launchers  # pylint: disable=g-import-not-at-top
  c = _config(partners=f'{stage_one}@all', launcher='single', num_actors=1,
              num_envs_per_actor=2, num_steps=300, batch_size=2,
              replay_max_size=8, num_learner_devices=1, eval_every_updates=0,
              checkpoint_every_s=1e9)
  config = build.prepare(c, 'distributed').config
  d = str(tmp_path / 'run')
  os.makedirs(d)
  config.exp_dir = d
  with open(os.path.join(d, 'config.json'), 'w') as f:
    f.write(config_lib.to_json(config))
  result = launchers.run(config, d)
  assert result.learner_steps > 0
