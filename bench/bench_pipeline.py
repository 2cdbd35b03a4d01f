"""Pipeline speed and memory against the bare model, for the issue's targets.

    python bench/bench_pipeline.py ratio [--size 512 --frames 17 --times 2] [--model_path P]
                                         [--png_compression L]
    python bench/bench_pipeline.py rss [--small 100 --large 1000 --size 128]

ratio: end-to-end frames/s of the local pipeline (in_memory, wall time of `run()`, model load and
       Beam start-up included) over `Interpolator.recursive` frames/s on the same clip in the
       same process, both warm (model loaded and traced: the strict ratio) and cold (first call,
       tracing included, like the pipeline's own first unit). Target >= 0.9.
       It also times the clip as independent pairs (what a RunInference ModelHandler batching
       pair examples would compute) against one recursion over the unit, the measurement behind
       using `Shared` in transforms/interpolate.py.
rss:   peak RSS of `python -m pipeline.run` on a clip of `large` pairs over one of `small` pairs
       (tiny model, N=1; memory must not grow with clip length). Target <= 1.2.
modes: the built-in model on 4 clips of 4 frames (one unit each) run by `python -m
       pipeline.run` as Beam's local modes run it: in_memory (one process, one thread),
       multi_threading (one process, `--workers` threads sharing the model, which runs one call
       at a time; as a Dataflow worker runs, one SDK process) and multi_processing (`--workers`
       processes, each its own model, as Dataflow would with one SDK process per vCPU, which
       pipeline.run turns off): wall time and the peak of the whole process tree's RSS.

    python bench/bench_pipeline.py modes [--size 576 --workers 2]

retime: the built-in model on one 16:9 clip, in one process after a warm-up run: the dense
       sequence (what the README's ffmpeg recipe picks delivery frames from) against retiming in
       the pipeline (`--input_fps 16 --output_fps 24`), at each N: wall time, model calls, frames.

    python bench/bench_pipeline.py retime [--size 288 --frames 9 --times 2,3]

rerun: a nightly re-run of one long local clip of tiny frames with nothing new (every pair
       skipped: discovery, planning, done-marker checks), at each clip length, by `python -m
       pipeline.run` in the checkout `--code` (default this one; a worktree of another commit
       compares).

    python bench/bench_pipeline.py rerun [--frames 5000,20000] [--code DIR]

Without --model_path the built-in model is used, or, before it exists, random weights with the
released options (same compute). Prints one JSON line per measurement.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # pylint: disable=wrong-import-position
from PIL import Image  # pylint: disable=wrong-import-position

from machine import machine_line  # pylint: disable=wrong-import-position
from pipeline import sample_footage  # pylint: disable=wrong-import-position
from transforms import images  # pylint: disable=wrong-import-position


def _model_path(args, workdir, tiny=False):
  from film_net import DEFAULT_MODEL, Interpolator, Options  # pylint: disable=import-outside-toplevel
  if not tiny and args.model_path:  # (rss and rerun take no --model_path)
    return args.model_path, args.model_path
  if os.path.exists(DEFAULT_MODEL) and not tiny:
    return None, 'built-in'
  path = os.path.join(workdir, 'tiny.npz' if tiny else 'released_random.npz')
  Interpolator.random(options=Options.tiny() if tiny else Options.released(), seed=0).save(path)
  return path, 'random ' + ('tiny' if tiny else 'released') + ' options'


def ratio(args):
  from film_net import Interpolator  # pylint: disable=import-outside-toplevel
  from pipeline import run as run_module  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as work:
    model_path, model_name = _model_path(args, work)
    frames = sample_footage.render_frames(args.frames, args.size, args.size, seed=0)
    sample_footage.write_clip(os.path.join(work, 'in', 'clip'), frames)
    n_out = (args.frames - 1) * 2 ** args.times + 1

    t = time.perf_counter()
    run_module.run([f'--input={work}/in', f'--output={work}/out', f'--times_to_interpolate='
                    f'{args.times}', '--run_id=bench', '--progress_interval=10',
                    f'--png_compression={args.png_compression}']
                   + ([f'--model_path={model_path}'] if model_path else []))
    pipeline_s = time.perf_counter() - t
    written = len(os.listdir(os.path.join(work, 'out', 'clip')))
    assert written == n_out, (written, n_out)

    model = Interpolator.from_path(model_path)
    floats = [f.astype(np.float32) / 255 for f in frames]
    t = time.perf_counter()
    model.recursive(floats, args.times)  # Cold: includes tracing the graphs for this size.
    cold_s = time.perf_counter() - t
    t = time.perf_counter()
    model.recursive(floats, args.times)
    model_s = time.perf_counter() - t
    result = {
        'bench': 'ratio', 'model': model_name, 'size': args.size, 'frames_in': args.frames,
        'times_to_interpolate': args.times, 'frames_out': n_out,
        'png_compression': args.png_compression,
        'pipeline_seconds': round(pipeline_s, 2), 'recursive_warm_seconds': round(model_s, 2),
        'recursive_cold_seconds': round(cold_s, 2),
        'pipeline_fps': round(n_out / pipeline_s, 3), 'recursive_fps': round(n_out / model_s, 3),
        'ratio_vs_warm': round(model_s / pipeline_s, 3),
        'ratio_vs_cold': round(cold_s / pipeline_s, 3),
    }
    if args.per_pair:
      t = time.perf_counter()
      for i in range(len(floats) - 1):
        model.recursive(floats[i:i + 2], args.times)
      per_pair_s = time.perf_counter() - t
      result['per_pair_seconds'] = round(per_pair_s, 2)
      result['unit_recursion_speedup_over_per_pair'] = round(per_pair_s / model_s, 3)
    print(json.dumps(result), flush=True)
    return result


def _peak_rss_mb(argv):
  """Peak RSS (MB) of a fresh `python -m pipeline.run` process."""
  code = ('import resource, sys, runpy; sys.argv = ["pipeline.run"] + sys.argv[1:]\n'
          'try:\n  runpy.run_module("pipeline.run", run_name="__main__")\n'
          'except SystemExit: pass\n'
          'print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)')
  proc = subprocess.run([sys.executable, '-c', code, *argv], cwd=ROOT, capture_output=True,
                        text=True, check=False)
  lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('MAXRSS')]
  if not lines:
    raise RuntimeError(proc.stderr[-2000:])
  return int(lines[-1].split()[1]) / 1024


def rss(args):
  with tempfile.TemporaryDirectory() as work:
    model_path, model_name = _model_path(args, work, tiny=True)
    result = {'bench': 'rss', 'model': model_name, 'size': args.size}
    for pairs in (args.small, args.large):
      folder = os.path.join(work, f'in{pairs}', 'clip')
      sample_footage.write_clip(folder, sample_footage.render_frames(
          pairs + 1, args.size, args.size, seed=1, speed=0.5))
      t = time.perf_counter()
      result[f'peak_rss_mb_{pairs}_pairs'] = round(_peak_rss_mb([
          f'--input={os.path.dirname(folder)}', f'--output={work}/out{pairs}',
          f'--model_path={model_path}', '--times_to_interpolate=1', '--progress_interval=10']), 1)
      result[f'seconds_{pairs}_pairs'] = round(time.perf_counter() - t, 1)
      assert len(os.listdir(os.path.join(work, f'out{pairs}', 'clip'))) == 2 * pairs + 1
    result['rss_ratio'] = round(result[f'peak_rss_mb_{args.large}_pairs'] /
                                result[f'peak_rss_mb_{args.small}_pairs'], 3)
    print(json.dumps(result), flush=True)
    return result


def _tree_rss_mb(root):
  """RSS (MB) of process `root` and all its descendants, from /proc."""
  parents, rss_kb = {}, {}
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/status') as f:
        fields = dict(line.split(':', 1) for line in f if ':' in line)
      parents[int(entry)] = int(fields['PPid'])
      rss_kb[int(entry)] = int(fields.get('VmRSS', '0 kB').split()[0])
    except (OSError, KeyError, ValueError):
      continue
  tree, grew = {root}, True
  while grew:
    more = {pid for pid, parent in parents.items() if parent in tree} - tree
    tree |= more
    grew = bool(more)
  return sum(rss_kb.get(pid, 0) for pid in tree) / 1024


def modes(args):
  with tempfile.TemporaryDirectory() as work:
    width = args.size * 16 // 9
    for c in range(4):
      sample_footage.write_clip(os.path.join(work, 'in', f'clip{c}'), sample_footage.render_frames(
          4, width, args.size, seed=10 + c, speed=2.0))
    for mode in args.modes.split(','):
      argv = [sys.executable, '-m', 'pipeline.run', f'--input={work}/in',
              f'--output={work}/out_{mode}', '--times_to_interpolate=1', '--pairs_per_unit=3',
              f'--direct_running_mode={mode}', '--progress_interval=10']
      if mode != 'in_memory':
        argv.append(f'--direct_num_workers={args.workers}')
      t, peak = time.perf_counter(), 0.0
      proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
      while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(0.2)
      out = proc.stdout.read()
      if proc.returncode:
        raise RuntimeError(out[-2000:])
      frames = len(os.listdir(os.path.join(work, f'out_{mode}', 'clip0')))
      print(json.dumps({'bench': 'modes', 'mode': mode, 'workers': args.workers,
                        'size': f'{width}x{args.size}', 'seconds': round(time.perf_counter() - t, 1),
                        'peak_tree_rss_mb': round(peak), 'frames_per_clip': frames}), flush=True)


def retime(args):
  from pipeline import run as run_module  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as work:
    width = args.size * 16 // 9
    sample_footage.write_clip(os.path.join(work, 'in', 'clip'), sample_footage.render_frames(
        args.frames, width, args.size, seed=3, speed=2.0))

    def job(name, *flags):
      t = time.perf_counter()
      run_module.run([f'--input={work}/in', f'--output={work}/{name}', f'--run_id={name}',
                      '--progress_interval=10', *flags])
      seconds = time.perf_counter() - t
      summary = run_module.read_summary(f'{work}/{name}', name)
      return {'seconds': round(seconds, 2), 'model_calls': summary['model_calls'],
              'frames': summary['frames_written']}

    job('warmup', '--times_to_interpolate=1')  # model load and tracing for this size
    for n in (int(v) for v in args.times.split(',')):
      dense = job(f'dense{n}', f'--times_to_interpolate={n}')
      retimed = job(f'retimed{n}', f'--times_to_interpolate={n}', '--input_fps=16',
                    '--output_fps=24')
      print(json.dumps({'bench': 'retime', 'size': f'{width}x{args.size}',
                        'pairs': args.frames - 1, 'times_to_interpolate': n, 'dense': dense,
                        'retimed_16_to_24': retimed,
                        'time_ratio': round(retimed['seconds'] / dense['seconds'], 3)}),
            flush=True)


def rerun(args):
  """A nightly re-run of long local clips with nothing new: every pair skipped, what remains is
  discovery, planning and the done-marker checks, timed at each clip length (a cost per pair
  that grows with the length is a quadratic left in them)."""
  with tempfile.TemporaryDirectory() as work:
    model_path, model_name = _model_path(args, work, tiny=True)
    rng = np.random.default_rng(0)
    for frames in (int(v) for v in args.frames.split(',')):
      folder = os.path.join(work, f'in{frames}', 'clip')
      os.makedirs(folder)
      for i in range(frames):  # tiny frames: the time is the bookkeeping's, not the pixels'
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(
            os.path.join(folder, f'f{i:06d}.png'), compress_level=0)
      result = {'bench': 'rerun', 'model': model_name, 'frames': frames, 'code': args.code}
      for arm in ('first', 'rerun'):
        argv = [sys.executable, '-m', 'pipeline.run', f'--input={os.path.dirname(folder)}',
                f'--output={work}/out{frames}', f'--model_path={model_path}',
                '--times_to_interpolate=0', '--progress_interval=10', f'--run_id={arm}']
        t = time.perf_counter()
        done = subprocess.run(argv, cwd=args.code, capture_output=True, text=True)
        if done.returncode:
          raise RuntimeError(done.stderr[-2000:])
        result[f'{arm}_seconds'] = round(time.perf_counter() - t, 1)
      result['rerun_ms_per_pair'] = round(result['rerun_seconds'] * 1000 / (frames - 1), 2)
      print(json.dumps(result), flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='bench', required=True)
  p = sub.add_parser('ratio')
  p.add_argument('--size', type=int, default=512)
  p.add_argument('--frames', type=int, default=17)
  p.add_argument('--times', type=int, default=2)
  p.add_argument('--model_path', default=None)
  p.add_argument('--no_per_pair', dest='per_pair', action='store_false')
  p.add_argument('--png_compression', type=int, default=images.DEFAULT_PNG_COMPRESSION)
  p = sub.add_parser('rss')
  p.add_argument('--small', type=int, default=100)
  p.add_argument('--large', type=int, default=1000)
  p.add_argument('--size', type=int, default=128)
  p = sub.add_parser('modes')
  p.add_argument('--size', type=int, default=576, help='frame height (16:9)')
  p.add_argument('--workers', type=int, default=2)
  p.add_argument('--modes', default='in_memory,multi_threading,multi_processing')
  p = sub.add_parser('retime')
  p.add_argument('--size', type=int, default=288, help='frame height (16:9)')
  p.add_argument('--frames', type=int, default=9)
  p.add_argument('--times', default='2,3', help='the N to compare, comma-separated')
  p = sub.add_parser('rerun')  # (a tiny random model runs: nothing is interpolated)
  p.add_argument('--frames', default='5000,20000', help='clip lengths, comma-separated')
  p.add_argument('--code', default=ROOT, help='the checkout whose pipeline runs (a worktree of '
                                              'another commit, to compare)')
  args = parser.parse_args()
  print(f'machine: {machine_line()}', flush=True)
  {'ratio': ratio, 'rss': rss, 'modes': modes, 'retime': retime, 'rerun': rerun}[args.bench](args)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  main()
