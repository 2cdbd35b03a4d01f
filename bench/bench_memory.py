"""The model's memory on CPU against `film_net.memory`'s estimate, which refuses frames that
could never fit in a machine's memory (the operating system would end the process for them).

    python bench/bench_memory.py [--runs default:1:512x512,default:1:1920x1080,...]

Each run is `options:flip_average:WxH` (options: default = the built-in model as it runs by
default, flip-averaged where flip_average is 1; released or tiny = random weights of those
widths, the same memory as trained ones), in a fresh process so that one peak cannot hide
another: the process's peak RSS once the model is loaded and after one mid frame, and the
estimate for that frame. Prints one JSON line per run; `estimate_over_peak` above 1 means the
estimate is high (a frame near the machine's memory may be refused though it would have fit),
below 1 that it is low (such a frame may still be killed).
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from machine import machine_line  # pylint: disable=wrong-import-position

DEFAULT_RUNS = ('default:1:512x512,default:1:1024x1024,default:1:1920x1080,'
                'default:0:512x512,default:0:1920x1080,released:0:512x512,'
                'released:0:1024x1024,released:0:1920x1080,tiny:0:1024x1024')

_ONE_RUN = '''
import json, resource, sys
import numpy as np
from film_net import Interpolator, Options, memory
from film_net.interpolator import _pad_box
which, flip, width, height = sys.argv[1], sys.argv[2] == '1', int(sys.argv[3]), int(sys.argv[4])
if which == 'default':
  model = Interpolator.from_path(None, flip_average=flip)
else:
  model = Interpolator.random(getattr(Options, which)(), flip_average=flip)
rng = np.random.default_rng(0)
small = rng.random((height // 16 + 2, width // 16 + 4, 3), dtype=np.float32)
frame = np.kron(small, np.ones((16, 16, 1), np.float32))
x0, x1 = frame[:height, :width], frame[:height, 24:24 + width]
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model(x0, x1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
_, _, padded_height, padded_width = _pad_box(height, width, model.align)
print(json.dumps({'loaded': loaded, 'peak': peak, 'estimate': memory.frame_bytes(
    model.options, padded_height, padded_width, flip)}))
'''


def one_run(spec):
  which, flip, size = spec.split(':')
  width, height = size.split('x')
  proc = subprocess.run([sys.executable, '-c', _ONE_RUN, which, flip, width, height], cwd=ROOT,
                        capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': ROOT},
                        check=False)
  if proc.returncode:
    raise RuntimeError(proc.stderr[-3000:])
  got = json.loads(proc.stdout.strip().splitlines()[-1])
  return {'bench': 'memory', 'options': which, 'flip_average': flip == '1', 'size': size,
          'loaded_mb': round(got['loaded'] / 2**20), 'peak_mb': round(got['peak'] / 2**20),
          'estimate_mb': round(got['estimate'] / 2**20),
          'estimate_over_peak': round(got['estimate'] / got['peak'], 3)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--runs', default=DEFAULT_RUNS,
                      help='comma-separated options:flip_average:WxH')
  args = parser.parse_args()
  print(json.dumps({'machine': machine_line()}), flush=True)
  for spec in args.runs.split(','):
    print(json.dumps(one_run(spec)), flush=True)


if __name__ == '__main__':
  main()
