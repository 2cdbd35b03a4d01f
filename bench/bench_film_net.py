"""film_net inference speed at released widths (random weights: same cost as trained ones).

    .venv/bin/python bench/bench_film_net.py [--sizes 256x256,512x512,1280x720,1920x1080]

Each frame size runs in its own process, so the peak RSS printed is that size's own. Every
process first measures the FP32 rate of a 4096x4096 matmul and reports the model's achieved
GFLOP/s as a fraction of it: a ratio taken in one run on one machine, robust to a shared and
noisy machine in a way raw seconds are not. The recursion part times a 9-frame clip at
times_to_interpolate=3 with and without feature reuse, in one process. `--compare compact`
also times the built-in model's architecture at 1920x1080 and prints its time as a fraction of
the released size's (the default model's speed target: at most 0.25). Modes after `+` in an
options name: `+flip` times the model with `flip_average` (each pair also run transposed),
`+agree` that with the runs mixed by agreement (`flip_weights='agreement'`), `+avg` with the
inputs' mean as a third candidate in that mix (`'agreement_with_average'`, as the built-in
model runs), `+ops_warp` with the warp as plain TensorFlow ops instead of the XLA-fused one
that CPU-only hosts use by default, `+bf16` with `precision='bfloat16'`, e.g. `--compare
compact --compare compact+flip --compare compact+flip+agree+avg --compare compact+ops_warp
--compare compact+flip+bf16`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import machine_line  # pylint: disable=wrong-import-position


def matmul_gflops(n: int = 4096, repeats: int = 5) -> float:
  import tensorflow as tf
  a = tf.random.uniform([n, n])
  b = tf.random.uniform([n, n])
  tf.linalg.matmul(a, b).numpy()
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    tf.linalg.matmul(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best / 1e9


def best_of(fn, repeats: int) -> float:
  """Best wall time of `repeats` calls of `fn`, after one call to trace and warm it up."""
  fn()  # trace and warm up
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def random_interpolator(options_name: str):
  """An Interpolator of random weights for an options name with its `+` modes (module doc)."""
  from film_net import Interpolator, Options
  from film_net import warp
  from film_net.model import FilmNet

  name, *modes = options_name.split('+')
  unknown = set(modes) - {'flip', 'agree', 'avg', 'ops_warp', 'bf16'}
  if unknown:
    raise ValueError(f'unknown modes {sorted(unknown)} in {options_name!r}')
  precision = 'bfloat16' if 'bf16' in modes else 'float32'
  return Interpolator(
      FilmNet(Options.parse(name), seed=0, name='film_net', precision=precision), align=64,
      flip_average='flip' in modes,
      flip_weights=('equal' if 'agree' not in modes else
                    'agreement_with_average' if 'avg' in modes else 'agreement'),
      warp_fn=warp.warp if 'ops_warp' in modes else None)


def one_size(width: int, height: int, repeats: int, options_name: str) -> dict:
  import numpy as np
  import flops

  interp = random_interpolator(options_name)
  options = interp.options
  rng = np.random.default_rng(0)
  x0, x1 = (rng.random((1, height, width, 3), np.float32) for _ in range(2))
  # Matmul before and after the model; the better one is the machine's rate in this run.
  rate = matmul_gflops()
  seconds = best_of(lambda: interp(x0, x1), repeats)
  rate = max(rate, matmul_gflops())
  top, left = (64 - height % 64) % 64, (64 - width % 64) % 64
  runs = 2 if interp.flip_average else 1
  gflop = runs * flops.mid_frame_flops(options, height + top, width + left) / 1e9
  return {'size': f'{width}x{height}', 'seconds_per_frame': round(seconds, 3),
          'gflop_per_frame': round(gflop, 1), 'gflops': round(gflop / seconds, 1),
          'matmul_gflops': round(rate, 1), 'efficiency': round(gflop / seconds / rate, 3),
          'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def recursion(width: int, height: int, options_name: str) -> dict:
  """Seconds per output frame for a 9-frame clip at n=3, with and without feature reuse."""
  import numpy as np

  interp = random_interpolator(options_name)
  frames = list(np.random.default_rng(1).random((9, height, width, 3), np.float32))
  interp(frames[0][None], frames[1][None])  # trace both ways, so neither timing pays for it
  interp.recursive(frames[:2], 1)

  def naive():
    out = [frames[0]]
    def rec(a, b, depth):
      if depth == 0:
        return []
      mid = interp(a[None], b[None])[0]
      return rec(a, mid, depth - 1) + [mid] + rec(mid, b, depth - 1)
    for a, b in zip(frames, frames[1:]):
      out += rec(a, b, 3) + [b]
    return out

  start = time.perf_counter()
  reused = interp.recursive(frames, 3)
  t_reuse = time.perf_counter() - start
  start = time.perf_counter()
  plain = naive()
  t_naive = time.perf_counter() - start
  assert len(reused) == len(plain) == 65
  return {'clip': f'9 frames {width}x{height}, times_to_interpolate=3',
          'seconds_per_output_frame_reuse': round(t_reuse / 65, 3),
          'seconds_per_output_frame_naive': round(t_naive / 65, 3),
          'speedup': round(t_naive / t_reuse, 3)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='256x256,512x512,1280x720,1920x1080')
  parser.add_argument('--options', default='released')
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--recursion_size', default='256x256', help="'' to skip")
  parser.add_argument('--compare', action='append', default=None,
                      help="options (preset or JSON) timed at 1920x1080 against --options; "
                           "repeat to time several; '' to skip (default: compact)")
  parser.add_argument('--_one', default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._one:
    kind, size = args._one.split(':')
    w, h = (int(v) for v in size.split('x'))
    result = (one_size(w, h, args.repeats, args.options) if kind == 'size'
              else recursion(w, h, args.options))
    print('RESULT ' + json.dumps(result))
    return

  print(f'machine: {machine_line()}; options={args.options}')
  jobs = [f'size:{s}' for s in args.sizes.split(',') if s]
  if args.recursion_size:
    jobs.append(f'recursion:{args.recursion_size}')
  compare = [c for c in (args.compare or ['compact']) if c]
  if compare and 'size:1920x1080' not in jobs:  # (each comparison is a ratio to it)
    jobs.append('size:1920x1080')
  jobs = [(job, args.options) for job in jobs]
  jobs += [('size:1920x1080', c) for c in compare]
  results = {}
  for job, options in jobs:
    out = subprocess.run([sys.executable, __file__, '--_one', job, '--options', options,
                          '--repeats', str(args.repeats)], capture_output=True, text=True)
    lines = [l for l in out.stdout.splitlines() if l.startswith('RESULT ')]
    if not lines:
      print(f'{job} ({options}): failed\n{out.stderr[-2000:]}')
      continue
    results[(job, options)] = result = json.loads(lines[-1][7:])
    print(json.dumps({'options': options, **result}), flush=True)
  full = results.get(('size:1920x1080', args.options))
  for other in compare:
    small = results.get(('size:1920x1080', other))
    if full and small:
      print(json.dumps({'1920x1080 seconds': {args.options: full['seconds_per_frame'],
                                              other: small['seconds_per_frame']},
                        'time_ratio': round(small['seconds_per_frame'] /
                                            full['seconds_per_frame'], 3)}), flush=True)


if __name__ == '__main__':
  main()
