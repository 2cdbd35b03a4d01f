"""How the pipeline's bookkeeping grows with an archive: each step at a size and at 4x it.

    python bench/bench_scale.py [--size 2000]

Steps that run once per run, in one process, before or beside the work (on Dataflow too, for
discovery and pruning), so that what grows faster than the archive is a wall a large archive
hits every night:
- discovery of a folder input whose reel folders hold a scanner log beside their shot folder;
- discovery of a manifest listing one clip of `size` frames (a film);
- pruning: deleting `size`/10 removed clips' files against `size` kept clip names (a
  reorganised archive);
- a tick of the local progress line, over `size` notes, after the first (which reads them all).
Files are empty (discovery reads names, not pixels). Prints one JSON line per step with the
seconds at `size` and at 4x, and their ratio: 4 is linear, 16 quadratic.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from machine import machine_line  # pylint: disable=wrong-import-position
from pipeline import progress  # pylint: disable=wrong-import-position
from transforms import clips as clips_lib  # pylint: disable=wrong-import-position
from transforms import prune  # pylint: disable=wrong-import-position
from transforms import records  # pylint: disable=wrong-import-position


def _touch(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  open(path, 'w').close()  # pylint: disable=consider-using-with


def discovery_with_logs(folder, n):
  for r in range(n):
    _touch(f'{folder}/in/reel{r:06d}/scanlog.txt')
    for i in range(2):
      _touch(f'{folder}/in/reel{r:06d}/shot/f{i}.png')
  start = time.perf_counter()
  found = list(clips_lib.DiscoverClips('bench', f'{folder}/out').process(f'{folder}/in'))
  assert sum(isinstance(e, clips_lib.Clip) for e in found) == n
  return time.perf_counter() - start


def manifest_of_one_film(folder, n):
  for i in range(n):
    _touch(f'{folder}/reel/f{i:07d}.png')
  with open(f'{folder}/m.csv', 'w') as f:
    f.write('clip,frame0,frame1\n')
    f.writelines(f'reel,reel/f{i:07d}.png,reel/f{i + 1:07d}.png\n' for i in range(n - 1))
  start = time.perf_counter()
  (clip,) = [e for e in clips_lib.DiscoverClips('bench', f'{folder}/out').process(
      f'{folder}/m.csv') if isinstance(e, clips_lib.Clip)]
  assert len(clip.frames) == n
  return time.perf_counter() - start


def pruning_against_kept_clips(folder, n):
  kept = [f'kept/reel{i:07d}' for i in range(n)]
  removed = []
  for r in range(n // 10):
    path = f'{folder}/gone/reel{r:05d}/frame_000000.png'
    _touch(path)
    removed.append({'output': folder, 'clip': f'gone/reel{r:05d}', 'paths': [path]})
  delete = prune.DeleteRemovedClip('bench')
  start = time.perf_counter()
  for clip in removed:
    list(delete.process(clip, kept))
  assert not os.path.exists(f'{folder}/gone')
  return time.perf_counter() - start


def progress_tick(folder, n, ticks=5):
  for i in range(n):
    records.progress_note(folder, f'unit-{i:08x}.json', {'pairs': 4, 'processed': 4, 'frames': 8})
  printer = progress.ProgressPrinter(folder, 3600)
  try:
    assert f'{4 * n}/? pairs' in printer.line()
    start = time.perf_counter()
    for _ in range(ticks):
      assert f'{4 * n}/? pairs' in printer.line()
    return (time.perf_counter() - start) / ticks
  finally:
    printer._stop.set()  # pylint: disable=protected-access


STEPS = {'discovery_with_logs': discovery_with_logs, 'manifest_of_one_film': manifest_of_one_film,
         'pruning_against_kept_clips': pruning_against_kept_clips,
         'progress_tick': progress_tick}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--size', type=int, default=2000)
  args = parser.parse_args()
  logging.disable(logging.WARNING)  # (a line per pruned clip)
  print(machine_line(), flush=True)
  for name, step in STEPS.items():
    seconds = []
    for n in (args.size, 4 * args.size):
      folder = tempfile.mkdtemp(prefix='bench_scale-')
      try:
        seconds.append(step(folder, n))
      finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({'step': name, 'size': args.size, 'seconds': round(seconds[0], 3),
                      'seconds_4x': round(seconds[1], 3),
                      'ratio': round(seconds[1] / seconds[0], 1)}), flush=True)


if __name__ == '__main__':
  main()
