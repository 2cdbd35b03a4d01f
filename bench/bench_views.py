"""Does a second view of a rendered scene teach as much as a fresh scene? (`--views_per_scene`)

    .venv/bin/python bench/bench_views.py [--steps 1000] [--run 8x1 --run 8x2 --run 16x2 ...]

Each `--run BxK` trains `film_net.train_torch` for --steps steps at batch B with K views per
rendered scene (B/K scenes per step), all from the same blend initialisation and seed, on the
same scene options, then scores the exported weights (run once per pair, no flip averaging) on
a held-out set rendered here with a seed apart from every training batch. On a GPU that is bound
by rendering (stage 8: ~12 steps/s at batch 8), BxK costs the rendering of B/K scenes per step,
so the question is whether 16x2 learns more per step than 8x1 (same rendering), and how far 8x2
(half the rendering) falls behind 8x1. `--options` defaults to a small configuration so the runs
fit a CPU; on a GPU use `--options compact --crop 256`. Runs with one seed differ by their
batches, so `--seeds 2` repeats each run with a second seed to show that spread.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from machine import machine_line  # pylint: disable=wrong-import-position

SMALL = {'pyramid_levels': 5, 'fusion_pyramid_levels': 4, 'specialized_levels': 2,
         'sub_levels': 3, 'flow_convs': [2, 2, 2], 'flow_filters': [8, 16, 32], 'filters': 8}
HELD_OUT_SEED = 1000  # film_net.render's held-out sets; training seeds here are 11, 12, ...


def train(out: str, batch: int, views: int, seed: int, args) -> float:
  """Trains one run into `out`; returns its wall time in seconds."""
  argv = [sys.executable, '-m', 'film_net.train_torch', '--output_dir', out,
          '--options', args.options, '--steps', str(args.steps), '--batch_size', str(batch),
          '--views_per_scene', str(views), '--crop', str(args.crop),
          '--max_motion', str(args.max_motion), '--small_objects', '3', '--regular_share', '0.3',
          '--lr', str(args.lr), '--lr_decay_steps', str(args.steps), '--seed', str(seed),
          '--ema_decay', '0.99', '--init', 'none', '--log_every', str(max(args.steps // 4, 1)),
          '--checkpoint_every', str(10 ** 9), '--workers', str(args.workers)]
  start = time.perf_counter()
  done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
  if done.returncode:
    raise RuntimeError(f'training failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}')
  return time.perf_counter() - start


def mean_psnr(weights_path: str, triplets: list) -> float:
  from film_net.interpolator import Interpolator  # pylint: disable=import-outside-toplevel
  from transforms import quality  # pylint: disable=import-outside-toplevel
  model = Interpolator.from_path(weights_path, align=0, flip_average=False)
  return float(np.mean([quality.psnr(np.clip(model(x0, x1), 0, 1), mid)
                        for x0, mid, x1 in triplets]))


def held_out(args) -> list:
  from film_net import render  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(HELD_OUT_SEED)
  return [render.render_triplet(rng, args.crop, args.crop, max_motion_px=args.max_motion,
                                small_objects=3, regular_share=0.3)
          for _ in range(args.held_out)]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--run', action='append', default=None,
                      help='BxK: batch B, K views per scene (repeatable; default 8x1 8x2 16x2)')
  parser.add_argument('--steps', type=int, default=1000)
  parser.add_argument('--seeds', type=int, default=1, help='seeds per run (11, 12, ...)')
  parser.add_argument('--first_seed', type=int, default=11)
  parser.add_argument('--options', default=json.dumps(SMALL))
  parser.add_argument('--crop', type=int, default=96)
  parser.add_argument('--max_motion', type=int, default=24)
  parser.add_argument('--lr', type=float, default=5e-4)
  parser.add_argument('--held_out', type=int, default=96, help='held-out triplets')
  parser.add_argument('--workers', type=int, default=1)
  args = parser.parse_args()
  runs = [tuple(int(n) for n in r.lower().split('x')) for r in args.run or ['8x1', '8x2', '16x2']]
  print(f'machine: {machine_line()}; {args.steps} steps, crop '
        f'{args.crop}, motion <= {args.max_motion} px, options {args.options}', flush=True)
  triplets = held_out(args)
  print('run      seed  scenes/step  minutes  held-out PSNR dB', flush=True)
  for batch, views in runs:
    for seed in range(args.first_seed, args.first_seed + args.seeds):
      with tempfile.TemporaryDirectory() as out:
        seconds = train(out, batch, views, seed, args)
        score = mean_psnr(os.path.join(out, 'latest.npz'), triplets)
      print(f'{batch}x{views:<6} {seed:4d}  {batch // views:11d}  {seconds / 60:7.1f}  '
            f'{score:.3f}', flush=True)


if __name__ == '__main__':
  main()
