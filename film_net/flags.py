"""Argparse types and shared flags for every command line (film_net's and the pipeline's).

Plain Python, free of TensorFlow and of `pipeline`, so every command line can check its values
the same way: a value out of range is a usage error (exit status 2) that names the flag and the
range, not a traceback from deep inside rendering or training.
"""
from __future__ import annotations

import argparse
import faulthandler
import logging
import math
import os
import signal
import sys
import tempfile
from typing import Callable

from film_net import weights as weights_lib

# What a command says where TensorFlow is missing (the GPU trainer's machines need none).
NO_TENSORFLOW = 'TensorFlow is not installed, an extra: pip install .[cpu] (or .[gpu], .[tf])'


def command_line(module: str, description: str, epilog=None) -> argparse.ArgumentParser:
  """The parser of `python -m module`: its usage and errors name the command a user types,
  `--help` gives every flag's default, and flags are taken whole only (an abbreviation may name
  another flag: '--prune' would turn on deletion, '--worker 2' set --workers)."""
  return argparse.ArgumentParser(prog=f'python -m {module}', description=description,
                                 epilog=epilog, allow_abbrev=False,
                                 formatter_class=_DefaultsShown)


class _DefaultsShown(argparse.HelpFormatter):
  """Adds '(default: X)' to a flag's help unless the help says its default itself; not for
  switches, nor flags without one (None: their help says what stands in)."""

  def _get_help_string(self, action):
    text = action.help or ''
    if (not action.option_strings or action.default is None or action.default is False
        or action.default == argparse.SUPPRESS or 'default' in text.lower()):
      return text
    return f'{text} (default: %(default)s)'.lstrip()


def check_paths(parser: argparse.ArgumentParser, folders=(), models=()) -> None:
  """A usage error for a (flag, path) of `folders` that is a file or lies below one, or of
  `models` (None: the built-in model) that is not there; remote paths are checked where they
  are read."""
  for flag, path in folders:
    problem = not_a_folder(flag, path)  # (an empty one is refused by its type, `path_value`)
    if problem:
      parser.error(problem)
  for flag, path in models:
    if path and not weights_lib.is_remote(path) and not os.path.exists(path):
      parser.error(f'{flag} {path}: no such file or folder')


def not_a_folder(flag: str, path: str) -> str | None:
  """Why the local folder `path` (a flag's) cannot be made or written: it is a file (a device or
  a pipe too), or one of the folders above it is (`out.png/frames`, a typo); else None."""
  if weights_lib.is_remote(path):
    return None
  here = os.path.abspath(path)
  while not os.path.exists(here):
    if os.path.islink(here):  # a link to what is not there (an unmounted share): no folder
      above_path = f': {here}' if here != os.path.abspath(path) else ''
      return f'{flag} {path}{above_path} is a link to {os.readlink(here)}, which is not there'
    above = os.path.dirname(here)
    if above == here:
      return None
    here = above
  if os.path.isdir(here):
    return None
  if here == os.path.abspath(path):
    return f'{flag} {path} is a file, not a folder'
  return f'{flag} {path}: {here} is a file, not a folder'


def cannot_write(flag: str, folder: str) -> str | None:
  """`<flag> <folder>: cannot write there (why)` where no file can be written in the local
  `folder` (a read-only disk, no permission: found before any work, not at the first save or
  the last report), else None. The folder is made where missing, and the folders made for it go
  again where it cannot be written; one file is made and removed."""
  made = folders_to_make(folder)
  try:
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix='.write-check-'):
      pass
  except OSError as e:
    remove_empty_folders(made)
    return f'{flag} {folder}: cannot write there ({e.strerror or type(e).__name__})'
  return None


def folders_to_make(path: str) -> list[str]:
  """The folders `os.makedirs(path)` would make, deepest first: those a command that is refused
  before its first output removes again (`remove_empty_folders`)."""
  made, here = [], os.path.abspath(path)
  while not os.path.lexists(here):
    made.append(here)
    here = os.path.dirname(here)
  return made


def remove_empty_folders(folders: list[str]) -> None:
  """Removes those of `folders` (deepest first, as `folders_to_make` lists them) that are
  still empty; one that holds anything stays, with those above it."""
  for folder in folders:
    try:
      os.rmdir(folder)
    except OSError:  # not empty (or gone): it and the folders above it stay
      return


def start_command() -> None:
  """What every command line's main() does first. Its module, run as a command, let Ctrl-C end
  the process at once while its imports loaded (a KeyboardInterrupt there printed a traceback of
  import machinery); from here Ctrl-C raises KeyboardInterrupt again, which each command turns
  into a clean stop. Then `plain_log_lines`."""
  if signal.getsignal(signal.SIGINT) is signal.SIG_DFL:  # (set by the module; not in tests)
    signal.signal(signal.SIGINT, signal.default_int_handler)
  plain_log_lines()


def run_command(main: Callable[[], int | None]) -> int | None:
  """`main()` of a command without a stop of its own: Ctrl-C ends it in one line, exit status
  130 (a traceback otherwise, from wherever it was: often an import it makes when it needs
  it)."""
  try:
    return main()
  except KeyboardInterrupt:
    print('interrupted', file=sys.stderr)
    return 130


def exit_with(status: int | None) -> None:
  """Exits with `status` once the command has printed its outcome. A signal while the interpreter
  shuts down (joining Beam's and TensorFlow's threads: a second or two) killed the process,
  whose status became the signal's (143, 130) after a line that said the work was done: from
  here SIGINT and SIGTERM are ignored (a Python handler would not do: the interpreter puts the
  defaults back as it finalizes). A shutdown that hangs past `SHUTDOWN_LIMIT_S` is ended with
  its threads' tracebacks, exit status 1."""
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, signal.SIG_IGN)
  try:
    faulthandler.dump_traceback_later(SHUTDOWN_LIMIT_S, exit=True, file=sys.__stderr__)
  except (AttributeError, ValueError, OSError):  # (no stderr of the OS's to write to)
    pass
  sys.exit(status)


SHUTDOWN_LIMIT_S = 120


def plain_log_lines() -> None:
  """Log lines in the words of the command lines' own: 'warning: ...' (a warning from an
  unconfigured root logger reads 'WARNING:root:...', like a library's), each warning's text
  once per command (every worker process of a local run builds the model and would repeat its
  warning). Left alone where logging is set up otherwise (by a program that imports this, by
  pytest); a command run again in the same process starts its count afresh."""
  root = logging.getLogger()
  ours = [h for h in root.handlers if isinstance(h.formatter, _LevelFirst)]
  if ours:
    for handler in ours:
      handler.filters = [_OnceEach()]
    return
  if root.handlers:
    return
  handler = logging.StreamHandler()
  handler.setFormatter(_LevelFirst())
  handler.addFilter(_OnceEach())
  root.addHandler(handler)


class _LevelFirst(logging.Formatter):
  def format(self, record):
    return f'{record.levelname.lower()}: {super().format(record)}'


class _OnceEach(logging.Filter):
  def __init__(self):
    super().__init__()
    self._seen = set()

  def filter(self, record):
    if record.levelno >= logging.ERROR:  # (each with its own traceback)
      return True
    key = (record.levelno, record.getMessage())
    if key in self._seen:
      return False
    self._seen.add(key)
    return True


def in_range(kind: type, low: float, high: float | None = None, *, low_open: bool = False,
             high_open: bool = False) -> Callable[[str], float]:
  """An argparse type: `kind` (int or float) from `low` to `high` (None: no upper bound),
  `low_open` / `high_open` leaving out that end. argparse prefixes the flag to the message."""
  if high is None:
    allowed = f'{">" if low_open else ">="} {low}'
  else:
    allowed = f'in {"(" if low_open else "["}{low}, {high}{")" if high_open else "]"}'

  def parse(text: str):
    value = kind(text)
    above_low = value > low if low_open else value >= low  # False for nan, which is refused
    below_high = high is None or (value < high if high_open else value <= high)
    finite = kind is not float or math.isfinite(value)  # inf: no flag's value
    if not (above_low and below_high and finite):
      raise argparse.ArgumentTypeError(f'must be a finite number {allowed}, got {text}'
                                       if above_low and below_high else
                                       f'must be {allowed}, got {text}')
    return value

  parse.__name__ = kind.__name__  # text that is no number: "invalid int value: 'x'"
  return parse


positive_int = in_range(int, 1)
non_negative_int = in_range(int, 0)
positive_float = in_range(float, 0, low_open=True)
share = in_range(float, 0, 1)  # a fraction of scenes, textures or batches
# Recursion depth N: 2^N - 1 in-betweens per pair. 10 (1023, a 1024x slow-down) is past any
# use; unbounded, N=24 planned 16.7 million frames per pair in memory before writing one (a job
# killed for memory) and overran the six-digit frame names after a single pair.
times_to_interpolate = in_range(int, 0, 10)
# --align: the model needs 64 at most (its coarsest level); 100000 padded a frame to 100000^2.
MAX_ALIGN = 1024
align = in_range(int, 0, MAX_ALIGN)


def path_value(text: str) -> str:
  """A path flag's value. Empty (an unset variable in a script: `--model_path "$MODEL"`) is a
  usage error: as a model it read as "the built-in model" and redid every pair with it; as an
  output it wrote into the current folder."""
  if not text.strip():
    raise argparse.ArgumentTypeError('may not be empty (an unset variable in a script?)')
  return text


def parse_bool(text: str) -> bool:
  """An argparse type for true/false flags: 1/0, true/false, yes/no, on/off."""
  if text.lower() in ('1', 'true', 'yes', 'on'):
    return True
  if text.lower() in ('0', 'false', 'no', 'off'):
    return False
  raise argparse.ArgumentTypeError(f'expected true or false, got {text!r}')


# `--tile_overlap`'s default: wide enough to hold most motions at 4K (the tiles see each other's
# content across it), measured against whole frames by `bench/bench_tiles.py`; a quarter of the
# tile where that is less, so that any `--tile` alone works.
DEFAULT_TILE_OVERLAP = 128


def tile_overlap(tile: int | None, overlap: int | None) -> int:
  """`overlap`, or when None the default for tiles of `tile` px."""
  if overlap is not None:
    return overlap
  return min(DEFAULT_TILE_OVERLAP, tile // 4) if tile else DEFAULT_TILE_OVERLAP


def max_tile_overlap(tile: int) -> int:
  """The most overlap tiles of `tile` px may have: half of them, so that they step by at least
  half their size (63 of 64 would be ~1.9 million tiles at 1080p)."""
  return tile // 2


MIN_TILE = 64  # with align 64 (the default) a smaller tile is padded to 64 anyway


def tile_size(text: str) -> int:
  """An argparse type for `--tile`: 0 (whole frames) or at least `MIN_TILE` pixels."""
  value = int(text)
  if value != 0 and value < MIN_TILE:
    raise argparse.ArgumentTypeError(f'must be 0 (whole frames) or >= {MIN_TILE}, got {text}')
  return value


tile_size.__name__ = 'int'  # text that is no number: "invalid int value: 'x'"


def add_tile_flags(parser: argparse.ArgumentParser) -> None:
  """`--tile` and `--tile_overlap`, the same in every command line; check them with
  `check_tile_flags` once parsed."""
  parser.add_argument(
      '--tile', type=tile_size, default=0,
      help='Run frames wider or taller than this many pixels as overlapping tiles of at most '
           'this size, blended across the overlaps: the model\'s memory follows the tile, not '
           'the frame (built-in model, 4K: 14.7 GB whole, 2.5 GB at --tile 1024, 1.5x the '
           'time). Costs quality where motion is large against the tile. 0 or at least '
           f'{MIN_TILE}; default 0: whole frames.')
  parser.add_argument(
      '--tile_overlap', type=non_negative_int, default=None,
      help=f'Pixels by which neighbouring tiles overlap at least (default {DEFAULT_TILE_OVERLAP}, '
           'or a quarter of --tile when that is less); '
           'keep it above the largest motion in the footage.')


def check_tile_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  """A usage error unless `--tile_overlap` is at most half of `--tile` (when tiling), or where
  it is given without `--tile` (it would change nothing, as `--scene_cut_threshold` without
  `--scene_cuts`); fills in the overlap's default."""
  if args.tile_overlap is not None and not args.tile:
    parser.error('--tile_overlap only works with --tile (frames run whole)')
  args.tile_overlap = tile_overlap(args.tile, args.tile_overlap)
  if args.tile and args.tile_overlap > max_tile_overlap(args.tile):
    parser.error(f'--tile_overlap ({args.tile_overlap}) must be at most half of --tile '
                 f'({args.tile}): tiles would step by less than half their size; take a larger '
                 f'--tile')


def add_flip_average_flags(parser: argparse.ArgumentParser, what: str = 'each pair') -> None:
  """`--flip_average[=true|false]` and `--no_flip_average`, the same in every command line;
  `flip_average` None (neither given) means: as the model file says."""
  parser.add_argument(
      '--flip_average', nargs='?', const=True, default=None, type=parse_bool,
      help=f'Also run {what} flipped about its diagonal (transposed) and mix the two mid frames '
           '(the built-in model weights each pixel by how well each run\'s warped inputs agree): '
           'better frames (+0.4 dB on Middlebury-Other with the built-in model) for 1.6-1.9x the '
           'model time. Default: as the model file says (on for the built-in model and the '
           'files trained on from it, off for others); --flip_average=false or '
           '--no_flip_average turns it off.')
  parser.add_argument('--no_flip_average', dest='flip_average', action='store_const',
                      const=False, help=f'Run {what} once (same as --flip_average=false).')
