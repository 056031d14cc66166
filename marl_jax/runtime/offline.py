"""The offline runtime: learners that fit a dataset instead of acting.

``run(config, exp_dir)`` trains an offline algorithm (``algorithms.
is_offline``: behaviour cloning) on ``config.dataset``, every population
member at once (vmapped; members differ in their init and minibatch order),
and writes a run directory like the other runtimes' (``config.json``, the
learner state as ``checkpoints/<n>``, ``learner.csv``), so ``evaluate.py``,
``run_dir.load_run`` and the training runtimes load a cloned policy as any
run.

Datasets (``dataset_for``):
  * ``human:train`` / ``human:test``: the 2019 human-human Overcooked trials
    of the run's layout (``envs/overcooked_human.py``), both players' steps,
    observed as the run's environment observes them: on ``overcooked/<layout>``
    (with ``old_dynamics=True``, the rules they were played by) each recorded
    state is encoded by the env; on ``jaxmarl/overcooked_<layout>`` (JaxMARL's
    rules are the 2019 ones) each trial is replayed from its recorded start
    (``envs/jaxmarl_human.py``) and observed as JaxMARL's ``GRID``.

Training follows Carroll et al. (2019): whole trials are held out for
validation (``validation_fraction`` of them, at least one); each epoch is a
pass over the training rows in shuffled minibatches of ``batch_size``; the
validation loss is measured after every epoch, each member keeps its params
of lowest validation loss, and training stops when no member has improved for
``early_stopping_patience`` epochs, or after ``num_epochs``.
``learner.csv`` has one row per epoch (step = epochs x training rows, the
demonstrations consumed) with the training and validation loss and accuracy
of every member.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Dict, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from marl_jax import algorithms
from marl_jax.utils import config as config_lib

DATASETS = ('human:train', 'human:test')


class Dataset(NamedTuple):
  """Demonstrations as rows: ``observation`` ``{k: [N, ...]}``, ``action``
  ``[N]`` int32, ``group`` ``[N]`` int (rows of one trial share a group)."""
  observation: Dict[str, np.ndarray]
  action: np.ndarray
  group: np.ndarray


class DatasetError(config_lib.ConfigError):
  """A dataset that does not exist for the run's environment."""


def _human_envs():
  """``{env name: (trials' layout, 'overcooked' | 'jaxmarl')}``: every
  environment the human trials can be observed in."""
  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import overcooked_human
  from marl_jax.envs.jaxmarl import OVERCOOKED_AI_LAYOUTS
  # pylint: enable=g-import-not-at-top
  envs_ = {f'overcooked/{x}': (x, 'overcooked')
           for x in overcooked_human.LAYOUTS}
  envs_.update({f'jaxmarl/overcooked_{x}': (ai, 'jaxmarl')
                for x, ai in OVERCOOKED_AI_LAYOUTS.items()})
  return envs_


def check_dataset(config) -> None:
  """Raises ``DatasetError`` (one line) unless ``config.dataset`` exists for
  ``config.env``."""
  dataset = config.get('dataset', '')
  if dataset not in DATASETS:
    raise DatasetError(f'Unknown dataset {dataset!r}; valid: '
                       f'{", ".join(DATASETS)}.')
  envs_ = _human_envs()
  if str(config.env) not in envs_:
    raise DatasetError(
        f'{config.algo} learns from demonstrations, and dataset {dataset!r} '
        f'has none for {config.env} (it covers {", ".join(envs_)}).')
  # JaxMARL's Overcooked plays the 2019 rules already.
  if (envs_[str(config.env)][1] == 'overcooked' and
      not config.env_kwargs.get('old_dynamics', False)):
    raise DatasetError(
        f'dataset {dataset!r} was played under the 2019 cooking rules: set '
        '--config.env_kwargs.old_dynamics=True.')


def dataset_for(config, env) -> Dataset:
  """``config.dataset`` for the run's environment ``env`` (see the module
  docstring); both players' steps of every trial, in trial order."""
  check_dataset(config)
  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import overcooked_human
  # pylint: enable=g-import-not-at-top
  split = config.dataset.partition(':')[2]
  layout, family = _human_envs()[str(config.env)]
  trials = overcooked_human.load_trials(split, layout)
  inner = env
  if family == 'jaxmarl':
    from marl_jax.envs import jaxmarl_human  # pylint: disable=g-import-not-at-top
    while not hasattr(inner, 'with_players'):
      if hasattr(inner, 'jax_env'):
        inner = inner.jax_env
      elif hasattr(inner, 'unwrapped') and inner.unwrapped is not inner:
        inner = inner.unwrapped
      else:
        raise DatasetError(f'{config.env}: cannot find JaxMARL\'s Overcooked '
                           f'inside {type(env).__name__}.')
    observe = lambda trial: jaxmarl_human.observations(trial, inner)
  else:
    while (not hasattr(inner, 'observe') and
           getattr(inner, 'unwrapped', inner) is not inner):
      inner = inner.unwrapped
    if not hasattr(inner, 'observe'):
      raise DatasetError(f'{config.env}: cannot find the Overcooked env '
                         f'inside {type(env).__name__}.')
    observe = lambda trial: overcooked_human.observations(trial, inner)
  obs, actions, groups = [], [], []
  for i, trial in enumerate(trials):
    o = observe(trial)
    n = trial.num_steps * 2  # [T, 2, ...] -> [2T, ...]
    obs.append({k: v.reshape((n,) + v.shape[2:]) for k, v in o.items()})
    actions.append(trial.actions.reshape(n))
    groups.append(np.full((n,), i, np.int64))
  return Dataset({k: np.concatenate([o[k] for o in obs]) for k in obs[0]},
                 np.concatenate(actions).astype(np.int32),
                 np.concatenate(groups))


def split_by_group(dataset: Dataset, fraction: float, seed: int):
  """``(train, validation)``: whole groups (trials) held out, ``fraction`` of
  them rounded up (at least one when there are two or more)."""
  if not 0.0 <= fraction < 1.0:
    raise config_lib.ConfigError(
        f'validation_fraction must be in [0, 1), got {fraction}.')
  groups = np.unique(dataset.group)
  n_val = int(np.ceil(fraction * len(groups))) if fraction > 0 else 0
  n_val = min(n_val, len(groups) - 1)
  held = np.random.default_rng(seed).permutation(groups)[:n_val]
  is_val = np.isin(dataset.group, held)

  def take(rows):
    return Dataset({k: v[rows] for k, v in dataset.observation.items()},
                   dataset.action[rows], dataset.group[rows])

  return take(~is_val), take(is_val)


def run(config, exp_dir: str, resume: bool = False,
        max_epochs: int | None = None):
  """Trains offline algorithm ``config.algo`` (see the module docstring)."""
  # pylint: disable=g-import-not-at-top
  from marl_jax.algorithms.bc import Batch
  from marl_jax.runtime.program import RunResult, StopSignals
  from marl_jax.utils import checkpointing
  from marl_jax.utils.logging import MetricLogger, wandb_options
  # pylint: enable=g-import-not-at-top
  if resume:
    raise config_lib.ConfigError(
        f'{config.algo} trains offline in one go (minutes); it cannot be '
        'resumed: start a new run.')
  env = algorithms.make_env(config)
  try:
    spec = env.spec()
    algorithm = algorithms.make(config.algo, spec, config)
    start = time.monotonic()
    data = dataset_for(config, env)
  finally:
    env.close()
  train, val = split_by_group(data, float(config.validation_fraction),
                              int(config.seed))
  batch_size = int(config.batch_size)
  if batch_size <= 0:
    raise config_lib.ConfigError(f'batch_size must be positive, got '
                                 f'{batch_size}.')
  num_train = train.action.shape[0]
  if num_train < batch_size:
    raise config_lib.ConfigError(
        f'batch_size={batch_size} is more than the {num_train} training rows '
        f'of {config.dataset}.')
  num_batches = num_train // batch_size
  members = int(config.population_size)
  print(f'offline: {config.dataset} for {config.env}: {num_train:,} training '
        f'and {val.action.shape[0]:,} validation rows '
        f'({time.monotonic() - start:.1f} s to load)', flush=True)

  train_obs = jax.tree.map(jnp.asarray, train.observation)
  train_act = jnp.asarray(train.action)
  val_batch = Batch(jax.tree.map(jnp.asarray, val.observation),
                    jnp.asarray(val.action),
                    jnp.ones(val.action.shape, jnp.float32))
  has_val = val.action.shape[0] > 0

  def epoch(state, key):
    """One member's pass over the training rows, then its validation."""
    order = jax.random.permutation(key, num_train)[:num_batches * batch_size]
    order = order.reshape(num_batches, batch_size)

    def step(s, rows):
      batch = Batch(jax.tree.map(lambda x: x[rows], train_obs),
                    train_act[rows], jnp.ones((batch_size,), jnp.float32))
      s, metrics = algorithm.update(s, batch)
      return s, metrics

    state, metrics = jax.lax.scan(step, state, order)
    metrics = jax.tree.map(jnp.mean, metrics)
    if has_val:
      held = algorithm.evaluate(state.params, val_batch)
      metrics.update({f'val_{k}': v for k, v in held.items()})
    return state, metrics

  epoch = jax.jit(jax.vmap(epoch))
  keys = jax.random.split(jax.random.PRNGKey(int(config.seed)), members)
  state = jax.jit(jax.vmap(algorithm.init))(keys)
  best = state
  best_loss = np.full((members,), np.inf)
  best_accuracy = np.zeros((members,))
  since_best = np.zeros((members,), np.int64)
  patience = int(config.early_stopping_patience)
  num_epochs = int(config.num_epochs)
  if max_epochs is not None:
    num_epochs = min(num_epochs, max_epochs)
  epoch_key = jax.random.PRNGKey(int(config.seed) + 1)
  logger = MetricLogger(exp_dir, wandb=wandb_options(config))
  ckpt = checkpointing.Checkpointer(os.path.join(exp_dir, 'checkpoints'),
                                    max_to_keep=config.max_checkpoints_to_keep)
  epochs, interrupted = 0, False
  with StopSignals() as flag:
    try:
      while epochs < num_epochs:
        if flag.stop:
          interrupted = True
          break
        t0 = time.monotonic()
        keys = jax.random.split(jax.random.fold_in(epoch_key, epochs), members)
        state, metrics = epoch(state, keys)
        epochs += 1
        metrics = {k: np.asarray(v, np.float64)
                   for k, v in jax.device_get(metrics).items()}
        score = metrics['val_loss'] if has_val else metrics['loss']
        improved = score < best_loss
        best_loss = np.where(improved, score, best_loss)
        best_accuracy = np.where(
            improved, metrics['val_accuracy' if has_val else 'accuracy'],
            best_accuracy)
        since_best = np.where(improved, 0, since_best + 1)
        mask = jnp.asarray(improved)
        best = jax.tree.map(
            lambda n, b: jnp.where(
                mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, b), state, best)
        metrics['epoch_s'] = np.asarray(time.monotonic() - t0)
        logger.write('learner', epochs * num_batches * batch_size, metrics)
        shown = ' '.join(
            f'{k} {" ".join(f"{x:.3f}" for x in np.ravel(v))}'
            for k, v in metrics.items() if k in ('loss', 'accuracy', 'val_loss',
                                                 'val_accuracy'))
        print(f'offline: epoch {epochs}: {shown}', flush=True)
        if patience > 0 and np.all(since_best >= patience):
          print(f'offline: no member improved for {patience} epochs: '
                'stopping early', flush=True)
          break
      meta = dict(env_steps=0, learner_steps=int(np.asarray(best.step)[0]),
                  algo=config.algo, env=config.env, population_size=members,
                  runtime='offline', dataset=config.dataset, epochs=epochs,
                  best_loss=[float(x) for x in best_loss],
                  best_accuracy=[float(x) for x in best_accuracy])
      ckpt.save(epochs, dict(learner=best, runtime=b''), metadata=meta,
                force=True)
      ckpt.wait()
    finally:
      logger.close()
      ckpt.close()
  logging.info('offline: %d epochs.', epochs)
  if has_val and epochs:
    print('offline: kept each member at its lowest validation loss: loss '
          + ' '.join(f'{x:.3f}' for x in best_loss) + ', accuracy '
          + ' '.join(f'{x:.3f}' for x in best_accuracy), flush=True)
  return RunResult(env_steps=0, learner_steps=int(np.asarray(best.step)[0]),
                   interrupted=interrupted, member_returns=None)
