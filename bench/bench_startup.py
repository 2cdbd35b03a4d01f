"""What a process pays before its first mid frame: import, model load, and the first calls that
trace and compile, against the steady time of a call, as the tool runs (`as_it_runs`) and with
one of its start-up measures undone:

* `per_size`: the model traced per frame size (`tf.function(reduce_retracing=True)`) instead of
  once for any size (`interpolator.AnySizeFunction`);
* `with_autograph`: the model's functions converted by AutoGraph (TensorFlow's default), which
  they do not need: their Python loops run over layers, not tensors;
* `saved_model_loaded`: a SavedModel's weights read through `tf.saved_model.load`, which
  restores every saved function, instead of from its checkpoint (`--options
  released_saved_model`).

    python bench/bench_startup.py [--sizes 1024x576,640x384] [--repeats 2] [--options default]
        [--arms as_it_runs,per_size]

Each arm runs in a fresh process per repeat, arms alternating, so all see the same machine:
seconds of import (TensorFlow and film_net), load (`Interpolator.from_path()`: the built-in
model, flip-averaged as it runs; or random weights of the released size, in memory or exported
as a SavedModel), the first call at each size in turn, and a second call at the first size
(steady). Every worker process of a pipeline pays the first calls once per frame size it meets.
Prints one JSON line per process and a summary line per arm.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from machine import machine_line  # pylint: disable=wrong-import-position

_ONE_PROCESS = '''
import json, sys, time
start = time.perf_counter()
import numpy as np
import tensorflow as tf
from film_net import Interpolator, Options, interpolator
imported = time.perf_counter()
arm, sizes, options = sys.argv[1], sys.argv[2].split(','), sys.argv[3]
if arm == 'with_autograph':
  from film_net import warp
  class WithAutograph(interpolator.AnySizeFunction):
    def __init__(self, fn):
      super().__init__(fn)
      self._function = tf.function(fn, reduce_retracing=True)
  interpolator.AnySizeFunction = WithAutograph
  warp._sample_fused = tf.function(warp._sample, jit_compile=True)
  interpolator._fused_mix_by_agreement = tf.function(interpolator.mix_by_agreement,
                                                     jit_compile=True)
if arm == 'saved_model_loaded':
  from film_net import weights
  weights._stored_variables = lambda local_dir: None
if arm == 'per_size':
  class PerSize:
    def __init__(self, fn):
      self._function = tf.function(fn, reduce_retracing=True, autograph=False)
    def __call__(self, *args):
      return self._function(*args)
    def tracing_count(self):
      return self._function.experimental_get_tracing_count()
  interpolator.AnySizeFunction = PerSize
if options == 'released':
  model = Interpolator.random(Options.released(), flip_average=True,
                             flip_weights='agreement_with_average')
else:  # the built-in model, or the path of a SavedModel
  model = Interpolator.from_path(None if options == 'default' else options)
loaded = time.perf_counter()
record = {'arm': arm, 'import_s': imported - start, 'load_s': loaded - imported}
rng = np.random.default_rng(0)
for i, size in enumerate(sizes + sizes[:1]):
  width, height = map(int, size.split('x'))
  small = rng.random((height // 16 + 2, width // 16 + 4, 3), dtype=np.float32)
  frame = np.kron(small, np.ones((16, 16, 1), np.float32))
  x0, x1 = frame[:height, :width], frame[:height, 24:24 + width]
  begin = time.perf_counter()
  model(x0, x1)
  name = f'first_{size}_s' if i < len(sizes) else f'steady_{size}_s'
  record[name] = time.perf_counter() - begin
# Traces of the model's mid-frame function (flip-averaged by agreement, or a plain run).
record['traces'] = (model._mid_and_disagreement.tracing_count() +
                    model._mid.tracing_count())
print(json.dumps(record))
'''


_ARMS = ('as_it_runs', 'per_size', 'with_autograph', 'saved_model_loaded')


def _one_process(arm, sizes, options):
  proc = subprocess.run([sys.executable, '-c', _ONE_PROCESS, arm, sizes, options], cwd=ROOT,
                        capture_output=True, text=True, check=False,
                        env={**os.environ, 'PYTHONPATH': ROOT, 'TF_CPP_MIN_LOG_LEVEL': '2'})
  if proc.returncode:
    raise RuntimeError(proc.stderr[-3000:])
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _export_released_size(path):
  """Random weights of the released size, exported as `film_net.export` writes SavedModels."""
  subprocess.run([sys.executable, '-c', 'import sys; from film_net import Interpolator, Options; '
                  'from film_net.export import export_saved_model; '
                  'export_saved_model(Interpolator.random(Options.released(), seed=0).net.'
                  'released_weights(), Options.released(), sys.argv[1])', path],
                 cwd=ROOT, check=True, env={**os.environ, 'PYTHONPATH': ROOT,
                                            'TF_CPP_MIN_LOG_LEVEL': '2'})


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--sizes', default='1024x576,640x384',
                      help='frame sizes WxH, called in this order (default: %(default)s)')
  parser.add_argument('--repeats', type=int, default=2, help='processes per arm')
  parser.add_argument('--options', choices=('default', 'released', 'released_saved_model'),
                      default='default',
                      help='the built-in model, or random weights of the released size, in '
                           'memory or exported as a SavedModel and loaded from it')
  parser.add_argument('--arms', default='as_it_runs,per_size',
                      help=f'comma-separated, of {", ".join(_ARMS)} (default: %(default)s)')
  args = parser.parse_args(argv)
  arms = args.arms.split(',')
  unknown = set(arms) - set(_ARMS)
  if unknown:
    parser.error(f'--arms: unknown {sorted(unknown)}; choose from {list(_ARMS)}')
  if 'saved_model_loaded' in arms and args.options != 'released_saved_model':
    parser.error('--arms saved_model_loaded needs --options released_saved_model')
  print(machine_line(), flush=True)
  records = {arm: [] for arm in arms}
  with tempfile.TemporaryDirectory() as folder:
    model = args.options
    if model == 'released_saved_model':
      model = os.path.join(folder, 'saved_model')
      _export_released_size(model)
    for _ in range(args.repeats):
      for arm, runs in records.items():
        runs.append(_one_process(arm, args.sizes, model))
        print(json.dumps(runs[-1]), flush=True)
  first, *_ = args.sizes.split(',')
  for arm, runs in records.items():
    until_first = [r['import_s'] + r['load_s'] + r[f'first_{first}_s'] for r in runs]
    first_calls = [sum(v for k, v in r.items() if k.startswith('first_')) for r in runs]
    steady = [r[f'steady_{first}_s'] for r in runs]
    print(json.dumps({'arm': arm, 'until_first_frame_s': min(until_first),
                      'first_calls_s': min(first_calls), 'steady_s': min(steady),
                      'first_calls_over_steady': min(first_calls) / min(steady)}))


if __name__ == '__main__':
  main()
