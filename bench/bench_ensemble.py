"""What test-time averaging would gain: Middlebury-Other PSNR of the model alone and averaged
over time reversal and a horizontal flip, each a full extra model call.

    python bench/bench_ensemble.py [--model_path P] [--data DIR]

A measurement for deciding on an ensemble mode, not a mode of the tool: the pipeline runs the
plain model. Frames are read from ../shared at run time (never copied or trained on); the
prediction is clipped to [0, 1] as in `bench/bench_quality.py --align 0`, whose `model` row
the `plain` column repeats.
"""

import argparse
import os
import sys

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

# pylint: disable=wrong-import-position
from bench.bench_quality import DEFAULT_DATA
from film_net import Interpolator
from film_net.image_io import read_rgb
from film_net.render import TRIPLET_NAMES
from transforms.quality import psnr


def flip(images):
  """(B,H,W,C) images mirrored left-right."""
  return images[:, :, ::-1]


def predictions(interp, x0, x1):
  """The plain prediction and its variants: inputs swapped, flipped left-right, and both."""
  plain, swapped = interp(x0, x1), interp(x1, x0)
  flipped = flip(interp(flip(x0), flip(x1)))
  both = flip(interp(flip(x1), flip(x0)))
  return {'plain': plain, 'swap': swapped, 'mean(plain,swap)': (plain + swapped) / 2,
          'flip': flipped, 'mean(plain,flip)': (plain + flipped) / 2,
          'mean(all 4)': (plain + swapped + flipped + both) / 4}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--data', default=DEFAULT_DATA)
  parser.add_argument('--model_path', default=None, help='default: the built-in model')
  args = parser.parse_args(argv)
  if not os.path.isdir(args.data):
    sys.exit(f'{args.data} not found: the Middlebury-Other triplets live in ../shared/data')
  interp = Interpolator.from_path(args.model_path, align=None)
  scores = {}
  for name in sorted(os.listdir(args.data)):
    folder = os.path.join(args.data, name)
    if not os.path.isdir(folder):
      continue
    x0, truth, x1 = (read_rgb(os.path.join(folder, f))[None] for f in TRIPLET_NAMES)
    variants = predictions(interp, x0, x1)
    if not scores:
      print(f'{"sequence":<14}' + ''.join(f'{m:>18}' for m in variants))
    for method, image in variants.items():
      scores.setdefault(method, []).append(psnr(np.clip(image, 0, 1), truth))
    print(f'{name:<14}' + ''.join(f'{v[-1]:>18.2f}' for v in scores.values()), flush=True)
  print(f'{"mean":<14}' + ''.join(f'{np.mean(v):>18.3f}' for v in scores.values()))


if __name__ == '__main__':
  main()
