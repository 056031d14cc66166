"""IMPALA configs: ``--config=configs/impala.py:<preset or env>``.

Without a preset, ``--config=configs/impala.py:<env>`` (what ``train.py
--algo=impala --env=<env>`` uses) gives the defaults below with the env
family's kwargs (configs/common.py); the observation the network reads is
chosen from the env's spec when the run is built.

Presets (overrides for reported results and tests):
  overcooked  Overcooked-AI cramped_room, featurized observations, shaped
              rewards annealed away; the default run of ``train.py`` (minutes on
              2 CPU cores).
  overcooked_lossless  the same on the lossless grid.
  mpe         PettingZoo MPE ``simple_spread`` (3 agents), through the adapter.
  jax         ``jax/meet``, a small JAX grid game (through the host adapter).
  jaxmarl     JaxMARL's Overcooked cramped_room, lossless grid observations.
  meltingpot  Melting Pot ``collaborative_cooking__cramped`` from pixels.
  toy         ``toy/cue_coordination``, a tiny cooperative game for quick checks.

Every field can be overridden from the command line, e.g.
``--config.learning_rate=3e-4 --config.network.lstm_size=128``.
"""

import ml_collections

from configs import common

# name -> (env, runtimes in which --env=<env> selects it; () for by name only).
PRESETS = {
    'overcooked': ('overcooked/cramped_room', ('distributed',)),
    'overcooked_lossless': ('overcooked/cramped_room', ()),
    'mpe': ('pettingzoo/simple_spread', ()),
    'jax': ('jax/meet', ()),
    'jaxmarl': ('jaxmarl/overcooked_cramped_room', ()),
    'meltingpot': ('meltingpot/collaborative_cooking__cramped', ()),
    'toy': ('toy/cue_coordination', ('distributed',)),
}


def get_config(arg: str = 'overcooked') -> ml_collections.ConfigDict:
  return common.build('impala', arg, 'overcooked', PRESETS, algorithm_keys,
                      apply_preset)


def algorithm_keys(c: ml_collections.ConfigDict, runtime: str = '') -> None:
  """IMPALA's own keys (OPRE's config starts from these too)."""
  del runtime
  c.discount = 0.99  # gamma of the returns
  c.sequence_length = 20  # T: transitions per sequence the actors write
  c.batch_size = 32  # sequences per member per update
  c.replay_max_size = 256  # sequences queued per member
  common.optimizer_keys(c, learning_rate=5e-4, optimizer='adam', eps=1e-5,
                        max_grad_norm=40.0)
  c.entropy_cost = 0.01  # weight of the policy's entropy bonus
  c.baseline_cost = 0.5  # weight of the value (baseline) loss
  c.vtrace_lambda = 1.0  # V-trace's lambda (1: the paper's v_s)
  c.clip_rho_threshold = 1.0  # rho-bar: clips V-trace's value targets
  c.clip_pg_rho_threshold = 1.0  # clips the policy gradient's rho
  c.popart = False  # PopArt value normalisation per member
  c.popart_step_size = 1e-3  # PopArt statistics' step size
  c.popart_scale_lb = 1e-4  # PopArt scale's lower bound
  c.popart_scale_ub = 1e6  # PopArt scale's upper bound

  common.network_keys(c, mlp_sizes=(128, 128))
  c.network.lstm_size = 0  # 0: feed-forward
  c.network.use_prev_action = True  # the previous action as an input
  c.network.use_prev_reward = True  # the previous reward as an input


def apply_preset(c: ml_collections.ConfigDict, preset: str) -> None:
  """Overrides of a preset; its env and the family's kwargs are set already."""
  if preset == 'overcooked':
    # 1.5M steps: ~4.5 minutes through the local program on 2 CPU cores
    # (benchmarks/RESULTS.md); asynchronous actors need a little more data
    # than the single launcher's lockstep to reach ~200 sparse.
    c.num_steps = 1_500_000
  elif preset == 'overcooked_lossless':
    c.env_kwargs.observation = 'lossless'
    c.network.observation_key = 'GRID'
    c.network.mlp_sizes = (128,)
  elif preset == 'mpe':
    c.num_steps = 500_000
    c.sequence_length = 25
    c.network.mlp_sizes = (64, 64)
  elif preset == 'jax':
    # A small JAX grid game through the host adapter (marl_jax/envs/jax_games).
    c.num_steps = 300_000
    c.sequence_length = 25
    c.network.mlp_sizes = (64, 64)
  elif preset == 'jaxmarl':
    # JaxMARL's Overcooked through the host adapter; the lossless grid.
    c.network.observation_key = 'GRID'
    c.network.mlp_sizes = (128,)
  elif preset == 'meltingpot':
    # Melting Pot from pixels: conv torso and an LSTM, as marl-jax uses.
    c.num_steps = 2_000_000
    c.batch_size = 16
    c.network.observation_key = 'RGB'
    c.network.mlp_sizes = (128,)
    c.network.lstm_size = 128
  elif preset == 'toy':
    c.num_steps = 20_000
    c.num_envs_per_actor = 8
    c.batch_size = 16
    c.sequence_length = 8
    c.network.mlp_sizes = (32,)
    c.learning_rate = 1e-2
    c.progress_every_s = 2.0
