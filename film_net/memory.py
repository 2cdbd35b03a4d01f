"""What one mid frame costs in memory on CPU, and what this machine has in all.

On CPU the model's activations come out of the machine's memory, and Linux ends a process that
asks for more than there is (the OOM killer): no exception, no error record, and whatever meets
the frame again (a re-run, Dataflow's retries of the bundle) dies at it again. So a frame whose
estimate exceeds all the memory this machine or its container has, swap included, is refused
before the model runs (`Interpolator.check_size` raises `FrameTooLarge`). Only what cannot fit
even alone is refused; a frame that fits alone but not beside other processes can still be
killed. Nothing is checked where the model computes on a GPU: its allocator raises an error of
its own when the activations do not fit.

The estimate is measured, not derived (`bench/bench_memory.py`: peak RSS of a fresh process
computing one mid frame, TensorFlow's BFC allocator as `film_net` sets it; 2026-12-06, 2-core
EPYC): the peak grew by about 1.35 KB per padded pixel at the built-in model's widths (`filters`
16), 4.0-4.4 KB at the released size's (64) and 0.58 KB at tiny test widths (4), close to a
line in `filters`; running each pair flipped too (`flip_average`) added 30%; the process held
0.55-1.0 GB before its first frame. The estimate came to 0.83-0.98 of the measured peaks from
512x512 to 1080p and 1.005 at 4K (built-in model): rather low than high, so a frame is refused
only where it clearly cannot fit. A run's peak is higher than one call's: the allocator's pool
grew 4% over the next two calls at 1080p, and recursion keeps the features of each in-between
it halves again (about 0.35 KB per pixel for the built-in model flip-averaged: +14% at
times_to_interpolate 2).
"""
from __future__ import annotations

import functools
import os

# Where Linux says what memory there is; tests point them at files of their own.
MEMINFO = '/proc/meminfo'
OWN_CGROUPS = '/proc/self/cgroup'
CGROUP_ROOT = '/sys/fs/cgroup'

BASE_BYTES = 512 * 2**20              # the process before its first frame
BYTES_PER_PIXEL = 320                 # per padded pixel, whatever the widths ...
BYTES_PER_PIXEL_PER_FILTER = 64       # ... plus this per `Options.filters`
FLIP_AVERAGE_FACTOR = 1.3             # the flipped run's features and the mix
TILED_FRAME_BYTES_PER_PIXEL = 64      # tiled: the whole frames, float32, beside the tiles


class FrameTooLarge(MemoryError, ValueError):
  """The model would need more memory for this frame than the machine has: a MemoryError, and
  a ValueError as other frames a model cannot take (too small ones) are."""


def frame_bytes(options, height: int, width: int, flip_average: bool, batch: int = 1) -> int:
  """Estimated peak memory of a process computing the mid frames of `batch` pairs of `height` x
  `width` padded pixels with a model of these `options`."""
  per_pixel = BYTES_PER_PIXEL + BYTES_PER_PIXEL_PER_FILTER * options.filters
  if flip_average:
    per_pixel *= FLIP_AVERAGE_FACTOR
  return int(BASE_BYTES + per_pixel * height * width * batch)


@functools.cache
def machine_bytes() -> int | None:
  """All the memory this process may use before the kernel ends it: physical memory plus swap,
  or its container's (cgroup) limit where lower; None where unknown (not Linux)."""
  meminfo = _meminfo()
  if 'MemTotal' not in meminfo:
    return None
  swap = meminfo.get('SwapTotal', 0)
  total = meminfo['MemTotal'] + swap
  limit = _cgroup_limit(swap)
  return min(total, limit) if limit else total


def _meminfo() -> dict[str, int]:
  try:
    with open(MEMINFO, encoding='ascii') as f:
      lines = f.read().splitlines()
  except OSError:
    return {}
  values = {}
  for line in lines:
    name, _, rest = line.partition(':')
    fields = rest.split()
    if fields and fields[0].isdigit():
      values[name] = int(fields[0]) * 1024  # kB
  return values


def _cgroup_limit(swap: int) -> int | None:
  """The memory, swap included, that this process's cgroup and the parents that bind it let it
  use (v2: the lowest `memory.max` plus the swap the lowest `memory.swap.max` allows; v1: the
  lowest `memory.limit_in_bytes` plus swap, or `memory.memsw.limit_in_bytes` where lower, parents
  only where they charge their children, `memory.use_hierarchy`); None if no limit is set."""
  v2_path, v1_path = _own_cgroups()
  limits = []
  if v2_path is not None:
    folders = [os.path.join(CGROUP_ROOT, f) for f in _self_and_parents(
        _under(CGROUP_ROOT, v2_path))]
    memory_limits = _numbers(folders, 'memory.max')
    if memory_limits:
      limits.append(min(memory_limits) + min([swap] + _numbers(folders, 'memory.swap.max')))
  if v1_path is not None:
    root = os.path.join(CGROUP_ROOT, 'memory')
    for depth, folder in enumerate(_self_and_parents(_under(root, v1_path))):
      folder = os.path.join(root, folder)
      if depth and _read_number(os.path.join(folder, 'memory.use_hierarchy')) == 0:
        continue
      limit = _read_number(os.path.join(folder, 'memory.limit_in_bytes'))
      if limit is not None:
        with_swap = _read_number(os.path.join(folder, 'memory.memsw.limit_in_bytes'))
        limits.append(limit + swap if with_swap is None else min(limit + swap, with_swap))
  return min(limits, default=None)


def _own_cgroups() -> tuple[str | None, str | None]:
  """This process's cgroup v2 path and v1 memory-controller path, as /proc/self/cgroup lists
  them (None where it lists none; both the mount's root where it cannot be read)."""
  v2_path = v1_path = None
  try:
    with open(OWN_CGROUPS, encoding='utf-8', errors='replace') as f:
      for line in f:
        _, controllers, path = line.rstrip('\n').split(':', 2)
        if controllers == '':
          v2_path = path.strip('/')
        elif 'memory' in controllers.split(','):
          v1_path = path.strip('/')
  except (OSError, ValueError):
    return '', ''
  return v2_path, v1_path


def _under(root: str, path: str) -> str:
  """`path` where the mount at `root` holds it; else the mount's root, which is the process's
  own cgroup in a container that sees only its cgroup (the path listed is the host's)."""
  return path if os.path.isdir(os.path.join(root, path)) else ''


def _numbers(folders: list[str], name: str) -> list[int]:
  return [n for n in (_read_number(os.path.join(f, name)) for f in folders) if n is not None]


def _self_and_parents(path: str) -> list[str]:
  parts = path.split('/') if path else []
  return ['/'.join(parts[:n]) for n in range(len(parts), -1, -1)]


def _read_number(path: str) -> int | None:
  """The file's number; None if missing, unreadable or 'max' (no limit)."""
  try:
    with open(path, encoding='ascii') as f:
      text = f.read().strip()
  except (OSError, UnicodeDecodeError):
    return None
  return int(text) if text.isdigit() else None
