"""Keeps the notices TensorFlow's libraries print while they load off the command lines.

Loading, TensorFlow 2.21's libraries log through absl before anything has set absl's logging up,
so TF_CPP_MIN_LOG_LEVEL does not hold for those lines: every command that ran the model began
with four of them ('WARNING: All log messages before absl::InitializeLog() is called are written
to STDERR' and 'I0000 ... port.cc:153] oneDNN custom operations are on ...', twice each), a
warning about nothing the user can act on. `install()` (run by `import film_net`) makes the first
import of TensorFlow catch what is written to stderr meanwhile and pass on every other line.
"""
import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

NOTICES = re.compile(
    r'WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$'
    r'|I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. ')


def install() -> None:
  """Once per process, before TensorFlow's first import (after it, nothing is left to hide)."""
  if 'tensorflow' not in sys.modules and not any(
      isinstance(finder, _QuietFirstImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _QuietFirstImport())


class _QuietFirstImport(importlib.abc.MetaPathFinder):
  """Finds `tensorflow` as the other finders do, and runs its module with stderr filtered."""

  def find_spec(self, name, path=None, target=None):
    if name != 'tensorflow':
      return None
    sys.meta_path.remove(self)  # once: the spec below comes from the other finders
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.loader is not None and hasattr(spec.loader, 'exec_module'):
      spec.loader = _QuietLoader(spec.loader)
    return spec


class _QuietLoader(importlib.abc.Loader):

  def __init__(self, loader):
    self.loader = loader

  def create_module(self, spec):
    return self.loader.create_module(spec)

  def exec_module(self, module):
    with stderr_without(NOTICES):
      self.loader.exec_module(module)

  def __getattr__(self, name):  # get_resource_reader, is_package, ... as the real loader's
    return getattr(self.loader, name)


@contextlib.contextmanager
def stderr_without(lines: re.Pattern):
  """Catches what the process writes to its stderr (file descriptor 2, libraries' C++ too)
  meanwhile and writes it back afterwards, less the lines that match `lines`."""
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError):  # no stderr to catch (closed)
    yield
    return
  with tempfile.TemporaryFile() as caught:
    os.dup2(caught.fileno(), 2)
    try:
      yield
    finally:
      try:
        sys.stderr.flush()
      except (OSError, ValueError):
        pass
      os.dup2(saved, 2)
      os.close(saved)
      caught.seek(0)
      kept = [line for line in caught.read().decode('utf-8', 'replace').splitlines(True)
              if not lines.match(line)]
      data = ''.join(kept).encode('utf-8')
      while data:
        data = data[os.write(2, data):]
