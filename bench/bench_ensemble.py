"""What test-time averaging would gain: mean PSNR of the model alone and averaged with one more
run on the frames transformed (the 7 flips and rotations of the square, or the inputs swapped
in time), on Middlebury-Other and on any other triplet folders; and the diagonal run mixed by
agreement (`Interpolator(flip_weights='agreement')`) instead of the plain mean, also with the
inputs' mean as a third candidate (`'agreement_with_average'`).

    python bench/bench_ensemble.py [--model_path P] [--data DIR ...]

The measurement behind `flip_average`'s choice of the diagonal flip (transpose) as its second
run, and of `flip_weights` for the built-in model. Each pair runs once per
variant, unpadded (`align=None`), prediction clipped to [0, 1] as in `bench/bench_quality.py
--align 0 --no_flip_average`, whose `model` row the `plain` column repeats. Middlebury frames
are read from ../shared at run time (never copied or trained on); rendered held-out sets come
from `python -m film_net.render` (see docs/model_history.md).
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


def _transpose(a):
  return np.transpose(a, (0, 2, 1, 3))


# name: (transform of the inputs, its inverse for the output), on (B, H, W, C) arrays.
VIEWS = {
    'left_right': (lambda a: a[:, :, ::-1], lambda a: a[:, :, ::-1]),
    'up_down': (lambda a: a[:, ::-1], lambda a: a[:, ::-1]),
    'rot180': (lambda a: a[:, ::-1, ::-1], lambda a: a[:, ::-1, ::-1]),
    'diagonal': (_transpose, _transpose),
    'anti_diagonal': (lambda a: _transpose(a[:, ::-1, ::-1]),
                      lambda a: _transpose(a)[:, ::-1, ::-1]),
    'rot90': (lambda a: np.rot90(a, 1, (1, 2)), lambda a: np.rot90(a, -1, (1, 2))),
    'rot270': (lambda a: np.rot90(a, -1, (1, 2)), lambda a: np.rot90(a, 1, (1, 2))),
}


def predictions(interp, weighted, x0, x1):
  """The plain mid frame, its mean with each transformed run and with the time-swapped run,
  the diagonal run mixed by agreement (`weighted`: flip_weights -> Interpolator), and the mean
  of all 8 flips and rotations."""
  plain = interp(x0, x1)
  runs = {name: back(interp(np.ascontiguousarray(there(x0)), np.ascontiguousarray(there(x1))))
          for name, (there, back) in VIEWS.items()}
  out = {'plain': plain, **{f'+{name}': (plain + run) / 2 for name, run in runs.items()}}
  out['+swap'] = (plain + interp(x1, x0)) / 2
  out['+diagonal by agreement'] = weighted['agreement'](x0, x1)
  out['+diagonal by agreement, with mean'] = weighted['agreement_with_average'](x0, x1)
  out['all 8'] = (plain + sum(runs.values())) / 8
  return out


def triplets(folder):
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if os.path.isdir(path):
      yield name, [read_rgb(os.path.join(path, f))[None] for f in TRIPLET_NAMES]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--data', action='append', help=f'triplet folders (default {DEFAULT_DATA})')
  parser.add_argument('--model_path', default=None, help='default: the built-in model')
  parser.add_argument('--per_triplet', action='store_true', help='print every triplet')
  args = parser.parse_args(argv)
  folders = args.data or [DEFAULT_DATA]
  for folder in folders:
    if not os.path.isdir(folder):
      sys.exit(f'{folder} not found (Middlebury-Other lives in ../shared/data)')
  interp = Interpolator.from_path(args.model_path, align=None, flip_average=False)
  weighted = {mode: Interpolator(interp.net, align=None, flip_average=True, flip_weights=mode)
              for mode in ('agreement', 'agreement_with_average')}
  for folder in folders:
    scores = {}
    for name, (x0, truth, x1) in triplets(folder):
      for variant, mid in predictions(interp, weighted, x0, x1).items():
        scores.setdefault(variant, []).append(psnr(np.clip(mid, 0, 1)[0], truth[0]))
      if args.per_triplet:
        print(f'{name:<14}' + ' '.join(f'{v}={s[-1]:.2f}' for v, s in scores.items()), flush=True)
    print(f'{folder} ({len(scores["plain"])} triplets), mean PSNR dB:')
    for variant, values in scores.items():
      print(f'  {variant:<38}{np.mean(values):8.3f}')


if __name__ == '__main__':
  main()
