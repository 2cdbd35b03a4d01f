"""Training speed of the two trainers on this machine, in one run: TensorFlow vs PyTorch, each in
float32 and `--precision bfloat16`, and the cost of rendering their batches.

    .venv/bin/python bench/bench_train.py [--steps 60] [--batch_size 2] [--crop 192]

Both continue the built-in model on the same batches (stage 7's scenes without motion blur), each
in its own process, for --steps steps; steps/s is the mean of the logged windows after the
first (tracing and warm-up), and the ratio is what one run on a shared, noisy machine can say.
PyTorch runs on the GPU when there is one (then the ratio is across devices), else on the CPU
with one rendering worker, as the TensorFlow trainer renders in one thread.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from machine import machine_line  # pylint: disable=wrong-import-position


def steps_per_second(module: str, args, extra: list[str]) -> float:
  from film_net import weights as weights_lib  # pylint: disable=import-outside-toplevel
  start = int(weights_lib.read_meta(weights_lib.DEFAULT_MODEL).get('steps', 0))
  with tempfile.TemporaryDirectory() as out:
    argv = [sys.executable, '-m', module, '--output_dir', out, '--options', 'compact',
            '--steps', str(start + args.steps), '--batch_size', str(args.batch_size),
            '--crop', str(args.crop), '--max_motion', '64', '--small_objects', '3',
            '--regular_share', '0.3', '--lr', '1e-5', '--log_every', str(args.log_every),
            '--checkpoint_every', str(10 ** 9), *extra]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS=str(os.cpu_count() or 1)))
  rates = [float(r) for r in re.findall(r'([\d.]+) steps/s', done.stdout)]
  if done.returncode or len(rates) < 2:
    raise RuntimeError(f'{module} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}')
  return sum(rates[1:]) / len(rates[1:])


def render_ms_per_triplet(crop: int, motion_blur: float, count: int = 32) -> float:
  """Mean time to render one training triplet of stage 6-8's scenes (best of three rounds):
  the cost that bounds a GPU run's steps/s at workers / (batch x this)."""
  import time  # pylint: disable=import-outside-toplevel

  import numpy as np  # pylint: disable=import-outside-toplevel

  from film_net import render  # pylint: disable=import-outside-toplevel
  render.natural_images(), render.procedural_patterns(), render.regular_patterns()
  best = float('inf')
  for _ in range(3):
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(count):
      render.render_triplet(rng, crop, crop, motion_blur=motion_blur, max_motion_px=64,
                            small_objects=3, regular_share=0.3)
    best = min(best, (time.perf_counter() - start) / count)
  return 1000 * best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=60)
  parser.add_argument('--log_every', type=int, default=10)
  parser.add_argument('--batch_size', type=int, default=2)
  parser.add_argument('--crop', type=int, default=192)
  args = parser.parse_args()
  print(f'machine: {machine_line()}; batch {args.batch_size}, '
        f'crop {args.crop}, {args.steps} steps each', flush=True)
  for crop in sorted({args.crop, 256}):
    plain, blurred = (render_ms_per_triplet(crop, blur) for blur in (0.0, 0.3))
    print(f'rendering {crop}x{crop} triplets (one core): {plain:.1f} ms, with 30% motion blur '
          f'{blurred:.1f} ms', flush=True)
  tf_rate = steps_per_second('film_net.train', args, [])
  print(f'film_net.train (TensorFlow): {tf_rate:.2f} steps/s', flush=True)
  bf16_rate = steps_per_second('film_net.train', args, ['--precision', 'bfloat16'])
  print(f'film_net.train --precision bfloat16: {bf16_rate:.2f} steps/s, '
        f'{bf16_rate / tf_rate:.2f}x float32', flush=True)
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    print('film_net.train_torch: PyTorch is not installed (pip install .[train-gpu])')
    return
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  torch_rate = steps_per_second('film_net.train_torch', args, ['--workers', '1'])
  print(f'film_net.train_torch (PyTorch, {device}): {torch_rate:.2f} steps/s', flush=True)
  print(f'ratio PyTorch / TensorFlow: {torch_rate / tf_rate:.2f}', flush=True)
  torch_bf16 = steps_per_second('film_net.train_torch', args,
                                ['--workers', '1', '--precision', 'bfloat16'])
  print(f'film_net.train_torch --precision bfloat16: {torch_bf16:.2f} steps/s, '
        f'{torch_bf16 / torch_rate:.2f}x its float32')


if __name__ == '__main__':
  main()
