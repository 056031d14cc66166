"""Caches the Melting Pot assets archive before dm-meltingpot builds.

dm-meltingpot 2.4.1 is an sdist. Its ``build_py`` step fetches the scenario
bots (saved models) from ``ASSETS_URL`` unless it finds the archive cached,
first next to its own sources, then at
``os.path.join(tempfile.gettempdir(), ARCHIVE)``; without network the download
fails and so does ``pip install``. This package installs nothing. Building it,
which pip does while it resolves the requirements and so before it builds any
wheel, leaves an archive at that temp path:

  1. an archive already there is kept if it is a gzipped tarball of
     ``assets/`` (a real archive is never replaced; our stand-in is replaced by
     the real one once the download works);
  2. else the archive named by ``$MARL_JAX_MELTINGPOT_ASSETS`` (a path), if set,
     is copied there;
  3. else the real archive is downloaded (socket timeout
     ``$MARL_JAX_MELTINGPOT_ASSETS_TIMEOUT`` seconds, default 20;
     ``MARL_JAX_MELTINGPOT_ASSETS=offline`` skips the attempt);
  4. if that fails, a stand-in archive is written: an ``assets/`` directory
     holding only ``STANDIN_README``, which says that the bots are missing and
     how to get them. The substrates then work; the scenarios' official bots do
     not (marl_jax says so when one is asked for).

Files are written to a temporary name and renamed, so an interrupted run never
leaves a partial archive behind. pip shows this script's messages only with
``pip install -v``.
"""

import io
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.request

import setuptools

ASSETS_VERSION = '2.3.0'
ARCHIVE = f'meltingpot-assets-{ASSETS_VERSION}.tar.gz'
ASSETS_URL = f'https://storage.googleapis.com/dm-meltingpot/{ARCHIVE}'
# The marker that tells our stand-in from the real archive.
STANDIN_README = 'assets/MARL_JAX_STANDIN_NO_BOTS.txt'
_ENV_SOURCE = 'MARL_JAX_MELTINGPOT_ASSETS'
_ENV_TIMEOUT = 'MARL_JAX_MELTINGPOT_ASSETS_TIMEOUT'
# pip runs this script up to three times per install: after a failed download,
# a stand-in younger than this is kept without trying again.
_RETRY_SECONDS = 600


def _say(message: str) -> None:
  print(f'[meltingpot-assets] {message}', file=sys.stderr, flush=True)


def _standin_text(target: str) -> str:
  return f"""\
The Melting Pot scenario bots are NOT installed.

This assets/ directory was written by marl_jax's third_party/meltingpot_assets
because {ASSETS_URL}
could not be downloaded when dm-meltingpot was built. The substrates work; the
scenarios' official background bots (saved models under assets/saved_models/)
do not.

To install the bots, on a machine that can reach the URL:
  1. download the archive (or copy it from a machine that has it) to
     {target}
     (or set {_ENV_SOURCE}=/path/to/{ARCHIVE} before the next step);
  2. rebuild dm-meltingpot without pip's wheel cache:
     pip install --no-cache-dir --force-reinstall --no-deps dm-meltingpot==2.4.1
"""


def archive_kind(path: str) -> str:
  """``'missing'``, ``'standin'``, ``'real'`` or ``'invalid'``.

  Only the first member of a large archive is read: a gzipped tarball whose
  first member is under ``assets`` counts as real.
  """
  if not os.path.exists(path):
    return 'missing'
  try:
    with tarfile.open(path, mode='r|gz') as tar:
      first = tar.next()
      if first is None or not (first.name == 'assets' or
                               first.name.startswith(('assets/', './assets'))):
        return 'invalid'
      if os.path.getsize(path) > (1 << 20):
        return 'real'
      names = {first.name} | {m.name for m in tar}
  except (OSError, tarfile.TarError, EOFError):
    return 'invalid'
  return 'standin' if STANDIN_README in names else 'real'


def _publish(source_fn, target: str) -> None:
  """Writes ``target`` atomically with ``source_fn(open_file)``."""
  fd, tmp = tempfile.mkstemp(prefix=ARCHIVE + '.', suffix='.part',
                             dir=os.path.dirname(target))
  try:
    with os.fdopen(fd, 'wb') as f:
      source_fn(f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _download(target: str, timeout: float) -> None:
  start = time.time()
  with urllib.request.urlopen(ASSETS_URL, timeout=timeout) as response:
    _publish(lambda f: shutil.copyfileobj(response, f, 1 << 20), target)
  _say(f'downloaded {ASSETS_URL} to {target} in {time.time() - start:.0f} s')


def _write_standin(target: str) -> None:
  def write(f):
    with tarfile.open(fileobj=f, mode='w:gz') as tar:
      directory = tarfile.TarInfo('assets')
      directory.type = tarfile.DIRTYPE
      directory.mode = 0o755
      tar.addfile(directory)
      data = _standin_text(target).encode('utf-8')
      readme = tarfile.TarInfo(STANDIN_README)
      readme.size = len(data)
      readme.mode = 0o644
      tar.addfile(readme, io.BytesIO(data))
  _publish(write, target)


def ensure_archive() -> str:
  """Leaves an assets archive where dm-meltingpot's build looks; returns it."""
  target = os.path.join(tempfile.gettempdir(), ARCHIVE)
  kind = archive_kind(target)
  source = os.environ.get(_ENV_SOURCE, '').strip()
  if kind == 'real':
    _say(f'found the real assets archive at {target}; keeping it')
    return target
  if kind == 'invalid':
    aside = f'{target}.invalid-{int(time.time())}'
    os.replace(target, aside)
    _say(f'{target} was not a Melting Pot assets archive; moved it to {aside}')
  if source and source.lower() != 'offline':
    if archive_kind(source) != 'real':
      raise SystemExit(f'[meltingpot-assets] {_ENV_SOURCE}={source} is not a '
                       f'Melting Pot assets archive ({ARCHIVE}).')
    def copy(f):
      with open(source, 'rb') as src:
        shutil.copyfileobj(src, f, 1 << 20)
    _publish(copy, target)
    _say(f'copied {source} to {target}')
    return target
  recent_standin = (kind == 'standin' and
                    time.time() - os.path.getmtime(target) < _RETRY_SECONDS)
  if source.lower() != 'offline' and not recent_standin:
    timeout = float(os.environ.get(_ENV_TIMEOUT, '20'))
    try:
      _download(target, timeout)
      return target
    except Exception as e:  # pylint: disable=broad-except
      _say(f'could not download {ASSETS_URL}: {e!r}')
  if kind == 'standin':
    _say(f'keeping the stand-in archive at {target} (no scenario bots)')
    return target
  _write_standin(target)
  _say(f'WARNING: wrote a stand-in archive to {target}: dm-meltingpot will '
       'install its substrates but NOT the scenario bots. To get them, put the '
       f'real {ARCHIVE} there (or set {_ENV_SOURCE}) and reinstall '
       'dm-meltingpot with --no-cache-dir --force-reinstall.')
  return target


ensure_archive()

setuptools.setup(
    name='marl-jax-meltingpot-assets',
    version='2.3.0',
    description=('Caches the Melting Pot assets archive (or a stand-in '
                 'without bots) for the dm-meltingpot build.'),
    packages=[],
    py_modules=[],
)
