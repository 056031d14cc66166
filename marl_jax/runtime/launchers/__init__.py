"""Launchers: run the distributed program (``runtime/program.py``).

* ``single``: every node in this process, stepped in turn (exactly
  reproducible; PBT, fictitious self-play and PSRO run here).
* ``local``: a process per node on this machine, nothing to start by hand.
* ``ray``: a Ray actor per node, on an existing cluster or a local instance.

Each launcher imports the program, never the reverse. ``run(config, exp_dir,
resume, ray_address)`` is what ``train.py`` calls: it builds the program and
hands it to ``config.launcher``.
"""

from __future__ import annotations

from typing import Optional

from marl_jax.runtime.program import ProgramError, RunResult  # pylint: disable=unused-import
from marl_jax.runtime.program import actor_thread_env, check_resumable
from marl_jax.runtime.program import make_program
from marl_jax.utils import config as config_lib

LAUNCHERS = ('local', 'ray', 'single')


def run(config, exp_dir: str, resume: bool = False,
        ray_address: Optional[str] = None) -> RunResult:
  """Builds the program of ``config`` and runs it with ``config.launcher``
  (``local``, ``ray``, or ``single``: the same nodes stepped in turn in this
  process, see ``launchers/single.py``).

  Returns a ``RunResult`` (env steps, learner steps, interrupted,
  mean recent return per member). Raises ``ProgramError`` when a node fails
  or the launcher cannot start (e.g. ``ray_address`` reaches no cluster).
  """
  # The launchers are imported when chosen: a node's process imports this
  # package (its launcher's module lives here) and needs none of the others.
  # pylint: disable=g-import-not-at-top
  import numpy as np
  from marl_jax.runtime import build
  from marl_jax.utils.logging import ProgressLine
  # pylint: enable=g-import-not-at-top

  if config.launcher not in LAUNCHERS:
    raise config_lib.ConfigError(
        f'Unknown launcher {config.launcher!r}; valid: {", ".join(LAUNCHERS)}.')
  if ray_address and config.launcher != 'ray':
    raise config_lib.ConfigError('ray_address needs launcher ray.')
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  if algorithms.is_offline(config.algo):  # No actors: the same run anywhere.
    from marl_jax.runtime import offline  # pylint: disable=g-import-not-at-top
    return offline.run(config, exp_dir, resume=resume)
  build.check_population(config, 'distributed')
  if config.launcher == 'single':
    from marl_jax.runtime.launchers import single  # pylint: disable=g-import-not-at-top
    return single.run(config, exp_dir, resume=resume)
  initial_steps = check_resumable(config, exp_dir) if resume else 0
  program = make_program(config, exp_dir, resume=resume)
  progress = ProgressLine(total_steps=config.num_steps,
                          interval_s=config.progress_every_s,
                          initial_steps=initial_steps)
  last = {}

  def show(counts):
    last.update(counts)
    progress.update(counts['env_steps'], counts.get('member_returns'),
                    {'updates': counts['learner_steps']})

  every = min(config.progress_every_s, 5.0)
  if config.launcher == 'local':
    from marl_jax.runtime.launchers import local  # pylint: disable=g-import-not-at-top
    out = local.launch(program, progress=show, progress_every_s=every,
                       node_env={'actor': actor_thread_env()})
  else:
    from marl_jax.runtime.launchers import ray as ray_launcher  # pylint: disable=g-import-not-at-top
    out = ray_launcher.launch(program, address=ray_address, progress=show,
                              progress_every_s=every)
  counts = out['counts'] or last
  returns = counts.get('member_returns')
  progress.final(counts.get('env_steps', 0),
                 None if returns is None else np.asarray(returns))
  return RunResult(env_steps=int(counts.get('env_steps', 0)),
                   learner_steps=int(counts.get('learner_steps', 0)),
                   interrupted=out['interrupted'],
                   member_returns=returns)
