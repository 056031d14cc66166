"""What every algorithm's config shares, once: run, checkpoint and logging keys,
the environment families' defaults, and how a config file's argument selects
a preset or an environment.

A config file ``configs/<algo>.py`` takes one argument after the colon:

  ``--config=configs/qmix.py:smax_3m``            a preset (a reported result)
  ``--config=configs/qmix.py:pettingzoo/simple_spread``   an environment: the
      algorithm's defaults with that env family's defaults; the rest (which
      observation the network reads, whether a global-state wrapper is needed)
      is derived from the environment's spec when the run is built
      (``marl_jax.utils.config.derive_from_spec``)
  ``--config=configs/qmix.py:jaxmarl/smax_3m@anakin``   the same, for a runtime;
      an environment with a preset for that runtime gets the preset.

``train.py --algo=A --env=E [--runtime=R]`` is ``--config=configs/A.py:E@R``.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Tuple

import ml_collections

RUNTIMES = ('distributed', 'anakin')

# Environment kwargs per family: what a training run wants from the family
# (episode length, observation kind, reward shaping). The family's own
# factory defaults apply to everything not named here.
_OVERCOOKED = dict(horizon=400, observation='featurized',
                   reward_shaping_factor=1.0, reward_shaping_horizon=2_000_000)
_JAXMARL_OVERCOOKED = dict(horizon=400, reward_shaping_factor=1.0,
                           reward_shaping_horizon=2_500_000)


def env_kwargs_for(env: str) -> Dict:
  """The env kwargs a run on ``env`` starts from (its family's)."""
  family, _, name = env.partition('/')
  if family == 'overcooked':
    return dict(_OVERCOOKED)
  if family == 'jaxmarl' and name.startswith('overcooked'):
    return dict(_JAXMARL_OVERCOOKED)
  if family == 'pettingzoo':
    return dict(max_cycles=25)
  return {}


def family_overrides(env: str) -> Dict:
  """Config keys (flattened, dotted) a family sets for every algorithm:
  Melting Pot's pixels get marl-jax's strided conv torso, and fewer env copies
  per actor (each substrate copy is a Lua world of its own)."""
  family = env.partition('/')[0]
  if family in ('meltingpot', 'meltingpot_scenario'):
    return {'num_envs_per_actor': 4, 'network.conv_channels': (16, 32),
            'network.conv_kernels': (8, 4), 'network.conv_strides': (8, 1)}
  return {}


def parse_arg(arg: Optional[str], presets: Mapping[str, object],
              default: str) -> Tuple[Optional[str], Optional[str], str]:
  """A config file's argument -> ``(preset, env, runtime)``.

  Exactly one of ``preset`` and ``env`` is set. Raises ``ValueError`` naming
  the valid presets for an argument that is neither a preset nor an env name.
  """
  arg = default if arg is None or arg == '' else arg
  env, _, runtime = arg.partition('@')
  runtime = runtime or 'distributed'
  if runtime not in RUNTIMES:
    raise ValueError(f'Unknown runtime {runtime!r} in the config argument '
                     f'{arg!r}; valid: {", ".join(RUNTIMES)}.')
  if '/' in env:
    return None, env, runtime
  if env in presets:
    return env, None, runtime
  raise ValueError(f'Unknown preset {env!r}; valid presets: '
                   f'{", ".join(presets)}, or an environment name such as '
                   'overcooked/cramped_room.')


def preset_for(env: str, runtime: str,
               presets: Mapping[str, Tuple[str, Tuple[str, ...]]]
               ) -> Optional[str]:
  """The preset reported for exactly ``env`` under ``runtime``, if any.
  ``presets`` maps name -> ``(env, runtimes)``."""
  for name, (preset_env, runtimes) in presets.items():
    if preset_env == env and runtime in runtimes:
      return name
  return None


def build(algo: str, arg: Optional[str], default: str,
          presets: Mapping[str, Tuple[str, Tuple[str, ...]]],
          algorithm_keys: Callable[[ml_collections.ConfigDict, str], None],
          apply_preset: Callable[[ml_collections.ConfigDict, str], None]
          ) -> ml_collections.ConfigDict:
  """The config of ``algo`` for ``arg`` (see the module docstring).

  ``algorithm_keys(c, runtime)`` adds the algorithm's own keys with generic
  defaults; ``apply_preset(c, name)`` overrides them for a preset.
  """
  preset, env, runtime = parse_arg(arg, presets, default)
  if env is not None:
    preset = preset_for(env, runtime, presets)
  c = base_config(algo)
  algorithm_keys(c, runtime)
  if preset is not None:
    c.preset = preset
    set_env(c, presets[preset][0])
    apply_preset(c, preset)
  else:
    c.preset = ''
    set_env(c, env)
  return c


def set_env(c: ml_collections.ConfigDict, env: str) -> None:
  """Points ``c`` at ``env`` with its family's kwargs and overrides."""
  c.env = env
  c.env_kwargs = ml_collections.ConfigDict(env_kwargs_for(env))
  for key, value in family_overrides(env).items():
    node = c
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    if leaf in node:
      node[leaf] = value


def base_config(algo: str) -> ml_collections.ConfigDict:
  """The keys every algorithm has: environment, run, launcher, population,
  run directory, checkpoints and logging."""
  c = ml_collections.ConfigDict()
  c.algo = algo  # the algorithm (configs/<algo>.py; train.py --algo)
  c.preset = ''  # the preset these values come from ('' for none)

  # Environment.
  c.env = 'overcooked/cramped_room'  # family/name (train.py --env)
  c.env_kwargs = ml_collections.ConfigDict()
  # e.g. ('agent_id', 'global_state'); see marl_jax/envs/wrappers.py. A
  # global-state wrapper is added when the algorithm needs GLOBAL and the env
  # has none.
  c.env_wrappers = ()

  # Run.
  c.seed = 0  # seeds params, acting, matchmaking and env copies
  c.num_steps = 1_000_000  # total environment steps (all actors and copies)
  c.population_size = 1  # members trained at once (vmapped)
  c.matchmaking = 'self_play'  # 'self_play' | 'random' | 'fsp' | 'psro'
  # Fictitious self-play: a snapshot of a member (in turn) every
  # fsp_snapshot_every_updates updates, the last fsp_pool_size kept.
  c.fsp_pool_size = 8
  c.fsp_snapshot_every_updates = 50
  # PSRO (launcher single, population_size 1): the fsp_pool_size ring is the
  # policy set; every psro_iteration_updates updates the learner plays
  # psro_eval_episodes episodes with each policy of the set (payoff.json),
  # joins the set, and partners are drawn by the meta-strategy of
  # psro_meta_solver (population/psro.py META_SOLVERS): 'nash' (two-player
  # zero-sum) | 'replicator' | 'alpharank' | 'fictitious_play'.
  c.psro_iteration_updates = 100
  c.psro_eval_episodes = 2
  c.psro_meta_solver = 'replicator'
  # Fixed training partners (runtime/partners.py; every launcher and anakin,
  # learners of sequences): comma-separated run dirs, <dir>@<step> or <dir>@all
  # (every kept checkpoint), or human_proxy:train (Overcooked's clone of the
  # 2019 human train trials). In each episode one slot, drawn at random, is
  # played by a policy drawn from the pool; '' for none.
  c.partners = ''
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
  c.num_envs_per_actor = 16  # anakin: env copies per member
  c.variable_update_period = 1  # env steps between actors' param pulls
  # Evaluator node (local/ray): every eval_every_updates learner updates, play
  # eval_episodes self-play episodes per member with the newest params. 0: off.
  c.eval_every_updates = 100
  c.eval_episodes = 1
  c.eval_greedy = False
  c.num_learner_devices = 0  # 0: every local device

  # Run directory: logs, checkpoints, videos.
  c.exp_dir = ''  # '' -> runs/<env>_<algo>_<time>
  c.checkpoint_every_s = 300.0  # seconds between checkpoints
  # Anakin: also a checkpoint at env step 0 and every this many env steps
  # (0: off); max_checkpoints_to_keep still applies.
  c.checkpoint_every_steps = 0
  c.max_checkpoints_to_keep = 3  # older checkpoints are deleted
  c.progress_every_s = 10.0  # seconds between progress lines
  c.log_every_updates = 10  # updates between learner.csv rows
  c.record_video = False  # GIFs of the trained population at the end
  c.video_episodes = 1  # episodes per member recorded
  # Video frames are enlarged (nearest neighbour, by an integer factor) until
  # their short side is at least this many pixels, and captioned with the
  # step and the returns so far (marl_jax/evaluation/videos.py).
  c.video_min_size = 256

  # Weights & Biases, one more sink beside the CSV and TensorBoard logs (needs
  # `pip install wandb`). Under launcher local or ray each node that logs
  # (learner, counter, evaluator) has a W&B run of its own, with job_type the
  # node, in a group named wandb_name; single and anakin have one run. Run
  # files go to <exp_dir>/wandb (WANDB_MODE=offline: only there, for a later
  # `wandb sync`).
  c.logger = ml_collections.ConfigDict()
  c.logger.wandb = False  # also log the metrics to Weights & Biases
  c.logger.wandb_project = 'marl_jax'  # the W&B project
  c.logger.wandb_entity = ''  # W&B user or team; '': the account's default
  c.logger.wandb_name = ''  # the experiment (W&B group); '': exp_dir's basename
  c.logger.wandb_tags = ()  # W&B tags of the run(s), e.g. ('baseline',)
  return c


def optimizer_keys(c: ml_collections.ConfigDict, *, learning_rate: float,
                   optimizer: str = 'adam', eps: float = 1e-5,
                   max_grad_norm: float = 40.0) -> None:
  """The optimiser keys of ``algorithms.common.make_optimizer``."""
  c.optimizer = optimizer  # 'rmsprop' | 'adam'
  c.learning_rate = learning_rate  # the optimiser's step size
  c.optimizer_eps = eps  # epsilon of Adam / RMSProp
  c.rmsprop_decay = 0.99  # RMSProp's decay of squared gradients
  c.rmsprop_momentum = 0.0  # RMSProp's momentum
  c.adam_b1 = 0.9  # Adam's first-moment decay
  c.adam_b2 = 0.999  # Adam's second-moment decay
  c.max_grad_norm = max_grad_norm  # global gradient-norm clip


def network_keys(c: ml_collections.ConfigDict, *, mlp_sizes=(128, 128)
                 ) -> None:
  """The torso keys every network reads. ``observation_key='auto'`` is chosen
  from the env spec when the run is built (pixels, then feature vectors, then
  feature grids); how an input is embedded follows its spec (pixels: conv
  scaled by 1/255; feature grids: conv; vectors: MLP)."""
  c.network = ml_collections.ConfigDict()
  # The observation the torso reads; 'auto': chosen from the env's spec.
  c.network.observation_key = 'auto'
  c.network.mlp_sizes = tuple(mlp_sizes)  # hidden layers after the torso
  c.network.conv_channels = (32, 32)  # conv torso (pixels, grids): channels
  c.network.conv_kernels = (3, 3)  # conv torso's kernel sizes
  c.network.conv_strides = (1, 1)  # conv torso's strides
