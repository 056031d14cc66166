"""IMPALA configs: ``--config=configs/impala.py:<preset>``.

Presets:
  overcooked  Overcooked-AI cramped_room, featurized observations, shaped
              rewards annealed away; the default run of ``train.py`` (minutes on
              2 CPU cores).
  mpe         PettingZoo MPE ``simple_spread`` (3 agents), through the adapter.
  jax         ``jax/meet``, a small JAX grid game (through the host adapter).
  jaxmarl     JaxMARL's Overcooked cramped_room, lossless grid observations.
  meltingpot  Melting Pot ``collaborative_cooking__cramped`` from pixels.
  toy         ``toy/cue_coordination``, a tiny cooperative game for quick checks.

Every field can be overridden from the command line, e.g.
``--config.learning_rate=3e-4 --config.network.lstm_size=128``.
"""

import ml_collections


def get_config(preset: str = 'overcooked') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.algo = 'impala'
  c.preset = preset

  # Environment.
  c.env = 'overcooked/cramped_room'
  c.env_kwargs = ml_collections.ConfigDict()
  c.env_wrappers = ()  # e.g. ('global_state',); see marl_jax/envs/wrappers.py

  # Run.
  c.seed = 0
  c.num_steps = 1_000_000  # total environment steps (all actors and copies)
  c.population_size = 1
  c.matchmaking = 'self_play'  # 'self_play' | 'random' | 'fsp' | 'psro'
  # Fictitious self-play: a snapshot of a member (in turn) every
  # fsp_snapshot_every_updates updates, the last fsp_pool_size kept.
  c.fsp_pool_size = 8
  c.fsp_snapshot_every_updates = 50
  # PSRO (launcher single, population_size 1): the fsp_pool_size ring is the
  # policy set; every psro_iteration_updates updates the learner plays
  # psro_eval_episodes episodes with each policy of the set (payoff.json),
  # joins the set, and partners are drawn by the meta-strategy of
  # psro_meta_solver: 'nash' (two-player zero-sum) | 'replicator'.
  c.psro_iteration_updates = 100
  c.psro_eval_episodes = 2
  c.psro_meta_solver = 'replicator'
  # Population-based training (launcher single): every pbt_every_updates
  # learner updates, each member plays pbt_eval_episodes self-play evaluation
  # episodes (scored on the sparse reward where the env has one, else the
  # return); the bottom pbt_truncation of members copy a top member's weights
  # and optimiser state and perturb its hyperparameters. 0 turns it off.
  c.pbt_every_updates = 0
  c.pbt_eval_episodes = 2
  c.pbt_truncation = 0.25
  c.pbt_perturb_factors = (0.8, 1.25)
  c.pbt_learning_rate_bounds = (1e-5, 1e-2)
  c.pbt_entropy_cost_bounds = (1e-4, 0.1)
  # 'local' (one process per node, the default), 'ray' (Ray actors; see
  # train.py --ray_address) or 'single' (one process, exactly reproducible).
  c.launcher = 'local'
  c.num_actors = 2  # env-loop nodes (under single: more env copies)
  c.num_envs_per_actor = 16
  c.variable_update_period = 1  # env steps between actors' param pulls
  # Evaluator node (local/ray): every eval_every_updates learner updates, play
  # eval_episodes self-play episodes per member with the newest params. 0: off.
  c.eval_every_updates = 100
  c.eval_episodes = 1
  c.eval_greedy = False
  c.num_learner_devices = 0  # 0: every local device

  # IMPALA.
  c.discount = 0.99
  c.sequence_length = 20
  c.batch_size = 32  # sequences per member per update
  c.replay_max_size = 256  # sequences queued per member
  c.optimizer = 'adam'  # 'rmsprop' (the paper) | 'adam'
  c.learning_rate = 5e-4
  c.optimizer_eps = 1e-5
  c.rmsprop_decay = 0.99
  c.rmsprop_momentum = 0.0
  c.adam_b1 = 0.9
  c.adam_b2 = 0.999
  c.max_grad_norm = 40.0
  c.entropy_cost = 0.01
  c.baseline_cost = 0.5
  c.vtrace_lambda = 1.0
  c.clip_rho_threshold = 1.0
  c.clip_pg_rho_threshold = 1.0
  c.popart = False
  c.popart_step_size = 1e-3
  c.popart_scale_lb = 1e-4
  c.popart_scale_ub = 1e6

  # Network.
  c.network = ml_collections.ConfigDict()
  c.network.observation_key = 'FEATURES'
  c.network.mlp_sizes = (128, 128)
  c.network.conv_channels = (32, 32)
  c.network.conv_kernels = (3, 3)
  c.network.conv_strides = (1, 1)
  c.network.lstm_size = 0  # 0: feed-forward
  c.network.use_prev_action = True
  c.network.use_prev_reward = True

  # Run directory: logs, checkpoints, videos.
  c.exp_dir = ''  # '' -> runs/<env>_<algo>_<time>
  c.checkpoint_every_s = 300.0
  c.max_checkpoints_to_keep = 3
  c.progress_every_s = 10.0
  c.log_every_updates = 10
  c.record_video = False
  c.video_episodes = 1

  if preset == 'overcooked':
    c.env = 'overcooked/cramped_room'
    # 1.5M steps: ~4.5 minutes through the local program on 2 CPU cores
    # (benchmarks/RESULTS.md); asynchronous actors need a little more data
    # than the single launcher's lockstep to reach ~200 sparse.
    c.num_steps = 1_500_000
    c.env_kwargs.horizon = 400
    c.env_kwargs.observation = 'featurized'
    c.env_kwargs.reward_shaping_factor = 1.0
    c.env_kwargs.reward_shaping_horizon = 2_000_000
  elif preset == 'overcooked_lossless':
    c.env = 'overcooked/cramped_room'
    c.env_kwargs.horizon = 400
    c.env_kwargs.observation = 'lossless'
    c.env_kwargs.reward_shaping_factor = 1.0
    c.env_kwargs.reward_shaping_horizon = 2_000_000
    c.network.observation_key = 'GRID'
    c.network.mlp_sizes = (128,)
  elif preset == 'mpe':
    c.env = 'pettingzoo/simple_spread'
    c.env_kwargs.max_cycles = 25
    c.num_steps = 500_000
    c.sequence_length = 25
    c.network.mlp_sizes = (64, 64)
  elif preset == 'jax':
    # A small JAX grid game through the host adapter (marl_jax/envs/jax_games).
    c.env = 'jax/meet'
    c.num_steps = 300_000
    c.sequence_length = 25
    c.network.mlp_sizes = (64, 64)
  elif preset == 'jaxmarl':
    # JaxMARL's Overcooked through the host adapter; the lossless grid.
    c.env = 'jaxmarl/overcooked_cramped_room'
    c.network.observation_key = 'GRID'
    c.network.mlp_sizes = (128,)
  elif preset == 'meltingpot':
    # Melting Pot from pixels: conv torso and an LSTM, as marl-jax uses.
    c.env = 'meltingpot/collaborative_cooking__cramped'
    c.num_steps = 2_000_000
    c.num_envs_per_actor = 4
    c.sequence_length = 20
    c.batch_size = 16
    c.network.observation_key = 'RGB'
    c.network.conv_channels = (16, 32)
    c.network.conv_kernels = (8, 4)
    c.network.conv_strides = (8, 1)
    c.network.mlp_sizes = (128,)
    c.network.lstm_size = 128
  elif preset == 'toy':
    c.env = 'toy/cue_coordination'
    c.num_steps = 20_000
    c.num_envs_per_actor = 8
    c.batch_size = 16
    c.sequence_length = 8
    c.network.mlp_sizes = (32,)
    c.learning_rate = 1e-2
    c.progress_every_s = 2.0
  else:
    raise ValueError(f'Unknown impala preset {preset!r}; valid presets: '
                     'overcooked, overcooked_lossless, mpe, jax, jaxmarl, '
                     'meltingpot, toy.')
  return c


def preset_for_env(env: str) -> str:
  """The preset ``train.py --env=<env>`` starts from (its network fits)."""
  family, _, name = env.partition('/')
  if family == 'jaxmarl':
    return 'jaxmarl' if name.startswith('overcooked') else 'mpe'
  return {'overcooked': 'overcooked', 'toy': 'toy', 'pettingzoo': 'mpe',
          'jax': 'jax', 'meltingpot': 'meltingpot',
          'meltingpot_scenario': 'meltingpot'}.get(family, 'overcooked')
