"""evaluate.py end to end: two tiny populations, the report's numbers and files."""

import csv
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  return subprocess.run([sys.executable, script, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300, env=env)


def test_train_two_populations_then_evaluate(tmp_path):
  focal, held = str(tmp_path / 'focal'), str(tmp_path / 'held')
  for d, size, seed in ((focal, 2, 0), (held, 1, 1)):
    r = run('train.py', '--config=configs/impala.py:toy', '--num_steps=600',
            f'--population_size={size}', f'--seed={seed}',
            '--config.matchmaking=random', f'--exp_dir={d}')
    assert r.returncode == 0, r.stderr
  out = str(tmp_path / 'eval')
  r = run('evaluate.py', f'--exp_dir={focal}', f'--heldout={held}',
          '--num_episodes=3', f'--out_dir={out}')
  assert r.returncode == 0, r.stderr
  assert '| focal |' in r.stdout
  with open(os.path.join(out, 'results.json')) as f:
    doc = json.load(f)
  assert doc['metric'] == 'episode_return' and doc['num_episodes'] == 3
  s = doc['summary']['focal']
  for key in ('self_play', 'within_population_cross_play',
              'heldout_cross_play', 'gap_self_minus_heldout'):
    assert 0 <= s[key] <= 16 or key.startswith('gap')
  assert abs(s['gap_self_minus_heldout'] -
             (s['self_play'] - s['heldout_cross_play'])) < 1e-9
  with open(os.path.join(out, 'crossplay.csv')) as f:
    rows = list(csv.DictReader(f))
  # focal x focal (2 x 2) + focal x held (2 x 1) pairs.
  assert len(rows) == 6
  pairs = {(r['partner_run'], r['focal_member'], r['partner_member'])
           for r in rows}
  assert ('held', '1', '0') in pairs and ('focal', '1', '1') in pairs
  for row in rows:
    assert 0. <= float(row['mean']) <= 16.
  # The self-play value is the mean of the diagonal of the focal block.
  diag = [float(r['mean']) for r in rows
          if r['partner_run'] == 'focal' and r['focal_member'] == r['partner_member']]
  assert abs(sum(diag) / 2 - s['self_play']) < 1e-9
  with open(os.path.join(out, 'heatmap.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert os.path.getsize(os.path.join(out, 'report.md')) > 0


def test_bad_inputs(tmp_path):
  r = run('evaluate.py')
  assert r.returncode == 2 and '--exp_dir is required' in r.stderr
  r = run('evaluate.py', f'--exp_dir={tmp_path}/nope')
  assert r.returncode == 2 and 'not a directory' in r.stderr
  os.makedirs(tmp_path / 'empty')
  r = run('evaluate.py', f'--exp_dir={tmp_path}/empty')
  assert r.returncode == 2 and 'config.json' in r.stderr
  assert 'Traceback' not in r.stderr


def _train_single(exp_dir, preset, **overrides):
  """A tiny run with the single launcher, written like train.py's run dir."""
  # pylint: disable=g-import-not-at-top
  from configs import impala as impala_configs
  from marl_jax.runtime.launchers import single
  from marl_jax.utils import config as config_lib
  # pylint: enable=g-import-not-at-top
  c = impala_configs.get_config(preset)
  c.launcher, c.progress_every_s = 'single', 1e9
  for k, v in overrides.items():
    group, _, key = k.rpartition('.')
    (c[group] if group else c)[key] = v
  os.makedirs(exp_dir)
  with open(os.path.join(exp_dir, 'config.json'), 'w') as f:
    f.write(config_lib.to_json(c))
  single.run(c, exp_dir)


def test_scripted_partners_with_a_trained_overcooked_run(tmp_path):
  run_dir = str(tmp_path / 'oc')
  _train_single(run_dir, 'overcooked', num_steps=160, num_actors=1,
                num_envs_per_actor=2, sequence_length=10, batch_size=2,
                replay_max_size=8, num_learner_devices=1,
                **{'env_kwargs.horizon': 40, 'network.mlp_sizes': (32,)})
  out = str(tmp_path / 'eval')
  r = run('evaluate.py', f'--exp_dir={run_dir}', '--heldout=scripted:greedy',
          '--heldout=scripted:stay', '--num_episodes=2', f'--out_dir={out}')
  assert r.returncode == 0, r.stderr
  with open(os.path.join(out, 'results.json')) as f:
    doc = json.load(f)
  assert doc['metric'] == 'episode_sparse_reward'
  assert doc['runs']['scripted:greedy'] == dict(
      exp_dir='', population_size=1, env_steps=0, scripted=True)
  partners = {p['partner_run'] for p in doc['pairs']}
  assert partners == {'oc', 'scripted:greedy', 'scripted:stay'}
  for p in doc['pairs']:
    assert 0 <= p['mean'] <= 40 * 20 and p['mean'] % 10 == 0  # 20 per soup
  # Cooperative: no Elo unless asked for; the matches are a payoff table.
  assert 'elo' not in doc and not os.path.exists(os.path.join(out, 'elo.csv'))
  from marl_jax.population import payoff  # pylint: disable=g-import-not-at-top
  table = payoff.PayoffTable.load(out)
  assert table.count('oc[0]', 'scripted:greedy[0]') == 2
  assert '## oc (rows) with scripted:greedy (columns)' in r.stdout
  assert '| | scripted:greedy[0] |' in r.stdout


def test_elo_flag_and_a_runs_payoff_table(tmp_path):
  run_dir = str(tmp_path / 'toy')
  _train_single(run_dir, 'toy', num_steps=400, population_size=2,
                matchmaking='random')
  # A payoff table saved with the run is shown (as PSRO training writes it).
  from marl_jax.population import payoff  # pylint: disable=g-import-not-at-top
  saved = payoff.PayoffTable()
  saved.update('member_0', 'snapshot_0', [7., 9.])
  saved.save(run_dir)
  out = str(tmp_path / 'eval')
  r = run('evaluate.py', f'--exp_dir={run_dir}', '--heldout=scripted:random',
          '--num_episodes=2', '--elo', f'--out_dir={out}')
  assert r.returncode == 0, r.stderr
  with open(os.path.join(out, 'results.json')) as f:
    doc = json.load(f)
  # The cue game is cooperative: both seats always score the same, every
  # rated game is a draw and every player is rated the mean.
  assert doc['zero_sum'] is False
  assert sorted(e['player'] for e in doc['elo']) == [
      'scripted:random[0]', 'toy[0]', 'toy[1]']
  for e in doc['elo']:
    assert abs(e['rating'] - 1500.) < 1e-6 and e['score'] == 0.5
  with open(os.path.join(out, 'elo.csv')) as f:
    assert len(list(csv.DictReader(f))) == 3
  assert doc['run_payoff_tables']['toy']['entries'][0]['mean'] == 8.
  assert '## Elo ratings' in r.stdout
  assert 'Payoff table saved with toy' in r.stdout
  r = run('evaluate.py', f'--exp_dir={run_dir}', '--heldout=scripted:greedy',
          '--num_episodes=1', f'--out_dir={out}')
  assert r.returncode == 2 and 'Overcooked only' in r.stderr
  r = run('evaluate.py', f'--exp_dir={run_dir}', '--heldout=scripted:nope')
  assert r.returncode == 2 and 'scripted:greedy' in r.stderr
  assert 'Traceback' not in r.stderr


def _needs_meltingpot():
  from marl_jax.envs import meltingpot  # pylint: disable=g-import-not-at-top
  if meltingpot.package_dir() is None:
    pytest.skip('dm-meltingpot is not installed')
  return meltingpot


@pytest.fixture(scope='module')
def cook_run(tmp_path_factory):
  """A tiny run of two members on collaborative_cooking__cramped (10-step
  episodes), shared by the Melting Pot tests of this module."""
  _needs_meltingpot()
  run_dir = str(tmp_path_factory.mktemp('meltingpot') / 'cook')
  _train_single(run_dir, 'meltingpot', num_steps=40, population_size=2,
                num_actors=1, num_envs_per_actor=1, sequence_length=5,
                batch_size=2, replay_max_size=4, num_learner_devices=1,
                **{'env_kwargs.max_episode_steps': 10,
                   'network.conv_channels': (4,), 'network.conv_kernels': (3,),
                   'network.conv_strides': (4,), 'network.mlp_sizes': (8,),
                   'network.lstm_size': 4})
  return run_dir


def test_meltingpot_scenarios_of_a_tiny_run(tmp_path, cook_run):
  meltingpot = _needs_meltingpot()
  run_dir = cook_run
  scenario = 'collaborative_cooking__cramped_1'
  out = str(tmp_path / 'eval')
  # The background: the run itself (member 0), as TrainedPolicy plays it.
  r = run('evaluate.py', f'--exp_dir={run_dir}', f'--scenarios={scenario}',
          f'--scenario_background={run_dir}', '--scenario_max_steps=15',
          '--num_episodes=2', f'--out_dir={out}')
  assert r.returncode == 0, r.stderr
  assert '| scenario | cook[0] | cook[1] |' in r.stdout
  assert f'cook[1] on {scenario}' in r.stderr  # progress
  with open(os.path.join(out, 'scenarios.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [(row['run'], row['member'], row['scenario']) for row in rows] == [
      ('cook', '0', scenario), ('cook', '1', scenario)]
  for row in rows:
    assert row['num_episodes'] == '2'
    # Cooking scores 0 or 20 per delivered soup; 15 steps deliver none.
    assert 0. <= float(row['focal_per_capita_return']) <= 20.
    assert float(row['ci95']) >= 0.
  with open(os.path.join(out, 'scenarios.json')) as f:
    doc = json.load(f)
  assert doc['background'] == run_dir and doc['max_episode_steps'] == 15
  assert doc['runs']['cook']['substrate'] == 'collaborative_cooking__cramped'
  assert doc['runs']['cook']['scenarios'] == [scenario]
  assert len(doc['substrate_mean']) == 2
  with open(os.path.join(out, 'scenarios_heatmap.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  # Bad requests: one line naming the problem, no traceback.
  os.makedirs(tmp_path / 'oc')
  with open(tmp_path / 'oc' / 'config.json', 'w') as f:
    json.dump({'env': 'overcooked/cramped_room'}, f)
  r = run('evaluate.py', f'--exp_dir={tmp_path}/oc', '--scenarios=all')
  assert r.returncode == 2 and 'trained on overcooked/cramped_room' in r.stderr
  assert 'Traceback' not in r.stderr
  if not meltingpot.bots_installed():
    r = run('evaluate.py', f'--exp_dir={run_dir}', f'--scenarios={scenario}')
    assert r.returncode == 2 and 'official Melting Pot bots' in r.stderr
    assert '--scenario_background=random' in r.stderr
    assert 'Traceback' not in r.stderr


def _gif_frames_and_ms(path):
  """Frames of a GIF and its total duration in ms (Pillow merges identical
  consecutive frames into one longer frame, so the duration is exact)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(path) as im:
    durations = []
    for k in range(im.n_frames):
      im.seek(k)
      durations.append(im.info['duration'])
  return len(durations), sum(durations)


def _without_videos(doc):
  return {k: v for k, v in doc.items() if k != 'videos'}


def test_videos_are_extra_episodes_that_leave_the_numbers_unchanged(tmp_path):
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  run_dir = str(tmp_path / 'toy')
  _train_single(run_dir, 'toy', num_steps=400, population_size=2,
                matchmaking='random')
  outs = {}
  for videos in (False, True):
    out = outs[videos] = str(tmp_path / f'eval_{videos}')
    r = run('evaluate.py', f'--exp_dir={run_dir}', '--heldout=scripted:random',
            '--num_episodes=3', '--seed=5', f'--out_dir={out}',
            *(['--videos'] if videos else []))
    assert r.returncode == 0, r.stderr
  docs = {}
  for videos, out in outs.items():
    with open(os.path.join(out, 'results.json')) as f:
      docs[videos] = json.load(f)
  # Identical numbers with and without --videos (same seed).
  assert 'videos' not in docs[False]
  assert _without_videos(docs[True]) == docs[False]
  for name in ('crossplay.csv', 'payoff.json'):
    with open(os.path.join(outs[False], name)) as a, open(
        os.path.join(outs[True], name)) as b:
      assert a.read() == b.read(), name
  # One GIF per pair of members, named for who played whom.
  names = {'toy_m0__vs__toy_m0', 'toy_m1__vs__toy_m1', 'toy_m0__vs__toy_m1',
           'toy_m1__vs__toy_m0', 'toy_m0__vs__scripted-random_m0',
           'toy_m1__vs__scripted-random_m0'}
  gifs = sorted(os.listdir(os.path.join(outs[True], 'videos')))
  assert gifs == sorted(n + '.gif' for n in names)
  assert not os.path.exists(os.path.join(outs[False], 'videos'))
  listed = docs[True]['videos']
  assert sorted(v['file'] for v in listed) == sorted(
      f'videos/{n}.gif' for n in names)
  with open(os.path.join(outs[True], 'report.md')) as f:
    markdown = f.read()
  assert '## Videos' in markdown
  for v in listed:
    assert f']({v["file"]})' in markdown
    # The writer's contract: the reset frame, then one per step (16).
    frames = imageio.mimread(os.path.join(outs[True], v['file']))
    assert len(frames) == v['steps'] + 1 == 16 + 1
    # The toy's 32 x 32 render enlarged 8x to 256 x 256, a caption under it.
    assert frames[0].shape[1] == 256 and frames[0].shape[0] > 256
  # --max_videos caps each block (focal run x partner), diagonal first.
  out = str(tmp_path / 'eval_cap')
  r = run('evaluate.py', f'--exp_dir={run_dir}', '--heldout=scripted:random',
          '--num_episodes=1', '--videos', '--max_videos=1',
          '--video_min_size=64', f'--out_dir={out}')
  assert r.returncode == 0, r.stderr
  assert sorted(os.listdir(os.path.join(out, 'videos'))) == [
      'toy_m0__vs__scripted-random_m0.gif', 'toy_m0__vs__toy_m0.gif']
  # --video_min_size: the 32 x 32 render enlarged 2x, not 8x.
  frames = imageio.mimread(os.path.join(out, 'videos', 'toy_m0__vs__toy_m0.gif'))
  assert frames[0].shape[1] == 64
  r = run('evaluate.py', f'--exp_dir={run_dir}', '--max_videos=2')
  assert r.returncode == 2 and '--max_videos is for --videos' in r.stderr
  r = run('evaluate.py', f'--exp_dir={run_dir}', '--videos', '--max_videos=0')
  assert r.returncode == 2 and '--max_videos must be positive' in r.stderr
  assert 'Traceback' not in r.stderr
  r = run('evaluate.py', f'--exp_dir={run_dir}', '--video_min_size=64')
  assert r.returncode == 2 and '--video_min_size is for --videos' in r.stderr
  r = run('evaluate.py', f'--exp_dir={run_dir}', '--videos',
          '--video_min_size=0')
  assert r.returncode == 2 and '--video_min_size must be positive' in r.stderr


def test_meltingpot_bots_as_heldout_partners(tmp_path, cook_run):
  meltingpot = _needs_meltingpot()
  cramped = 'collaborative_cooking__cramped'
  # noop_bot is built by meltingpot.bot itself and needs no assets.
  out = str(tmp_path / 'eval')
  r = run('evaluate.py', f'--exp_dir={cook_run}',
          '--heldout=meltingpot_bots:noop_bot', '--num_episodes=2',
          '--videos', '--max_videos=1', f'--out_dir={out}')
  assert r.returncode == 0, r.stderr
  with open(os.path.join(out, 'results.json')) as f:
    doc = json.load(f)
  assert doc['runs']['meltingpot_bots:noop_bot'] == dict(
      exp_dir='', population_size=1, env_steps=0, scripted=False,
      meltingpot_bot='noop_bot')
  assert {p['partner_run'] for p in doc['pairs']} == {
      'cook', 'meltingpot_bots:noop_bot'}
  assert '| | meltingpot_bots:noop_bot[0] |' in r.stdout
  # Videos on Melting Pot: the bot rebound to the videos' env copy.
  gifs = sorted(os.listdir(os.path.join(out, 'videos')))
  assert gifs == ['cook_m0__vs__cook_m0.gif',
                  'cook_m0__vs__meltingpot_bots-noop_bot_m0.gif']
  for v in doc['videos']:
    frames, ms = _gif_frames_and_ms(os.path.join(out, v['file']))
    assert v['steps'] == 10 and 1 <= frames <= 11 and ms == 11 * 100
  # Bad requests: one line, exit code 2, no traceback.
  if not meltingpot.bots_installed():
    r = run('evaluate.py', f'--exp_dir={cook_run}',
            '--heldout=meltingpot_bots:all', f'--out_dir={tmp_path}/x')
    assert r.returncode == 2, r.stderr
    error = r.stderr.strip().splitlines()
    assert len(error) == 1, r.stderr
    assert error[0].startswith('evaluate.py: error: --heldout=meltingpot_bots:'
                               'all needs the official Melting Pot bots')
    assert f'{cramped}__chef_0' in error[0]
    assert meltingpot.ASSETS_URL in error[0]
    assert not os.path.exists(tmp_path / 'x')
  r = run('evaluate.py', f'--exp_dir={cook_run}',
          f'--heldout=meltingpot_bots:{cramped}__chef_9')
  assert r.returncode == 2 and 'Did you mean' in r.stderr
  assert 'Traceback' not in r.stderr
  r = run('evaluate.py', f'--exp_dir={cook_run}',
          '--heldout=meltingpot_bots:coins__puppet_cooperator_0')
  assert r.returncode == 2 and 'is a bot of coins' in r.stderr
  r = run('evaluate.py', f'--exp_dir={cook_run}', '--heldout=meltingpot_bots:')
  assert r.returncode == 2 and 'names no bot' in r.stderr
  assert 'Traceback' not in r.stderr


def test_meltingpot_scenario_videos(tmp_path, cook_run):
  _needs_meltingpot()
  scenario = 'collaborative_cooking__cramped_1'
  out = str(tmp_path / 'eval')
  r = run('evaluate.py', f'--exp_dir={cook_run}', f'--scenarios={scenario}',
          '--scenario_background=noop', '--scenario_max_steps=6',
          '--num_episodes=1', '--videos', f'--out_dir={out}')
  assert r.returncode == 0, r.stderr
  names = [f'cook_m{m}__on__{scenario}.gif' for m in (0, 1)]
  assert sorted(os.listdir(os.path.join(out, 'videos'))) == names
  with open(os.path.join(out, 'scenarios.json')) as f:
    doc = json.load(f)
  assert [(v['run'], v['member'], v['scenario'], v['file'])
          for v in doc['videos']] == [
              ('cook', m, scenario, f'videos/{n}')
              for m, n in zip((0, 1), names)]
  for name in names:
    frames, ms = _gif_frames_and_ms(os.path.join(out, 'videos', name))
    assert 1 <= frames <= 7 and ms == 7 * 100  # reset + 6 steps at 10 fps
  with open(os.path.join(out, 'scenarios.md')) as f:
    assert f'](videos/{names[1]})' in f.read()
