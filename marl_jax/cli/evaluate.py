r"""Zero-shot evaluation of trained populations against held-out partners
(``evaluate.py``, ``marl-jax-evaluate``: the same flags).

  python evaluate.py --exp_dir=runs/pop_random --heldout=runs/sp_s1 \
      --heldout=runs/sp_s2 --num_episodes=10 --out_dir=runs/eval

  python evaluate.py --exp_dir=runs/overcooked_fsp --heldout=scripted:greedy \
      --heldout=scripted:random --num_episodes=4

Every member of each --exp_dir run plays with every member of its own run
(self-play on the diagonal, within-population cross-play off it) and with
every member of each --heldout run (zero-shot cross-play), on two-player
environments, seats alternating between episodes. Runs load from their run
directory alone (config.json + checkpoints). A held-out partner can also be
a scripted policy, ``scripted:<name>`` (``random``; on Overcooked also
``stay`` and ``greedy``, the package's planning agent; see
marl_jax/evaluation/scripted.py), or, on a Melting Pot substrate, Melting
Pot's official bots:

  python evaluate.py --exp_dir=runs/cooking \
      --heldout=meltingpot_bots:collaborative_cooking__cramped__chef_0
  python evaluate.py --exp_dir=runs/cooking --heldout=meltingpot_bots:all

(names of meltingpot's bot registry, comma-separated, plus ``noop_bot``;
``all``: every bot of the substrate; each bot is a held-out policy of one
member named ``meltingpot_bots:<bot>``). Their saved models come with Melting
Pot's assets archive: without it the request fails before anything is played,
saying how to install it. See marl_jax/evaluation/meltingpot_bots.py.

On Overcooked's five classic layouts the held-out partner can be the human
proxy of Carroll et al. (2019), a behaviour clone of the 2019 human test
trials on the run's layout (``human_proxy:train``: of the train trials),
for runs on ``overcooked/<layout>`` trained under the 2019 cooking rules
(``--config.env_kwargs.old_dynamics=True``) and for runs on JaxMARL's
``jaxmarl/overcooked_<layout>`` (whose rules are the 2019 ones); the clone
is trained on the run's own family and observation. Clones are made on
first use and kept in $MARL_JAX_HUMAN_PROXY_DIR (default
~/.cache/marl_jax/human_proxy):

  python evaluate.py --exp_dir=runs/sp_cramped --heldout=human_proxy \
      --num_episodes=40

The report then also gives each held-out partner's score by seat (the focal
run at index 0, and at index 1).

Writes results.json, crossplay.csv, payoff.json (every match as a payoff
table of run[member] policies), report.md and heatmap.png into --out_dir.
With --videos, also GIFs under <out_dir>/videos, listed in results.json and
report.md: one extra episode per pair of members of each focal run and
partner, ``<run>_m<i>__vs__<partner>_m<j>.gif`` (the focal member in slot 0;
at most --max_videos, default 8, per focal run and partner, diagonal by
diagonal so every focal member gets one before any gets a second). They are
played after every measured episode, in another copy of the environment with
reseeded policies, so the numbers are the same with or without --videos.
For competitive games (every step's rewards summed to zero, or --elo) also
Elo ratings of every member and held-out policy: in results.json, elo.csv
and the report. A run's own payoff table (payoff.json in its run dir,
written by PSRO training) is shown in the report when present (--nopayoff
hides it).

Melting Pot scenarios (runs trained on ``meltingpot/<substrate>``):

  python evaluate.py --exp_dir=runs/cooking --scenarios=all \
      --scenario_background=bots --num_episodes=10

plays, as Melting Pot's protocol does, every member of each --exp_dir run in
control of all focal players of each scenario (``--scenarios=all``: every
scenario of the run's substrate; or names, e.g.
``collaborative_cooking__cramped_0,collaborative_cooking__cramped_1``), and
reports the focal per-capita return per scenario (with a 95% interval) and its
mean over the scenarios. Focal players act on Melting Pot's permitted
observations only (never ``GLOBAL``). The background players are the
scenario's official bots (``bots``, the default; they need Melting Pot's
assets archive) or ``random``, ``noop``, or a run directory (its member 0).
Writes scenarios.json, scenarios.csv, scenarios.md and scenarios_heatmap.png
(see marl_jax/evaluation/scenarios.py); cross-play is not run. With --videos,
one extra episode per member (at most --max_videos) and scenario,
``<run>_m<i>__on__<scenario>.gif``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

from absl import app
from absl import flags
from absl import logging

from marl_jax import cli

# The flags defined here belong to the program that calls main()
# (evaluate.py or the console script): its --help lists them, as absl
# does for flags defined in __main__.
flags.disclaim_key_flags()


def _prog() -> str:
  return cli.program_name('evaluate.py')


class _Flags:
  """The flags, defined in absl's global ``FLAGS`` by ``main`` (once)."""

  def __init__(self):
    self.exp_dir = flags.DEFINE_multi_string(
        'exp_dir', None, 'Trained run(s) to evaluate (focal).')
    self.heldout = flags.DEFINE_multi_string(
        'heldout', [], 'Held-out partners: run directories, scripted:<name> '
        '(random, stay, greedy), meltingpot_bots:<bot>[,<bot>...] / '
        'meltingpot_bots:all (Melting Pot\'s official bots), or human_proxy '
        '(Overcooked: a behaviour clone of the 2019 human test trials on '
        'the run\'s layout, Carroll et al.\'s H_proxy; human_proxy:train '
        'for the train split\'s clone; cloned once into '
        '$MARL_JAX_HUMAN_PROXY_DIR or ~/.cache/marl_jax/human_proxy).')
    self.env = flags.DEFINE_string('env', None,
                                   'Environment (default: the runs\').')
    self.num_episodes = flags.DEFINE_integer('num_episodes', 10,
                                             'Episodes per pair of members.')
    self.greedy = flags.DEFINE_bool('greedy', False, 'Act greedily (argmax).')
    self.seed = flags.DEFINE_integer('seed', 0, 'Random seed of the policies.')
    self.out_dir = flags.DEFINE_string('out_dir', None,
                                       'Where to write the report (default: '
                                       '<first exp_dir>/eval).')
    self.elo = flags.DEFINE_bool(
        'elo', None, 'Rate every member and held-out policy by Elo (default: '
        'when the game turned out zero-sum).')
    self.payoff = flags.DEFINE_bool(
        'payoff', True, 'Show each run\'s saved payoff table (payoff.json in '
        'its run dir) in the report when present.')
    self.metric = flags.DEFINE_string(
        'metric', None, 'Episode statistic to report (default: '
        'episode_sparse_reward when the env has it, else episode_return).')
    self.scenarios = flags.DEFINE_string(
        'scenarios', None, 'Melting Pot scenarios to evaluate the runs on '
        'instead of cross-play: comma-separated names, or all (every scenario '
        'of the runs\' substrate).')
    self.scenario_background = flags.DEFINE_string(
        'scenario_background', 'bots', 'With --scenarios: the background '
        'players: bots (the official ones), random, noop, or a run directory '
        '(member 0).')
    self.videos = flags.DEFINE_bool(
        'videos', False, 'Also record GIFs into <out_dir>/videos: one extra, '
        'separately seeded episode per pair of members (or per member and '
        'scenario with --scenarios), after the measured ones; listed in the '
        'report.')
    self.max_videos = flags.DEFINE_integer(
        'max_videos', 8, 'With --videos: at most this many videos per focal '
        'run and partner (every focal member before any gets a second), or per '
        'scenario (members in order).')
    self.video_min_size = flags.DEFINE_integer(
        'video_min_size', 256, 'With --videos: frames are enlarged '
        '(nearest-neighbour, by a whole factor) to at least this many pixels '
        'on their short side.')
    self.scenario_max_steps = flags.DEFINE_integer(
        'scenario_max_steps', None, 'With --scenarios: cap episodes at this '
        'many steps (default: the substrate\'s own length, as Melting Pot\'s '
        'protocol).')


class UsageError(Exception):
  pass


def _main(opts: _Flags, argv):
  if len(argv) > 1:
    raise UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  if not opts.exp_dir.value:
    raise UsageError('--exp_dir is required (one or more trained runs).')
  if opts.num_episodes.value <= 0:
    raise UsageError(f'--num_episodes must be positive, got '
                     f'{opts.num_episodes.value}.')
  if flags.FLAGS['max_videos'].present and not opts.videos.value:
    raise UsageError('--max_videos is for --videos.')
  if opts.max_videos.value <= 0:
    raise UsageError(
        f'--max_videos must be positive, got {opts.max_videos.value}.')
  if flags.FLAGS['video_min_size'].present and not opts.videos.value:
    raise UsageError('--video_min_size is for --videos.')
  if opts.video_min_size.value <= 0:
    raise UsageError(f'--video_min_size must be positive, got '
                     f'{opts.video_min_size.value}.')
  if opts.scenarios.value is not None:
    return _scenarios_main(opts)
  for flag in (opts.scenario_background, opts.scenario_max_steps):
    if flags.FLAGS[flag.name].present:
      raise UsageError(f'--{flag.name} is for --scenarios.')
  # pylint: disable=g-import-not-at-top
  from marl_jax.evaluation import human_proxy
  from marl_jax.evaluation import meltingpot_bots
  from marl_jax.evaluation import report
  from marl_jax.evaluation import scripted
  from marl_jax.evaluation import videos
  from marl_jax.population import payoff as payoff_lib
  from marl_jax import algorithms
  # pylint: enable=g-import-not-at-top
  scripted_specs = {d for d in opts.heldout.value if scripted.parse(d)}
  bot_specs = [d for d in opts.heldout.value if meltingpot_bots.parse(d)]
  proxy_specs = {d: human_proxy.parse(d) for d in opts.heldout.value
                 if human_proxy.parse(d)}
  for d in list(opts.exp_dir.value) + list(opts.heldout.value):
    if (d not in scripted_specs and d not in bot_specs and
        d not in proxy_specs and not os.path.isdir(d)):
      raise UsageError(f'{d} is not a directory (expected a train.py run dir, '
                       'or scripted:<name>, meltingpot_bots:<bot> or '
                       'human_proxy for --heldout).')
  focal = [report.load(d, opts.greedy.value, opts.seed.value)
           for d in opts.exp_dir.value]
  heldout_runs = {}
  for k, d in enumerate(opts.heldout.value):
    seed = opts.seed.value + 1 + k
    if d in proxy_specs:  # A clone of human play acts stochastically.
      heldout_runs[d] = report.load(_human_proxy_dir(focal, proxy_specs[d]),
                                    False, seed, name=d)
    elif d not in scripted_specs and d not in bot_specs:
      heldout_runs[d] = report.load(d, opts.greedy.value, seed)
  runs = {}
  for r in focal + list(heldout_runs.values()):
    if r.name in runs and runs[r.name].exp_dir != r.exp_dir:
      raise UsageError(f'Two runs are both named {r.name!r}; give run dirs '
                       'with different names.')
    runs[r.name] = r
  env_name = opts.env.value or focal[0].config.env
  for r in runs.values():
    if r.config.env != env_name and not opts.env.value:
      raise UsageError(f'{r.exp_dir} was trained on {r.config.env}, '
                       f'{focal[0].exp_dir} on {env_name}; pass --env to '
                       'evaluate all on one environment.')
  # Every bot is checked (names, saved models) before anything is built.
  bot_names = {d: meltingpot_bots.resolve(d, env_name) for d in bot_specs}
  for d, names in bot_names.items():
    meltingpot_bots.check_installed(names, d)
  env = algorithms.make_env(focal[0].config, env_name)
  # Scripted partners and bots are built with the environment they play in.
  heldout = []
  for k, d in enumerate(opts.heldout.value):
    if d in scripted_specs:
      if d not in runs:
        runs[d] = report.load_scripted(d, env, opts.seed.value + 1 + k)
      heldout.append(runs[d])
    elif d in bot_names:
      for name in bot_names[d]:
        key = meltingpot_bots.PREFIX + name
        if key not in runs:
          runs[key] = report.load_meltingpot_bot(name, env)
          heldout.append(runs[key])
    else:
      heldout.append(heldout_runs[d])
  metric = opts.metric.value or ('episode_sparse_reward' if 'sparse_reward' in
                             env.spec().info_keys else 'episode_return')
  blocks = report.evaluate_runs(env, focal, heldout, opts.num_episodes.value,
                                metric)
  use_elo = report.is_zero_sum(blocks) if opts.elo.value is None else opts.elo.value
  elo_ratings = report.elo_table(blocks) if use_elo else None
  run_payoffs = {}
  if opts.payoff.value:
    for r in runs.values():
      if r.exp_dir and os.path.exists(
          os.path.join(r.exp_dir, payoff_lib.FILENAME)):
        run_payoffs[r.name] = payoff_lib.PayoffTable.load(r.exp_dir)
  out_dir = opts.out_dir.value or os.path.join(opts.exp_dir.value[0], 'eval')
  write = lambda recorded: report.write_report(
      out_dir, blocks, runs, env_name, metric, opts.num_episodes.value,
      elo_ratings=elo_ratings, run_payoffs=run_payoffs, videos=recorded)
  paths = write(None)
  env.close()
  if opts.videos.value:
    # Extra episodes after every measured one, in another copy of the env,
    # reseeded; then the report again, listing them.
    video_env = algorithms.make_env(focal[0].config, env_name)
    seed = opts.seed.value + videos.SEED_OFFSET
    video_runs = {name: report.for_env(r, video_env, seed + k)
                  for k, (name, r) in enumerate(runs.items())}
    with _video_errors(out_dir):
      recorded = videos.record_crossplay(
          video_env, [(video_runs[b.focal], video_runs[b.partner])
                      for b in blocks], out_dir, metric, opts.max_videos.value,
          min_size=opts.video_min_size.value)
    report.close(r for n, r in video_runs.items() if r is not runs[n])
    video_env.close()
    paths = write(recorded)
  report.close(runs.values())
  with open(paths['markdown']) as f:
    print(f.read())
  for k, p in paths.items():
    print(f'{_prog()}: {k}: {p}')


def _human_proxy_dir(focal, split: str) -> str:
  """The run directory of the human clone of ``split`` for the focal runs'
  layout and observation, cloned first if it is not there yet."""
  from marl_jax.cli import human_proxies  # pylint: disable=g-import-not-at-top
  from marl_jax.evaluation import human_proxy  # pylint: disable=g-import-not-at-top
  wanted = {human_proxy.layout_of(r.config, r.exp_dir) for r in focal}
  if len(wanted) > 1:
    raise UsageError('--heldout=human_proxy: the focal runs differ in layout '
                     'or observation (' + ', '.join(
                         f'{p.env} {p.observation}'
                         for p in sorted(wanted)) +
                     '); evaluate one layout at a time.')
  return human_proxies.ensure(wanted.pop(), split, _prog())


@contextlib.contextmanager
def _video_errors(out_dir):
  """An environment that cannot render, as a --videos error."""
  try:
    yield
  except (NotImplementedError, ValueError) as e:
    raise UsageError(f'--videos: {e} (the report without videos is in '
                     f'{out_dir}).') from None


def _scenarios_main(opts: _Flags):
  """``--scenarios``: Melting Pot's focal per-capita return protocol."""
  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import meltingpot
  from marl_jax.evaluation import scenarios
  from marl_jax.evaluation import videos
  # pylint: enable=g-import-not-at-top
  for flag in (opts.heldout, opts.env, opts.elo, opts.metric):
    if flags.FLAGS[flag.name].present:
      raise UsageError(f'--{flag.name} is for cross-play; it cannot be used '
                       'with --scenarios.')
  max_steps = opts.scenario_max_steps.value
  if max_steps is not None and max_steps <= 0:
    raise UsageError(f'--scenario_max_steps must be positive, got {max_steps}.')
  names = {}
  for d in opts.exp_dir.value:
    if not os.path.isdir(d):
      raise UsageError(f'{d} is not a directory (expected a train.py run dir).')
    name = os.path.basename(os.path.normpath(d))
    if name in names and os.path.realpath(names[name]) != os.path.realpath(d):
      raise UsageError(f'Two runs are both named {name!r}; give run dirs '
                       'with different names.')
    names[name] = d
  # Every name and flag is checked before any run is loaded.
  plan = []
  for d in names.values():
    substrate = scenarios.substrate_of_env(scenarios.run_env(d), d)
    plan.append((d, substrate,
                 scenarios.resolve_scenarios(opts.scenarios.value, substrate, d)))
  background = scenarios.background(opts.scenario_background.value,
                                    [p[1] for p in plan], opts.seed.value + 1)
  make_env = scenarios.scenario_env_factory(background, opts.seed.value,
                                            max_steps)
  if background == 'bots' and not meltingpot.bots_installed():
    make_env(plan[0][2][0]).close()  # says how to install them

  def progress(run, scenario, member, returns):
    print(f'{_prog()}: {run}[{member}] on {scenario}: focal per-capita '
          f'return {returns.mean():.2f} ({len(returns)} episodes)',
          file=sys.stderr, flush=True)

  results, runs, played = [], {}, []
  for d, substrate, scenario_names in plan:
    run = scenarios.scenario_run(d)
    runs[run.name] = dict(exp_dir=d, env=run.env, env_steps=run.env_steps)
    make_policy = scenarios.focal_policy_factory(run, opts.greedy.value,
                                                 opts.seed.value)
    results.append(scenarios.evaluate_run(
        run.name, substrate, scenario_names, make_env, make_policy,
        run.size, opts.num_episodes.value, progress))
    played.append((run.name, scenario_names, make_policy, run.size))
  out_dir = opts.out_dir.value or os.path.join(opts.exp_dir.value[0], 'eval')
  write = lambda recorded: scenarios.write_report(
      out_dir, results, runs, opts.scenario_background.value,
      opts.num_episodes.value, max_steps, videos=recorded)
  paths = write(None)
  if opts.videos.value:
    # Extra episodes after every measured one, in their own envs, reseeded;
    # then the report again, listing them.
    seed = opts.seed.value + videos.SEED_OFFSET
    make_video_env = scenarios.scenario_env_factory(background, seed,
                                                    max_steps)
    recorded = []
    with _video_errors(out_dir):
      for k, (name, scenario_names, make_policy, size) in enumerate(played):
        recorded += videos.record_scenarios(
            name, scenario_names, make_video_env, make_policy, size, out_dir,
            opts.max_videos.value, seed=seed + k,
            min_size=opts.video_min_size.value)
    paths = write(recorded)
  with open(paths['markdown']) as f:
    print(f.read())
  for k, p in paths.items():
    print(f'{_prog()}: {k}: {p}')


def _run(opts: _Flags, argv):
  from marl_jax import envs  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import extras  # pylint: disable=g-import-not-at-top
  try:
    _main(opts, argv)
  except (UsageError, envs.UnknownEnvironmentError,
          checkpointing.CheckpointError, extras.MissingExtraError,
          ValueError) as e:
    cli.exit_with_user_error(_prog(), e)


def main(argv=None) -> None:
  """Entry point of ``evaluate.py`` and of the ``marl-jax-evaluate`` script
  (``argv`` defaults to ``sys.argv``). Defines the flags, so it runs once per
  process; ``--help`` shows this module's docstring."""
  argv = sys.argv if argv is None else argv
  logging.set_verbosity(logging.WARNING)
  cli.set_usage(__doc__)
  opts = _Flags()
  app.run(functools.partial(_run, opts), argv=argv)


if __name__ == '__main__':
  main()
