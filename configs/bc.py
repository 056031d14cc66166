"""Behaviour-cloning configs: ``--config=configs/bc.py:<preset or env>``.

``train.py --algo=bc --env=overcooked/<layout>`` clones the 2019 human-human
trials of that layout (``dataset='human:train'``, the ``BC`` model of Carroll
et al.; ``human:test`` gives their held-out human proxy) with their recipe:
an MLP of 2 x 64 on the featurized state, Adam at 1e-3, 15% of the trials
held out for validation, early stopping, and the unstuck rule when acting
(marl_jax/algorithms/bc.py). The trials were played under the 2019 cooking
rules, so the environment gets ``old_dynamics=True``. Training is offline
(``runtime/offline.py``: no actors, a few minutes on a CPU) and writes a run
directory that evaluate.py loads like any run.

``--env=jaxmarl/overcooked_<layout>`` (the five classic layouts) clones the
same trials as JaxMARL's Overcooked observes them: each trial is replayed
from its recorded start (JaxMARL's rules are the 2019 ones) and every step's
``GRID`` is a demonstration; the 2 x 64 MLP reads the flattened grid
(``network.torso='mlp'``, as JaxMARL's IPPO baseline reads it), and the
unstuck rule compares the whole observation.

Presets:
  overcooked  ``overcooked/cramped_room`` from the train split.
"""

import ml_collections

from configs import common

PRESETS = {
    'overcooked': ('overcooked/cramped_room', ('distributed',)),
}


def get_config(arg: str = 'overcooked') -> ml_collections.ConfigDict:
  c = common.build('bc', arg, 'overcooked', PRESETS, algorithm_keys,
                   apply_preset)
  if c.env.startswith('overcooked/'):
    c.env_kwargs.old_dynamics = True  # the rules the trials were played by
    c.env_kwargs.reward_shaping_horizon = 0  # nothing trains on the reward
  elif c.env.startswith('jaxmarl/overcooked'):
    # The 2x64 MLP on JaxMARL's flattened grid (as JaxMARL's IPPO baseline
    # reads it); a conv torso on this CPU clones several times slower.
    c.network.torso = 'mlp'
  return c


def algorithm_keys(c: ml_collections.ConfigDict, runtime: str = '') -> None:
  del runtime
  # 'human:train' | 'human:test': Overcooked's 2019 human-human trials of the
  # run's layout (runtime/offline.py).
  c.dataset = 'human:train'
  c.num_epochs = 100  # passes over the training rows, at most
  c.batch_size = 64  # demonstrations per update
  c.validation_fraction = 0.15  # of the trials, held out for early stopping
  c.early_stopping_patience = 20  # epochs without a better validation loss
  # The unstuck rule when acting: after this many steps in which the agent's
  # own position and orientation stayed the same, the actions it tried in
  # them are not sampled (0: off).
  c.stuck_steps = 3
  # What "its own position and orientation" is: indices into the flattened
  # observation; (): Overcooked's featurized orientation and position on
  # overcooked/, else the whole observation.
  c.stuck_features = ()
  # No clipping in the 2019 recipe: a norm no gradient reaches.
  common.optimizer_keys(c, learning_rate=1e-3, optimizer='adam', eps=1e-8,
                        max_grad_norm=1e6)
  common.network_keys(c, mlp_sizes=(64, 64))
  c.network.torso = 'auto'  # 'auto' (by the input's spec) | 'mlp' (flatten)


def apply_preset(c: ml_collections.ConfigDict, preset: str) -> None:
  """Overrides of a preset; its env and the family's kwargs are set already."""
  del c, preset  # The preset is the defaults on its environment.
