"""train.py from the shell: bad inputs give one clear line and a non-zero exit."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = ['--config=configs/impala.py:toy']


def train(*args, timeout=300):
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)  # one device, as a user's laptop
  return subprocess.run([sys.executable, 'train.py', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout,
                        env=env)


def assert_user_error(result, *needles):
  assert result.returncode != 0, result.stdout + result.stderr
  err = result.stderr
  assert 'Traceback' not in err, err
  for needle in needles:
    assert needle in err, err


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  """A tiny toy run with a checkpoint."""
  exp_dir = str(tmp_path_factory.mktemp('runs') / 'toy')
  result = train(*TOY, '--num_steps=600', f'--exp_dir={exp_dir}')
  assert result.returncode == 0, result.stderr
  return exp_dir


def test_unknown_env_lists_valid_names(tmp_path):
  r = train('--env=overcooked/cramped_rom', f'--exp_dir={tmp_path}/x')
  assert_user_error(r, "Unknown environment 'overcooked/cramped_rom'",
                    'overcooked/cramped_room')
  assert not os.path.exists(f'{tmp_path}/x')  # nothing half-written


def test_unknown_algo(tmp_path):
  r = train('--algo=impalla', f'--exp_dir={tmp_path}/x')
  assert_user_error(r, "Unknown algorithm 'impalla'", 'impala')


@pytest.mark.parametrize('flag,key', [
    ('--population_size=0', 'population_size'),
    ('--num_steps=-5', 'num_steps'),
    ('--num_actors=0', 'num_actors'),
    ('--config.batch_size=0', 'batch_size'),
    ('--config.sequence_length=-1', 'sequence_length'),
])
def test_non_positive_sizes(tmp_path, flag, key):
  r = train(*TOY, flag, f'--exp_dir={tmp_path}/x')
  assert_user_error(r, key, 'positive')


def test_unknown_config_key(tmp_path):
  r = train(*TOY, '--config.learning_rat=0.1', f'--exp_dir={tmp_path}/x')
  assert r.returncode != 0
  assert 'learning_rat' in r.stderr
  assert 'Traceback' not in r.stderr, r.stderr


def test_bad_env_kwargs_named(tmp_path):
  r = train('--config.env_kwargs.observation=pixels', '--num_steps=10',
            f'--exp_dir={tmp_path}/x')
  assert_user_error(r, 'observation', 'pixels')


def test_resume_without_checkpoint(tmp_path):
  r = train('--resume', f'--exp_dir={tmp_path}/empty')
  assert_user_error(r, 'config.json', '--resume')


def test_resume_with_missing_checkpoints(trained_run, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  copy = str(tmp_path / 'copy')
  shutil.copytree(trained_run, copy)
  shutil.rmtree(os.path.join(copy, 'checkpoints'))
  r = train('--resume', f'--exp_dir={copy}')
  assert_user_error(r, 'no checkpoint found')


def test_existing_run_needs_resume(trained_run):
  r = train(*TOY, '--num_steps=600', f'--exp_dir={trained_run}')
  assert_user_error(r, 'already holds a run', '--resume')


def test_corrupted_checkpoint_is_named(trained_run, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  copy = str(tmp_path / 'corrupt')
  shutil.copytree(trained_run, copy)
  steps = sorted(glob.glob(os.path.join(copy, 'checkpoints', '*')))
  latest = steps[-1]
  data = [p for p in glob.glob(os.path.join(latest, '**', '*'), recursive=True)
          if os.path.isfile(p) and os.path.getsize(p) > 64 and '/d/' in p]
  assert data, os.listdir(latest)
  for p in data:
    with open(p, 'r+b') as f:
      f.seek(16)
      f.write(b'\xde\xad\xbe\xef' * 8)
  r = train('--resume', f'--exp_dir={copy}', '--num_steps=1200')
  assert_user_error(r, 'corrupt', os.path.basename(latest))


def test_resume_continues(trained_run, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  copy = str(tmp_path / 'cont')
  shutil.copytree(trained_run, copy)
  r = train('--resume', f'--exp_dir={copy}', '--num_steps=1200')
  assert r.returncode == 0, r.stderr
  steps = [int(os.path.basename(p)) for p in
           glob.glob(os.path.join(copy, 'checkpoints', '*'))]
  assert max(steps) >= 1200
  # Changing what cannot change on resume is refused.
  r = train('--resume', f'--exp_dir={copy}', '--seed=3')
  assert_user_error(r, '--seed')


def test_ctrl_c_writes_final_checkpoint_and_exits_0(tmp_path):
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  exp_dir = str(tmp_path / 'sigint')
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  proc = subprocess.Popen(
      [sys.executable, 'train.py', *TOY, '--num_steps=100000000',
       f'--exp_dir={exp_dir}', '--config.checkpoint_every_s=100000'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=env)
  try:
    deadline = time.time() + 120
    # Wait until training is under way (the first episodes are logged).
    while not os.path.exists(os.path.join(exp_dir, 'actor.csv')):
      assert proc.poll() is None, proc.communicate()
      assert time.time() < deadline
      time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, err
  assert 'interrupted' in out, out
  steps = [int(os.path.basename(p)) for p in
           glob.glob(os.path.join(exp_dir, 'checkpoints', '*'))]
  assert steps and max(steps) > 0
  # The checkpoint is complete: the run resumes from it.
  r = train('--resume', f'--exp_dir={exp_dir}', f'--num_steps={max(steps) + 200}')
  assert r.returncode == 0, r.stderr


def test_record_video_writes_one_gif_per_member(tmp_path):
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  exp_dir = str(tmp_path / 'video')
  r = train(*TOY, '--num_steps=300', '--population_size=2', '--record_video',
            f'--exp_dir={exp_dir}')
  assert r.returncode == 0, r.stderr
  gifs = sorted(glob.glob(os.path.join(exp_dir, 'videos', '*.gif')))
  assert [os.path.basename(g).split('_step_')[0] for g in gifs] == [
      'member_0', 'member_1']
  frames = imageio.mimread(gifs[0])
  assert len(frames) == 16 + 1  # reset frame + one per step of the horizon


def test_algorithm_config_errors_are_named_and_nothing_is_written(tmp_path):
  r = train('--config=configs/opre.py:toy', '--config.num_options=0',
            f'--exp_dir={tmp_path}/opre')
  assert_user_error(r, 'num_options')
  assert not os.path.exists(f'{tmp_path}/opre')
  # Another algorithm's key (OPRE's, on IMPALA's config) says where keys live.
  r = train('--algo=impala', '--config.num_options=4', f'--exp_dir={tmp_path}/x')
  assert_user_error(r, 'num_options', 'configs/<algo>.py')
  assert not os.path.exists(f'{tmp_path}/x')


def test_anakin_run_resumes_in_anakin_only(tmp_path):
  exp_dir = str(tmp_path / 'anakin')
  args = ('--runtime=anakin', '--config=configs/qmix.py:toy')
  r = train(*args, '--num_steps=400', f'--exp_dir={exp_dir}')
  assert r.returncode == 0, r.stderr
  # Its checkpoints hold the anakin runner state: the distributed runtime
  # cannot take it up, and says which runtime can.
  r = train('--resume', f'--exp_dir={exp_dir}', '--num_steps=800')
  assert_user_error(r, '--runtime=anakin')
  r = train('--resume', '--runtime=anakin', f'--exp_dir={exp_dir}',
            '--num_steps=800')
  assert r.returncode == 0, r.stderr
  assert 'resumed from env step' in r.stdout
  steps = [int(os.path.basename(p)) for p in
           glob.glob(os.path.join(exp_dir, 'checkpoints', '*'))]
  assert max(steps) >= 800


def test_distributed_run_is_not_resumed_by_anakin(trained_run):
  r = train('--resume', '--runtime=anakin', f'--exp_dir={trained_run}')
  assert_user_error(r, '--runtime=distributed')


def test_config_help_with_resume_shows_the_saved_run_and_trains_nothing(
    trained_run):
  before = sorted(os.listdir(os.path.join(trained_run, 'checkpoints')))
  r = train('--resume', f'--exp_dir={trained_run}', '--num_steps=1200',
            '--config_help')
  assert r.returncode == 0, r.stderr
  assert 'num_steps = 1200  (int)' in r.stdout  # the resumable override
  assert "env = 'toy/cue_coordination'" in r.stdout
  assert sorted(os.listdir(os.path.join(trained_run, 'checkpoints'))) == before


def test_the_human_proxy_as_a_partner_needs_a_layout_with_human_data(
    tmp_path):
  r = train('--runtime=anakin', '--algo=ippo', '--env=jaxmarl/mpe_simple_spread',
            '--config.partners=human_proxy:train', f'--exp_dir={tmp_path}/r')
  assert r.returncode == 2, r.stderr
  line = r.stderr.strip()
  assert '\n' not in line and 'partners=human_proxy' in line
  assert 'jaxmarl/overcooked_cramped_room' in line  # what is covered
  assert not os.path.exists(tmp_path / 'r' / 'config.json')
