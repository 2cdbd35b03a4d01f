"""What retiming's N buys: PSNR of the frame a delivery rate shows against the true scene.

    python bench/bench_retime_quality.py [--count 24 --size 256 --max_motion 40] [--model_path P]

Rendered scenes (`film_net.render`, seeds from 1000: apart from every training batch) give the
truth at any time, which real footage cannot. For each scene the model halves the pair (x0, x1)
three times (`Interpolator.recursive`, N = 3), and the frames are scored against the scene at:

* t = 1/2, 1/4 and 3/4, 1/8 ... 7/8: the dense positions themselves (how quality holds with
  the depth of the recursion);
* t = 1/3 and 2/3, where 16 fps film retimed to 24 fps needs frames: the dense frame the pipeline
  shows there (`--output_fps`, nearest position) at N = 0 (the nearer original: dropping and
  repeating frames), 1, 2 and 3; and the true scene at that position in its place (what the
  timing error alone costs, with a perfect model).

With `--lost_scan` the pair spans two frame intervals (the scan between them lost, motion twice
`--max_motion`), and the frames at t = 1/3, 2/3 of it are those 16 to 24 fps retiming shows in
the gap (outputs 1 and 2, at 2/3 and 4/3 source intervals): how well a lost scan is filled.

PSNR as the evaluation computes it (`transforms.quality`, prediction clipped to [0, 1]), mean
over scenes. Prints one JSON line.
"""

import argparse
import fractions
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # pylint: disable=wrong-import-position

from machine import machine_line  # pylint: disable=wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--count', type=int, default=24)
  parser.add_argument('--size', type=int, default=256)
  parser.add_argument('--max_motion', type=float, default=40.0)
  parser.add_argument('--seed', type=int, default=1000)
  parser.add_argument('--model_path', default=None)
  parser.add_argument('--lost_scan', action='store_true',
                      help='the pair spans two frame intervals: a scan lost between its frames')
  args = parser.parse_args()
  print(f'machine: {machine_line()}', flush=True)

  from film_net import Interpolator, render  # pylint: disable=import-outside-toplevel
  from transforms import quality, retime  # pylint: disable=import-outside-toplevel
  model = Interpolator.from_path(args.model_path)
  n = 3
  step = 2 ** n
  dense_times = [j / step for j in range(1, step)]
  retime_times = [1 / 3, 2 / 3]
  scores = {f'dense {j}/{step}': [] for j in range(1, step)}
  for depth in range(n + 1):
    scores[f'16->24 at N={depth}'] = []
    scores[f'16->24 at N={depth}, true scene there'] = []
  started = time.perf_counter()
  for i in range(args.count):
    rng = np.random.default_rng(args.seed + i)
    intervals = 2 if args.lost_scan else 1
    scene = render.random_scene(rng, args.size, args.size,
                                max_motion_px=args.max_motion * intervals)
    truth = render.render_times(scene, [0.0, 1.0] + dense_times + retime_times)
    x0, x1 = truth[0], truth[1]
    # Positions 0 .. 2^n, clipped to [0, 1] as the evaluation scores a prediction (the
    # model's own output may overshoot a little; the pipeline writes it clipped).
    made = [np.clip(frame, 0.0, 1.0) for frame in model.recursive([x0, x1], n)]
    for j, t in enumerate(dense_times, start=1):
      scores[f'dense {j}/{step}'].append(quality.psnr(made[j], truth[1 + j]))
    for output, (t, target) in enumerate(zip(retime_times, truth[-2:]), start=1):
      for depth in range(n + 1):
        # The pipeline's choice (`retime`): the dense frame nearest t at this depth, as a
        # position of the finest level.
        if args.lost_scan:  # outputs 1 and 2 of 16 to 24 fps, in a pair of two intervals
          nearest = retime.Retime(fractions.Fraction(16), fractions.Fraction(24), depth).along(
              [(0, 2)])
          position = nearest.dense_index(output) * 2 ** (n - depth)
        else:
          nearest = retime.Retime(fractions.Fraction(t).limit_denominator(12), 1, depth)
          position = nearest.dense_index(1) * 2 ** (n - depth)
        scores[f'16->24 at N={depth}'].append(quality.psnr(made[position], target))
        true_there = {0: x0, step: x1}.get(position, truth[1 + position] if 0 < position < step
                                           else None)
        scores[f'16->24 at N={depth}, true scene there'].append(
            quality.psnr(true_there, target))
  result = {'bench': 'retime_quality', 'scenes': args.count, 'size': args.size,
            'max_motion': args.max_motion, 'lost_scan': args.lost_scan,
            'model': args.model_path or 'built-in',
            'seconds': round(time.perf_counter() - started, 1),
            'mean_psnr': {name: round(float(np.mean(v)), 3) for name, v in scores.items()}}
  print(json.dumps(result), flush=True)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  main()
