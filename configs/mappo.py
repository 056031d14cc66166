"""MAPPO / IPPO configs: ``--config=configs/mappo.py:<preset or env>``.

Without a preset (``train.py --algo=mappo --env=<env>``): the defaults below
with the env family's kwargs (configs/common.py), the network's observation
chosen from the env spec and a global-state wrapper added for the critic
where the env has no ``GLOBAL``.

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

from configs import common

# name -> (env, runtimes in which --env=<env> selects it).
PRESETS = {
    'overcooked': ('jaxmarl/overcooked_cramped_room', ('anakin',)),
    'toy': ('jax/penalty', ('anakin', 'distributed')),
}


def get_config(arg: str = 'overcooked') -> ml_collections.ConfigDict:
  return common.build('mappo', arg, 'overcooked', PRESETS, algorithm_keys,
                      apply_preset)


def algorithm_keys(c: ml_collections.ConfigDict, runtime: str = '') -> None:
  del runtime
  c.env_wrappers = ('agent_id',)
  c.num_steps = 5_000_000  # total environment steps
  c.num_actors = 1  # distributed runtime: on-policy, so few actors

  # PPO.
  c.discount = 0.99  # gamma of the returns
  c.gae_lambda = 0.95  # GAE's lambda
  c.sequence_length = 128  # rollout length per update
  c.batch_size = 32  # sequences per update (distributed runtime)
  c.replay_max_size = 64  # sequences queued per member
  c.num_epochs = 4  # passes over each batch
  c.num_minibatches = 4  # minibatches per epoch
  c.clip_epsilon = 0.2  # PPO's ratio clip
  c.value_clip_epsilon = 0.2  # <= 0: no value clipping
  c.value_cost = 0.5  # weight of the value loss
  c.entropy_cost = 0.01  # weight of the policy's entropy bonus
  c.normalize_advantages = True  # per minibatch, to mean 0 and std 1
  c.value_normalization = 'none'  # 'none' | 'running'
  c.value_norm_beta = 0.995  # running value normalisation's decay
  c.critic_observation_key = 'GLOBAL'  # mappo only
  c.use_agent_id = True  # AGENT_ID one-hot as an extra input
  c.share_parameters = True  # False: separate params per agent slot
  common.optimizer_keys(c, learning_rate=2.5e-4, optimizer='adam', eps=1e-5,
                        max_grad_norm=0.5)

  # Networks (actor and critic have the same shape, separate params).
  common.network_keys(c, mlp_sizes=(64, 64))
  c.network.torso = 'auto'  # 'auto' (by the input's spec) | 'mlp' (flatten)
  c.network.core = ''  # '' | 'gru' | 'lstm'
  c.network.core_size = 64  # units of the recurrent core


def apply_preset(c: ml_collections.ConfigDict, preset: str) -> None:
  """Overrides of a preset; its env and the family's kwargs are set already."""
  if preset == 'overcooked':
    # JaxMARL's IPPO baseline for Overcooked: MLP on the flattened grid,
    # shaped rewards annealed away over the first half of 5M steps.
    c.network.observation_key = 'GRID'
    c.network.torso = 'mlp'
  elif preset == 'toy':
    c.num_steps = 200_000
    c.num_envs_per_actor = 16
    c.sequence_length = 16
    c.num_minibatches = 2
    c.learning_rate = 3e-3
    c.network.mlp_sizes = (32,)
    c.progress_every_s = 2.0
