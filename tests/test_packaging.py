"""marl_jax as a library: the wheel pip builds, and the one-line error that
names the extra when a family's or a launcher's package is missing.

The wheel is built once (``pip wheel --no-deps``) from a copy of the tree in a
temporary directory, so the checkout gets no ``build/``. When the installed
setuptools satisfies ``[build-system] requires`` it builds without isolation
(offline, a few seconds); otherwise pip fetches setuptools for the build.
"""

from __future__ import annotations

import email.parser
import glob
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from marl_jax import envs
from marl_jax.envs import registry
from marl_jax.utils import extras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a library user picks from; [all] is every one of them but test.
EXTRAS = {'jaxmarl', 'meltingpot', 'openspiel', 'pettingzoo', 'ray', 'wandb',
          'all', 'test'}
SCRIPTS = {'marl-jax-train': 'marl_jax.cli.train:main',
           'marl-jax-evaluate': 'marl_jax.cli.evaluate:main'}


def _pyproject() -> dict:
  with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
    return tomllib.load(f)


def _build_requirements_installed() -> bool:
  for line in _pyproject()['build-system']['requires']:
    requirement = Requirement(line)
    try:
      version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
      return False
    if not requirement.specifier.contains(version, prereleases=True):
      return False
  return True


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> zipfile.ZipFile:
  source = tmp_path_factory.mktemp('source')
  ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
  for name in ('pyproject.toml', 'README.md'):
    shutil.copy(os.path.join(ROOT, name), source / name)
  for name in ('marl_jax', 'configs'):
    shutil.copytree(os.path.join(ROOT, name), source / name, ignore=ignore)
  out = tmp_path_factory.mktemp('wheel')
  command = [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q',
             '--disable-pip-version-check', '-w', str(out), str(source)]
  if _build_requirements_installed():
    command.insert(4, '--no-build-isolation')
  result = subprocess.run(command, capture_output=True, text=True,
                          timeout=300, cwd=str(source))
  assert result.returncode == 0, result.stdout + result.stderr
  (path,) = glob.glob(str(out / 'marl_jax-*.whl'))
  with zipfile.ZipFile(path) as z:
    yield z


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
  (path,) = [n for n in wheel.namelist()
             if n.split('/')[0].endswith('.dist-info') and
             n.split('/')[-1] == name]
  return wheel.read(path).decode()


def _requirements_txt() -> dict:
  """name -> the pinned requirement of requirements.txt (named lines)."""
  out = {}
  with open(os.path.join(ROOT, 'requirements.txt')) as f:
    for line in f:
      line = line.split('#')[0].strip()
      if line and not line.startswith(('.', '-')):
        requirement = Requirement(line)
        out[requirement.name.lower().replace('_', '-')] = requirement
  return out


def _extras_of(wheel) -> dict:
  """extra -> {name: Requirement} of the wheel's METADATA."""
  message = email.parser.Parser().parsestr(_dist_info(wheel, 'METADATA'))
  out = {extra: {} for extra in message.get_all('Provides-Extra')}
  for line in message.get_all('Requires-Dist'):
    requirement = Requirement(line)
    for extra in out:
      if requirement.marker and requirement.marker.evaluate({'extra': extra}):
        requirement.marker = None
        out[extra][requirement.name.lower()] = requirement
        break
  return out


def test_the_wheel_installs_both_console_scripts(wheel):
  entry_points = _dist_info(wheel, 'entry_points.txt')
  section = entry_points.split('[console_scripts]')[1].split('[')[0]
  scripts = dict(tuple(p.strip() for p in line.split('='))
                 for line in section.strip().splitlines())
  assert scripts == SCRIPTS
  for target in scripts.values():
    module, _, function = target.partition(':')
    assert f'{module.replace(".", "/")}.py' in wheel.namelist()
    # Importing a script's module defines no flags (main() does).
    main = getattr(__import__(module, fromlist=[function]), function)
    assert callable(main)


def test_the_wheel_holds_the_package_and_the_config_files(wheel):
  names = set(wheel.namelist())
  assert {n.split('/')[0] for n in names if '.dist-info/' not in n} == {
      'marl_jax', 'configs'}
  for package in ('marl_jax', 'configs'):
    for directory, dirs, files in os.walk(os.path.join(ROOT, package)):
      dirs[:] = [d for d in dirs if d != '__pycache__']
      for f in files:
        if f.endswith('.py'):
          path = os.path.relpath(os.path.join(directory, f), ROOT)
          assert path.replace(os.sep, '/') in names, path
  assert {'configs/__init__.py', 'configs/common.py', 'configs/impala.py',
          'marl_jax/cli/train.py', 'marl_jax/cli/evaluate.py'} <= names


def test_the_extras_pin_what_requirements_txt_pins(wheel):
  declared = _extras_of(wheel)
  assert set(declared) == EXTRAS
  pinned = _requirements_txt()
  for extra, requirements in declared.items():
    for name, requirement in requirements.items():
      if name == 'wandb':  # W&B logging: any recent version
        assert str(requirement) == 'wandb>=0.19.10', extra
      else:
        assert str(requirement) == str(pinned[name]), (extra, name)
  union = {n: r for e, rs in declared.items() if e not in ('all', 'test')
           for n, r in rs.items()}
  assert declared['all'] == union
  assert set(declared['test']) == {'pytest'}


def test_every_extra_a_missing_package_names_is_declared(wheel):
  """The message names an extra and a distribution: that extra exists and
  installs that distribution."""
  declared = _extras_of(wheel)
  for extra, packages in extras.EXTRAS.items():
    for _, distribution in packages:
      assert distribution in declared[extra], (extra, distribution)
  for family, extra in registry.FAMILY_EXTRAS.items():
    assert extra in extras.EXTRAS, family


@pytest.mark.parametrize('name,module,distribution,extra', [
    ('jaxmarl/overcooked_cramped_room', 'jaxmarl', 'jaxmarl', 'jaxmarl'),
    ('pettingzoo/simple_spread', 'pettingzoo', 'pettingzoo', 'pettingzoo'),
    ('pettingzoo/simple_spread', 'mpe2', 'mpe2', 'pettingzoo'),
    ('meltingpot/clean_up', 'meltingpot', 'dm-meltingpot', 'meltingpot'),
    ('openspiel/kuhn_poker', 'pyspiel', 'open-spiel', 'openspiel'),
])
def test_a_family_without_its_package_names_the_extra(
    monkeypatch, name, module, distribution, extra):
  if name.split('/')[0] not in registry.FAMILIES:
    pytest.skip(f'no {name.split("/")[0]} family in this tree')
  monkeypatch.setitem(sys.modules, module, None)  # import fails, as if absent
  assert not extras.installed(module)
  with pytest.raises(extras.MissingExtraError) as e:
    envs.make(name)
  message = str(e.value)
  assert message.startswith(
      f'{name} needs the {distribution} package: pip install '
      f'"marl_jax[{extra}]"'), message
  assert '\n' not in message
  # Names are known without the package: a typo is still a typo.
  with pytest.raises(envs.UnknownEnvironmentError):
    envs.make(f'{name}_typo')


def test_the_jax_native_family_names_the_extra_too(monkeypatch):
  monkeypatch.setitem(sys.modules, 'jaxmarl', None)
  with pytest.raises(extras.MissingExtraError,
                     match=r'^jaxmarl/smax_3m needs the jaxmarl package: '
                     r'pip install "marl_jax\[jaxmarl\]"$'):
    envs.make_jax('jaxmarl/smax_3m')


def test_the_ray_launcher_without_ray_names_the_extra(monkeypatch):
  from marl_jax.runtime.launchers import ray as ray_launcher  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(sys.modules, 'ray', None)
  with pytest.raises(extras.MissingExtraError,
                     match=r'^--launcher=ray needs the ray package: '
                     r'pip install "marl_jax\[ray\]"$'):
    ray_launcher.launch(program=None)  # refused before the program is read


def test_train_py_says_which_extra_in_one_line(tmp_path):
  """End to end: jaxmarl hidden from train.py's process (a sitecustomize on
  PYTHONPATH), --env=jaxmarl/... exits 2 with one line naming the extra."""
  inject = tmp_path / 'inject'
  inject.mkdir()
  (inject / 'sitecustomize.py').write_text(
      'import sys\nsys.modules["jaxmarl"] = None\n')
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  env['PYTHONPATH'] = os.pathsep.join(
      [str(inject), ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
  result = subprocess.run(
      [sys.executable, 'train.py', '--runtime=anakin', '--algo=ippo',
       '--env=jaxmarl/overcooked_cramped_room', f'--exp_dir={tmp_path}/run'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stdout + result.stderr
  assert result.stderr.splitlines() == [
      'train.py: error: jaxmarl/overcooked_cramped_room needs the jaxmarl '
      'package: pip install "marl_jax[jaxmarl]"'], result.stderr
