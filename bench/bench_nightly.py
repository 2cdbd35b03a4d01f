"""What a nightly run costs on cloud storage: requests per pair, against the GCS emulator.

    python bench/bench_nightly.py [--clips 16 --frames 17 --pairs_per_unit 16]

An archive of `clips` clips of `frames` tiny frames (32x32, a tiny random model, N=1: the model
costs nothing here) is put in a loopback GCS (`gcp-storage-emulator`, tests/gcs_server.py), then
run three times: the first run makes everything, the second finds nothing new (what most nightly
runs over a large archive do), the third finds one clip re-scanned (its frames uploaded again).
For each run: wall time of `run()` and the storage requests it made, by kind, from the
emulator's request log. Requests, not seconds, are what scale with an archive: at real GCS
latency (tens of ms each) and per-request price, a request per skipped pair is hours of
worker time a night over a million pairs. Prints one JSON line per run.
"""

import argparse
import collections
import io
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tests'))

import numpy as np  # pylint: disable=wrong-import-position
from PIL import Image  # pylint: disable=wrong-import-position

import gcs_server  # pylint: disable=wrong-import-position
from machine import machine_line  # pylint: disable=wrong-import-position

BUCKET = 'nightly'


def upload_clip(bucket, clip, frames, seed):
  rng = np.random.default_rng(seed)
  for i in range(frames):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format='PNG')
    bucket.blob(f'in/{clip}/f{i:04d}.png').upload_from_string(buf.getvalue())


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--clips', type=int, default=16)
  parser.add_argument('--frames', type=int, default=17)
  parser.add_argument('--pairs_per_unit', type=int, default=16)
  args = parser.parse_args()
  print(machine_line(), flush=True)
  with tempfile.TemporaryDirectory(prefix='bench-nightly-') as workdir:
    run_nightly_three_times(args, workdir)


def run_nightly_three_times(args, workdir):
  log_path = os.path.join(workdir, 'emulator.log')
  with gcs_server.local_gcs(BUCKET, log_path) as server:
    bucket = server.bucket
    from film_net import Interpolator, Options  # pylint: disable=import-outside-toplevel
    from pipeline import run as run_module  # pylint: disable=import-outside-toplevel
    model_path = os.path.join(workdir, 'tiny.npz')
    Interpolator.random(options=Options.tiny(), seed=0).save(model_path)
    for c in range(args.clips):
      upload_clip(bucket, f'clip{c:03d}', args.frames, seed=c)
    pairs = args.clips * (args.frames - 1)
    offset = server.requests.end()
    for name in ('first', 'nothing_new', 'one_clip_rescanned'):
      if name == 'one_clip_rescanned':
        upload_clip(bucket, 'clip000', args.frames, seed=1000)
        offset = server.requests.end()
      run_id = f'bench-{name}'
      t = time.perf_counter()
      status = run_module.main([
          f'--input=gs://{BUCKET}/in', f'--output=gs://{BUCKET}/out', f'--run_id={run_id}',
          f'--model_path={model_path}', '--times_to_interpolate=1',
          f'--pairs_per_unit={args.pairs_per_unit}', '--progress_interval=10'])
      seconds = time.perf_counter() - t
      time.sleep(0.5)  # the client's background requests, if any, are logged too
      kinds = collections.Counter(r.kind for r in server.requests.since(offset))
      offset = server.requests.end()
      summary = json.loads(bucket.blob(f'out/_runs/{run_id}/summary.json').download_as_bytes())
      total = sum(kinds.values())
      print(json.dumps({
          'run': name, 'status': status, 'pairs': pairs, 'pairs_ok': summary['pairs']['ok'],
          'pairs_skipped': summary['pairs']['skipped'], 'seconds': round(seconds, 2),
          'requests': total, 'requests_per_pair': round(total / pairs, 3),
          'by_kind': dict(sorted(kinds.items()))}), flush=True)


if __name__ == '__main__':
  main()
