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
  with pytest.raises(build.UnsupportedError, match='--runtime=anakin'):
    build.prepare(_config(partners=stage_one, launcher='single'),
                  'distributed')
  q = qmix_configs.get_config('toy')
  q.partners = stage_one
  with pytest.raises(build.UnsupportedError, match='whole episodes'):
    build.prepare(q, 'anakin')
