"""MAPPO / IPPO configs: ``--config=configs/mappo.py:<preset>``.

Presets:
  overcooked  JaxMARL Overcooked cramped_room (``jaxmarl/overcooked_cramped_room``)
              under the anakin runtime, IPPO-style hyperparameters of the
              JaxMARL baselines (16 envs x 128 steps, 4 epochs x 4 minibatches).
  toy         ``jax/penalty``, a tiny JAX matrix game for quick checks.

``algo`` picks the critic: ``mappo`` (centralised, on ``GLOBAL``) or ``ippo``
(on the agent's own observation); ``--algo=ippo`` switches it. Anakin runtime
keys: ``num_envs_per_actor`` env copies per member, ``sequence_length`` steps
per rollout, so each update sees ``num_envs_per_actor * num_agents`` sequences
(must be divisible by ``num_minibatches``). The distributed runtime uses
``batch_size`` sequences per update instead.
"""

import ml_collections


def get_config(preset: str = 'overcooked') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.algo = 'mappo'
  c.preset = preset

  # Environment.
  c.env = 'jaxmarl/overcooked_cramped_room'
  c.env_kwargs = ml_collections.ConfigDict()
  c.env_wrappers = ('agent_id',)

  # Run.
  c.seed = 0
  c.num_steps = 5_000_000
  c.population_size = 1
  c.matchmaking = 'self_play'
  c.launcher = 'local'  # distributed runtime only
  c.num_actors = 1
  c.num_envs_per_actor = 16
  c.num_learner_devices = 0

  # PPO.
  c.discount = 0.99
  c.gae_lambda = 0.95
  c.sequence_length = 128  # rollout length per update
  c.batch_size = 32  # sequences per update (distributed runtime)
  c.replay_max_size = 64
  c.num_epochs = 4
  c.num_minibatches = 4
  c.clip_epsilon = 0.2
  c.value_clip_epsilon = 0.2  # <= 0: no value clipping
  c.value_cost = 0.5
  c.entropy_cost = 0.01
  c.normalize_advantages = True
  c.value_normalization = 'none'  # 'none' | 'running'
  c.value_norm_beta = 0.995
  c.critic_observation_key = 'GLOBAL'  # mappo only
  c.use_agent_id = True  # AGENT_ID one-hot as an extra input
  c.share_parameters = True  # False: separate params per agent slot
  c.optimizer = 'adam'
  c.learning_rate = 2.5e-4
  c.optimizer_eps = 1e-5
  c.adam_b1 = 0.9
  c.adam_b2 = 0.999
  c.rmsprop_decay = 0.99
  c.rmsprop_momentum = 0.0
  c.max_grad_norm = 0.5

  # Networks (actor and critic have the same shape, separate params).
  c.network = ml_collections.ConfigDict()
  c.network.observation_key = 'FEATURES'
  c.network.torso = 'auto'  # 'auto' (by rank) | 'mlp' (flatten anything)
  c.network.mlp_sizes = (64, 64)
  c.network.conv_channels = (32, 32)
  c.network.conv_kernels = (3, 3)
  c.network.conv_strides = (1, 1)
  c.network.core = ''  # '' | 'gru' | 'lstm'
  c.network.core_size = 64

  # Run directory.
  c.exp_dir = ''
  c.checkpoint_every_s = 300.0
  c.max_checkpoints_to_keep = 3
  c.progress_every_s = 10.0
  c.log_every_updates = 10
  c.record_video = False
  c.video_episodes = 1

  if preset == 'overcooked':
    # JaxMARL's IPPO baseline for Overcooked: MLP on the flattened grid,
    # shaped rewards annealed away over the first half of 5M steps.
    c.env = 'jaxmarl/overcooked_cramped_room'
    c.env_kwargs.horizon = 400
    c.env_kwargs.reward_shaping_factor = 1.0
    c.env_kwargs.reward_shaping_horizon = 2_500_000
    c.network.observation_key = 'GRID'
    c.network.torso = 'mlp'
  elif preset == 'toy':
    c.env = 'jax/penalty'
    c.num_steps = 200_000
    c.num_envs_per_actor = 16
    c.sequence_length = 16
    c.num_minibatches = 2
    c.learning_rate = 3e-3
    c.network.mlp_sizes = (32,)
    c.progress_every_s = 2.0
  else:
    raise ValueError(f'Unknown mappo preset {preset!r}; valid presets: '
                     'overcooked, toy.')
  return c


def preset_for_env(env: str) -> str:
  """The preset ``train.py --env=<env>`` starts from."""
  return 'toy' if env.startswith('jax/') else 'overcooked'
