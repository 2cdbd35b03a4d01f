"""Tiled inference (`--tile`) against whole frames: what it saves in memory, what it costs.

    python bench/bench_tiles.py memory [--size 1920x1080] [--tile 512] [--options default]
    python bench/bench_tiles.py quality [--tile 256] [--overlaps 0,32,64,128] [--data DIR]

memory:  peak RSS and seconds of one mid frame (the second call: the first traces), whole and
         tiled, each in a fresh process, so one peak cannot hide the other. `--options
         released` runs random weights of the released film_net's size (same compute and memory
         as the released models), `default` the built-in model.
quality: mean PSNR on Middlebury-Other (read from ../shared at run time) of the built-in model on
         whole frames and on `tile`-px tiles at each overlap, with the largest loss on any
         sequence. The frames are 584x388 to 640x480, so a 256-px tile cuts each into 2x3 or 3x3
         tiles: far more seams than a 1024-px tile leaves in a 4K frame.
Prints one JSON line per measurement.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # pylint: disable=wrong-import-position

from machine import machine_line  # pylint: disable=wrong-import-position

DEFAULT_DATA = os.path.join(ROOT, '..', 'shared', 'data', 'middlebury-other')

# Run in a fresh process per setting: builds the model, makes two frames (a pan of 24 px over
# smooth noise), calls it twice and prints the second call's seconds and the process's peak RSS.
_ONE_MID = '''
import json, resource, sys, time
import numpy as np
from film_net import Interpolator, Options
width, height, tile, overlap, options = sys.argv[1:]
tile = int(tile) or None
if options == 'released':
  model = Interpolator.random(Options.released(), tile=tile, tile_overlap=int(overlap))
else:
  model = Interpolator.from_path(None, tile=tile, tile_overlap=int(overlap))
rng = np.random.default_rng(0)
small = rng.random((int(height) // 16 + 2, int(width) // 16 + 4, 3), dtype=np.float32)
frame = np.kron(small, np.ones((16, 16, 1), np.float32))
x0, x1 = frame[:int(height), :int(width)], frame[:int(height), 24:24 + int(width)]
model(x0, x1)
start = time.perf_counter()
model(x0, x1)
print(json.dumps({'seconds': time.perf_counter() - start,
                  'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def _one_mid(width, height, tile, overlap, options):
  proc = subprocess.run([sys.executable, '-c', _ONE_MID, str(width), str(height), str(tile),
                         str(overlap), options], cwd=ROOT, capture_output=True, text=True,
                        env={**os.environ, 'PYTHONPATH': ROOT}, check=False)
  if proc.returncode:
    raise RuntimeError(proc.stderr[-3000:])
  return json.loads(proc.stdout.strip().splitlines()[-1])


def memory(args):
  width, height = (int(n) for n in args.size.split('x'))
  result = {'bench': 'tiles_memory', 'machine': machine_line(), 'size': args.size,
            'options': args.options, 'tile': args.tile, 'overlap': args.overlap}
  runs = [('tiled', args.tile)] + ([] if args.no_whole else [('whole', 0)])
  for name, tile in runs:
    one = _one_mid(width, height, tile, args.overlap, args.options)
    result[f'{name}_seconds'] = round(one['seconds'], 2)
    result[f'{name}_peak_rss_mb'] = round(one['peak_rss_mb'])
  if not args.no_whole:
    result['time_ratio_tiled_over_whole'] = round(result['tiled_seconds'] /
                                                  result['whole_seconds'], 3)
    result['rss_ratio_tiled_over_whole'] = round(result['tiled_peak_rss_mb'] /
                                                 result['whole_peak_rss_mb'], 3)
  print(json.dumps(result), flush=True)
  return result


def _triplets(data):
  folders = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(data, '*', 'frame10.png')))
  if not folders:
    sys.exit(f'no triplets under {data}: the Middlebury-Other triplets live in ../shared/data')
  return folders


def quality(args):
  from film_net import Interpolator  # pylint: disable=import-outside-toplevel
  from transforms import images, quality as metrics  # pylint: disable=import-outside-toplevel
  folders = _triplets(args.data)

  def read(folder, name):
    with open(os.path.join(folder, name), 'rb') as f:
      return images.decode(f.read(), name).rgb()

  triplets = [[read(f, n) for n in ('frame10.png', 'frame10i11.png', 'frame11.png')]
              for f in folders]
  settings = [('whole', None, 0)] + [(f'tile{args.tile}o{o}', args.tile, o)
                                      for o in (int(v) for v in args.overlaps.split(','))]
  scores = {}
  for name, tile, overlap in settings:
    model = Interpolator.from_path(None, tile=tile, tile_overlap=overlap)
    start = time.perf_counter()
    scores[name] = [metrics.psnr(np.clip(model(x0, x1), 0, 1), truth)
                    for x0, truth, x1 in triplets]
    seconds = time.perf_counter() - start
    result = {'bench': 'tiles_quality', 'setting': name, 'mean_psnr': round(
        float(np.mean(scores[name])), 3), 'seconds': round(seconds, 1)}
    if name != 'whole':
      loss = np.subtract(scores['whole'], scores[name])
      worst = int(np.argmax(loss))
      result.update(loss_db=round(float(np.mean(loss)), 3),
                    worst=f'{os.path.basename(folders[worst])} {loss[worst]:.2f} dB')
    print(json.dumps(result), flush=True)
  return scores


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='bench', required=True)
  mem = sub.add_parser('memory')
  mem.add_argument('--size', default='1920x1080', help='WxH')
  mem.add_argument('--tile', type=int, default=512)
  mem.add_argument('--overlap', type=int, default=128)
  mem.add_argument('--options', choices=('default', 'released'), default='default')
  mem.add_argument('--no_whole', action='store_true',
                   help='tiled only (whole frames would not fit in this machine\'s memory)')
  qual = sub.add_parser('quality')
  qual.add_argument('--data', default=DEFAULT_DATA)
  qual.add_argument('--tile', type=int, default=256)
  qual.add_argument('--overlaps', default='0,32,64,128')
  args = parser.parse_args()
  {'memory': memory, 'quality': quality}[args.bench](args)


if __name__ == '__main__':
  main()
