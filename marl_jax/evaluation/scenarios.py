"""Melting Pot scenarios: the focal per-capita return of every member.

The evaluation protocol of Melting Pot (Leibo et al., 2021, "Scalable
evaluation of multi-agent reinforcement learning with Melting Pot"; Agapiou
et al., 2022, "Melting Pot 2.0"): a scenario is a substrate whose players are
split into *focal* players, all controlled by the population under test, and
*background* players from a fixed population (the scenario's official
saved-model bots). For each population member and each scenario of the
substrate it was trained on, the member controls every focal player for
``num_episodes`` episodes; the score of one episode is the *focal per-capita
return*, the mean over focal players of their episode returns. Reported: its
mean over episodes with a 95% normal-approximation interval, per scenario, and
the mean over the scenarios of the substrate.

Focal players act only on the observations Melting Pot permits them
(``PERMITTED_OBSERVATIONS``: ``RGB``, ``INVENTORY``, ``READY_TO_SHOOT``,
``COLLECTIVE_REWARD`` here; never the privileged ``GLOBAL`` state). A run's
network was built on its training environment's observations, which may
include ``GLOBAL`` (a centralised critic, OPRE's posterior). Which observations
the *action* (and the next recurrent state) actually depends on is read off
the traced ``act`` function (``action_observation_keys``: the jaxpr with
everything else dead-code eliminated): a run whose action depends on an
observation outside the permitted set is refused; every observation the
action does not depend on is given as zeros, so it cannot matter.

Pure pieces (``resolve_scenarios``, ``play_scenario``, ``evaluate_run``,
``summarize``) take environments and policies from the caller; files are read
in ``scenario_run`` and written in ``write_report`` only.
"""

from __future__ import annotations

import difflib
import os
from typing import (Callable, Dict, FrozenSet, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple)

import numpy as np

from marl_jax import algorithms
from marl_jax import run_dir
from marl_jax.envs import meltingpot
from marl_jax.envs.base import Environment
from marl_jax.evaluation import crossplay
from marl_jax.evaluation import files
from marl_jax.evaluation import videos as videos_lib
from marl_jax.utils import checkpointing

ALL = 'all'
# What Melting Pot lets focal players observe (meltingpot.scenario's
# PERMITTED_OBSERVATIONS), as far as our environment passes them on.
PERMITTED_OBSERVATIONS = frozenset(meltingpot.OBSERVATION_KEYS)
BACKGROUNDS = meltingpot.BACKGROUNDS  # or a run directory
METRIC = 'focal_per_capita_return'
FILES = dict(json='scenarios.json', csv='scenarios.csv',
             markdown='scenarios.md', heatmap='scenarios_heatmap.png')
_SCENARIO_FAMILY = 'meltingpot_scenario'


class ScenarioError(ValueError):
  """A bad scenario request; the message names the flag, run or scenario."""


# ----------------------------------------------------------------------------
# Names.
# ----------------------------------------------------------------------------


def _number(scenario: str) -> int:
  return int(scenario.rpartition('_')[2])


def scenarios_of(substrate: str) -> Tuple[str, ...]:
  """Every scenario of ``substrate``, in numerical order (``_0, _1, ...``).

  Scenario names are ``<substrate>_<number>``.
  """
  return tuple(sorted((s for s in meltingpot.SCENARIOS
                       if s.rpartition('_')[0] == substrate), key=_number))


def substrate_of_env(env_name: str, what: str = 'the run') -> str:
  """The substrate of ``meltingpot/<substrate>`` or
  ``meltingpot_scenario/<scenario>``; ``ScenarioError`` for any other env."""
  substrate = meltingpot.substrate_of(env_name)
  if substrate is not None:
    return substrate
  raise ScenarioError(
      f'--scenarios needs runs trained on Melting Pot (meltingpot/<substrate>)'
      f'; {what} was trained on {env_name}.')


def resolve_scenarios(spec: str, substrate: str,
                      run: str = 'the run') -> Tuple[str, ...]:
  """``--scenarios`` (``all`` or comma-separated names) for a run trained on
  ``substrate``: the scenarios to play, in the order given, without repeats.
  """
  names = [s.strip() for s in str(spec).split(',')]
  if not any(names):
    raise ScenarioError('--scenarios is empty: give scenario names (e.g. '
                        f'{substrate}_0) or all.')
  if '' in names:
    raise ScenarioError(f'--scenarios={spec!r} has an empty name.')
  own = scenarios_of(substrate)
  listing = f'Scenarios of {substrate}: {", ".join(own)} (or all).'
  if ALL in names:
    if len(names) > 1:
      raise ScenarioError(f'--scenarios={spec!r}: give all alone, or a list '
                          'of scenario names.')
    return own
  for name in names:
    if name not in meltingpot.SCENARIOS:
      close = difflib.get_close_matches(name, own, n=3) or (
          difflib.get_close_matches(name, meltingpot.SCENARIOS, n=3))
      hint = f' Did you mean {", ".join(close)}?' if close else ''
      raise ScenarioError(f'Unknown Melting Pot scenario {name!r} in '
                          f'--scenarios.{hint} {listing}')
    if name not in own:
      raise ScenarioError(
          f'--scenarios: {name} is a scenario of {name.rpartition("_")[0]}, '
          f'but {run} was trained on {substrate}. {listing}')
  return tuple(dict.fromkeys(names))


# ----------------------------------------------------------------------------
# Which observations a policy acts on.
# ----------------------------------------------------------------------------


def _conservative_used_inputs(jaxpr, used_outputs) -> List[bool]:
  """Inputs that ``used_outputs`` may depend on: an equation needs all its
  inputs when any of its outputs is needed (no look inside nested jaxprs)."""
  needed = {v for v, u in zip(jaxpr.outvars, used_outputs)
            if u and not hasattr(v, 'val')}  # (literals have a `val`)
  for eqn in reversed(jaxpr.eqns):
    if any(v in needed for v in eqn.outvars):
      needed.update(v for v in eqn.invars if not hasattr(v, 'val'))
  return [v in needed for v in jaxpr.invars]


def _used_inputs(jaxpr, used_outputs) -> List[bool]:
  """Which inputs of ``jaxpr`` the ``used_outputs`` depend on: JAX's own
  dead-code elimination (which looks inside nested jaxprs), or the
  conservative walk where this JAX does not offer it."""
  try:
    from jax.interpreters import partial_eval as pe  # pylint: disable=g-import-not-at-top
    _, used = pe.dce_jaxpr(jaxpr, list(used_outputs))
  except (ImportError, AttributeError, TypeError, NotImplementedError):
    return _conservative_used_inputs(jaxpr, used_outputs)
  return [bool(u) for u in used]


def action_observation_keys(algorithm, params, observation_spec,
                            greedy: bool = False) -> FrozenSet[str]:
  """The observation keys that ``algorithm.act``'s action and next recurrent
  state depend on (its extras, e.g. value estimates, are not used to act).

  Args:
    algorithm: an ``algorithms.base.Algorithm``.
    params: its params with a leading population axis ``[P, ...]`` (only
      shapes are read).
    observation_spec: ``{key: ArraySpec}`` it was built on.
    greedy: as the policy will act.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from marl_jax.networks import AgentInput  # pylint: disable=g-import-not-at-top
  keys = sorted(observation_spec)
  obs = {k: jax.ShapeDtypeStruct((1,) + tuple(observation_spec[k].shape),
                                 np.dtype(observation_spec[k].dtype))
         for k in keys}
  member = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype),
                        params)
  core = jax.eval_shape(lambda: algorithm.initial_core_state(1))
  key = jax.eval_shape(lambda: jax.random.PRNGKey(0))

  def act(observation, p, c, k):
    inputs = AgentInput(observation=observation,
                        prev_action=jnp.zeros((1,), jnp.int32),
                        prev_reward=jnp.zeros((1,), jnp.float32),
                        step_type=jnp.zeros((1,), jnp.int32))
    action, _, next_core = algorithm.act(p, inputs, c, k, greedy)
    return action, next_core

  jaxpr = jax.make_jaxpr(act)(obs, member, core, key).jaxpr
  used = _used_inputs(jaxpr, [True] * len(jaxpr.outvars))
  # Observation leaves come first, one per key, in sorted key order.
  return frozenset(k for k, u in zip(keys, used[:len(keys)]) if u)


class FocalPolicy:
  """A population acting for a scenario's focal players (``crossplay.Policy``).

  Passes the policy only the observations ``keep``; every other observation
  it was built on is zeros of its shape (``fill``).
  """

  def __init__(self, policy, keep: Sequence[str],
               fill: Mapping[str, np.ndarray]):
    self._policy = policy
    self._keep = tuple(keep)
    self._fill = dict(fill)

  def reset(self, members: np.ndarray) -> None:
    self._policy.reset(members)

  def reseed(self, seed: int) -> None:
    self._policy.reseed(seed)

  def step(self, timestep) -> np.ndarray:
    observation = {k: timestep.observation[k] for k in self._keep}
    observation.update(self._fill)
    return self._policy.step(timestep._replace(observation=observation))

  def observe_reward(self, reward: np.ndarray) -> None:
    self._policy.observe_reward(reward)


def check_observations(run: str, used: FrozenSet[str], run_spec,
                       scenario_spec, scenario: str) -> None:
  """Raises ``ScenarioError`` when the action depends on an observation that
  is not permitted or that the scenario does not give in the same shape."""
  forbidden = sorted(used - PERMITTED_OBSERVATIONS)
  if forbidden:
    raise ScenarioError(
        f'{run} acts on {", ".join(forbidden)}, which Melting Pot does not let '
        'focal players observe (permitted: '
        f'{", ".join(sorted(PERMITTED_OBSERVATIONS))}); train it with '
        'network.observation_key=RGB to evaluate it on scenarios.')
  for k in sorted(used):
    have = scenario_spec.observation.get(k)
    want = run_spec.observation[k]
    if have is None or (tuple(have.shape), np.dtype(have.dtype)) != (
        tuple(want.shape), np.dtype(want.dtype)):
      got = ('none' if have is None else
             f'{tuple(have.shape)} {np.dtype(have.dtype)}')
      raise ScenarioError(
          f'{run} acts on {k} of shape {tuple(want.shape)} '
          f'{np.dtype(want.dtype)}, but scenario {scenario} gives {got}.')


# ----------------------------------------------------------------------------
# Trained runs.
# ----------------------------------------------------------------------------


class ScenarioRun(NamedTuple):
  name: str
  exp_dir: str
  env: str  # the training env, meltingpot/<substrate>
  substrate: str
  algorithm: object
  params: object  # [P, ...]
  spec: object  # EnvSpec of the training env (what the network was built on)
  size: int
  env_steps: int


def run_env(exp_dir: str) -> str:
  """The env a run was trained on, from its ``config.json``."""
  try:
    config = run_dir.read_config(exp_dir)
  except checkpointing.CheckpointError as e:
    raise ScenarioError(str(e)) from None
  if 'env' not in config:
    raise ScenarioError(f'{run_dir.config_path(exp_dir)} is not a readable '
                        'train.py config (no env).')
  return str(config.env)


def scenario_run(exp_dir: str, name: str = '') -> ScenarioRun:
  """A run trained on a Melting Pot substrate, from its run directory alone
  (``run_dir.load_run``), checked for scenarios."""
  name = name or os.path.basename(os.path.normpath(exp_dir))
  substrate = substrate_of_env(run_env(exp_dir), exp_dir)
  try:
    config, algorithm, params, meta = run_dir.load_run(exp_dir)
  except ImportError as e:  # dm-meltingpot is not installed: how to
    raise ScenarioError(str(e)) from None
  wrappers = tuple(config.get('env_wrappers', ()) or ())
  if wrappers:
    raise ScenarioError(
        f'{exp_dir} was trained with env_wrappers {", ".join(wrappers)}, '
        'which scenarios do not give; only runs without env wrappers can be '
        'evaluated on Melting Pot scenarios.')
  env = algorithms.make_env(config)
  try:
    spec = env.spec()
  finally:
    env.close()
  return ScenarioRun(name, exp_dir, str(config.env), substrate, algorithm,
                     params, spec, int(config.population_size),
                     int(meta.get('env_steps', 0)))


def focal_policy_factory(run: ScenarioRun, greedy: bool = False,
                         seed: int = 0) -> Callable[..., FocalPolicy]:
  """``make(scenario_spec, scenario) -> FocalPolicy`` for ``run``: checks the
  observations, builds one jitted policy per number of focal players."""
  from marl_jax.evaluation import policies  # pylint: disable=g-import-not-at-top
  used = action_observation_keys(run.algorithm, run.params,
                                 run.spec.observation, greedy)
  built: Dict[int, FocalPolicy] = {}

  def make(scenario_spec, scenario: str) -> FocalPolicy:
    check_observations(run.name, used, run.spec, scenario_spec, scenario)
    n = scenario_spec.num_agents
    if n not in built:
      fill = {k: s.zeros((n,)) for k, s in run.spec.observation.items()
              if k not in used}
      built[n] = FocalPolicy(
          policies.PopulationPolicy(run.algorithm, run.params, n,
                                    greedy=greedy, seed=seed),
          keep=sorted(used), fill=fill)
    return built[n]

  return make


# ----------------------------------------------------------------------------
# Backgrounds and environments.
# ----------------------------------------------------------------------------


def background(spec: str, substrates: Sequence[str], seed: int = 0):
  """``--scenario_background``: ``bots``, ``random``, ``noop`` (as strings),
  or a run directory (a ``backgrounds.TrainedBackground`` of its member 0:
  the scenario environments are given it, not the run)."""
  if spec in BACKGROUNDS:
    return spec
  if not os.path.isdir(spec):
    raise ScenarioError(
        f'--scenario_background must be one of {", ".join(BACKGROUNDS)} or a '
        f'train.py run directory; got {spec!r} (not a directory).')
  substrate = substrate_of_env(run_env(spec), f'--scenario_background {spec}')
  for s in substrates:
    if s != substrate:
      raise ScenarioError(
          f'--scenario_background {spec} was trained on {substrate}, but the '
          f'scenarios are of {s}: a background run must be trained on the '
          "scenarios' substrate.")
  from marl_jax.evaluation import backgrounds  # pylint: disable=g-import-not-at-top
  return backgrounds.TrainedBackground(spec, seed=seed, substrate=substrate)


def scenario_env_factory(background_policy, seed: int = 0,
                         max_episode_steps: Optional[int] = None
                         ) -> Callable[[str], Environment]:
  """``make(scenario) -> Environment``: the scenario's focal players, without
  ``GLOBAL``, with ``background_policy`` in the other slots."""
  from marl_jax import envs  # pylint: disable=g-import-not-at-top
  count = [0]

  def make(scenario: str) -> Environment:
    count[0] += 1
    kwargs = dict(background=background_policy, global_state='none',
                  seed=seed + count[0] - 1)
    if max_episode_steps is not None:
      kwargs['max_episode_steps'] = max_episode_steps
    try:
      return envs.make(f'{_SCENARIO_FAMILY}/{scenario}', **kwargs)
    except meltingpot.MissingBotsError as e:
      raise ScenarioError(
          f'{e} (evaluate.py: --scenario_background=random, noop or a run '
          'directory.)') from None
    except ImportError as e:
      raise ScenarioError(str(e)) from None

  return make


# ----------------------------------------------------------------------------
# The protocol.
# ----------------------------------------------------------------------------


class ScenarioResult(NamedTuple):
  run: str
  substrate: str
  scenarios: Tuple[str, ...]
  episodes: np.ndarray  # [P, S, E] focal per-capita return of each episode
  mean: np.ndarray  # [P, S] over episodes
  ci95: np.ndarray  # [P, S] half-width of the 95% interval (NaN for E = 1)
  substrate_mean: np.ndarray  # [P] mean over the scenarios of `mean`


def summarize(run: str, substrate: str, scenarios: Sequence[str],
              episodes: np.ndarray) -> ScenarioResult:
  """``episodes [P, S, E]`` -> per-scenario means, intervals, substrate mean."""
  episodes = np.asarray(episodes, np.float64)
  if episodes.ndim != 3 or episodes.shape[1] != len(scenarios):
    raise ValueError(f'episodes must be [members, {len(scenarios)} scenarios, '
                     f'episodes]; got shape {episodes.shape}.')
  mean, ci = crossplay.mean_ci95(episodes)
  return ScenarioResult(run, substrate, tuple(scenarios), episodes, mean, ci,
                        mean.mean(-1))


def play_scenario(env: Environment, policy: crossplay.Policy, member: int,
                  num_episodes: int) -> np.ndarray:
  """``[num_episodes]`` focal per-capita returns of ``member`` controlling
  every agent slot of ``env`` (a scenario's focal players)."""
  seats = [(policy, member)] * env.spec().num_agents
  return np.array([crossplay.play_seated(env, seats, 'episode_return')
                   for _ in range(num_episodes)])


def evaluate_run(run: str, substrate: str, scenarios: Sequence[str],
                 make_env: Callable[[str], Environment],
                 make_policy: Callable[..., crossplay.Policy], size: int,
                 num_episodes: int,
                 progress: Optional[Callable[..., None]] = None
                 ) -> ScenarioResult:
  """Every member of a run of ``size`` members on every scenario.

  Args:
    run: the run's name.
    substrate: the substrate of ``scenarios``.
    scenarios: scenario names.
    make_env: ``scenario -> Environment`` of its focal players (closed here).
    make_policy: ``(env_spec, scenario) -> Policy`` acting for them.
    size: population size.
    num_episodes: episodes per member per scenario.
    progress: called as ``progress(run, scenario, member, returns [E])``.
  """
  if num_episodes <= 0 or size <= 0:
    raise ValueError('num_episodes and size must be positive, got '
                     f'{num_episodes}, {size}.')
  episodes = np.zeros((size, len(scenarios), num_episodes))
  for s, scenario in enumerate(scenarios):
    env = make_env(scenario)
    try:
      policy = make_policy(env.spec(), scenario)
      for m in range(size):
        episodes[m, s] = play_scenario(env, policy, m, num_episodes)
        if progress is not None:
          progress(run, scenario, m, episodes[m, s])
    finally:
      env.close()
  return summarize(run, substrate, scenarios, episodes)


# ----------------------------------------------------------------------------
# Reports.
# ----------------------------------------------------------------------------


def rows(results: Sequence[ScenarioResult],
         num_episodes: int) -> List[Dict[str, object]]:
  """One row per run, member and scenario."""
  out = []
  for r in results:
    for m in range(r.mean.shape[0]):
      for s, scenario in enumerate(r.scenarios):
        out.append(dict(run=r.run, member=m, scenario=scenario,
                        focal_per_capita_return=float(r.mean[m, s]),
                        ci95=float(r.ci95[m, s]), num_episodes=num_episodes))
  return out


def markdown(results: Sequence[ScenarioResult], background_name: str,
             num_episodes: int) -> str:
  """Per substrate: scenarios as rows, members as columns, a mean row."""
  lines = ['# Melting Pot scenarios', '',
           'Focal per-capita return (mean over focal players of the episode '
           f'return), mean over {num_episodes} episodes per member and '
           f'scenario, +- the 95% interval; background: {background_name}.']
  fmt = lambda x: f'{x:.2f}' if np.isfinite(x) else '-'
  by_substrate: Dict[str, List[ScenarioResult]] = {}
  for r in results:
    by_substrate.setdefault(r.substrate, []).append(r)
  for substrate, group in by_substrate.items():
    columns = [(r, m) for r in group for m in range(r.mean.shape[0])]
    scenarios = list(dict.fromkeys(s for r in group for s in r.scenarios))
    lines += ['', f'## {substrate}', '',
              '| scenario | ' + ' | '.join(
                  files.player_name(r.run, m) for r, m in columns) + ' |',
              '| --- |' + ' ---: |' * len(columns)]
    for scenario in scenarios:
      cells = []
      for r, m in columns:
        if scenario in r.scenarios:
          s = r.scenarios.index(scenario)
          cells.append(f'{fmt(r.mean[m, s])} +- {fmt(r.ci95[m, s])}')
        else:
          cells.append('-')
      lines.append(f'| {scenario} | ' + ' | '.join(cells) + ' |')
    total = len(scenarios_of(substrate))
    label = (f'mean (all {total} scenarios)' if len(scenarios) == total and
             all(len(r.scenarios) == total for r in group) else
             f'mean ({len(scenarios)} of {total} scenarios)')
    lines.append(f'| **{label}** | ' + ' | '.join(
        f'**{fmt(r.substrate_mean[m])}**' for r, m in columns) + ' |')
  return '\n'.join(lines) + '\n'


def write_report(out_dir: str, results: Sequence[ScenarioResult],
                 runs: Mapping[str, Mapping[str, object]],
                 background_name: str, num_episodes: int,
                 max_episode_steps: Optional[int] = None,
                 videos: Optional[Sequence[Mapping[str, object]]] = None
                 ) -> Dict[str, str]:
  """Writes scenarios.json, scenarios.csv, scenarios.md and
  scenarios_heatmap.png (members x scenarios) into ``out_dir``.

  Args:
    out_dir: where to write.
    results: one per run.
    runs: by run name, what to record of it (exp_dir, env, ...).
    background_name: the background (``bots``, ``noop``, a run dir, ...).
    num_episodes: episodes per member per scenario.
    max_episode_steps: the episode length cap, None for the substrates' own.
    videos: recorded episodes (``videos.record_scenarios``), to list.
  """
  if not results:
    raise ValueError('No scenario results to report.')
  os.makedirs(out_dir, exist_ok=True)
  paths = {k: os.path.join(out_dir, v) for k, v in FILES.items()}
  table = rows(results, num_episodes)
  files.write_csv(paths['csv'], table)
  doc = dict(
      protocol='meltingpot_scenarios', metric=METRIC,
      background=background_name, num_episodes=num_episodes,
      max_episode_steps=max_episode_steps,
      runs={r.run: dict(runs.get(r.run, {}), substrate=r.substrate,
                        population_size=int(r.mean.shape[0]),
                        scenarios=list(r.scenarios),
                        all_scenarios=(sorted(r.scenarios) ==
                                       sorted(scenarios_of(r.substrate))))
            for r in results},
      rows=table,
      substrate_mean=[dict(run=r.run, member=m, substrate=r.substrate,
                           focal_per_capita_return=float(r.substrate_mean[m]),
                           num_scenarios=len(r.scenarios))
                      for r in results for m in range(r.mean.shape[0])])
  text = markdown(results, background_name, num_episodes)
  if videos:
    doc['videos'] = [dict(v) for v in videos]
    text += '\n'.join(videos_lib.markdown_lines(videos, METRIC)) + '\n'
    paths['videos'] = os.path.join(out_dir, videos_lib.VIDEO_DIR)
  files.write_json(paths['json'], doc)
  files.write_text(paths['markdown'], text)
  row_labels = [files.player_name(r.run, m) for r in results
                for m in range(r.mean.shape[0])]
  col_labels = list(dict.fromkeys(s for r in results for s in r.scenarios))
  matrix = np.full((len(row_labels), len(col_labels)), np.nan)
  i = 0
  for r in results:
    for m in range(r.mean.shape[0]):
      for s, scenario in enumerate(r.scenarios):
        matrix[i, col_labels.index(scenario)] = r.mean[m, s]
      i += 1
  substrates = ', '.join(dict.fromkeys(r.substrate for r in results))
  files.heatmap(paths['heatmap'], matrix, row_labels, col_labels, 'scenario',
                'member', f'Melting Pot scenarios of {substrates}\nfocal '
                f'per-capita return, background {background_name}',
                fmt='.2f')
  return paths
