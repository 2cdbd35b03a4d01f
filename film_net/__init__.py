"""film_net: FILM (Frame Interpolation for Large Motion) in TensorFlow 2 / Keras 3.

    from film_net import Options, Interpolator
    interp = Interpolator.from_path(path=None, options=None, align=64, engine='native')
    mid = interp(x0, x1)                                    # (B,H,W,3) float32 in [0,1]
    frames = interp.recursive(frames, times_to_interpolate=n)

TensorFlow loads on first use of a model name, so the framework-free parts (options, specs,
weight files, the renderer, training batches) import on machines without it, such as the GPU
trainer's (`film_net.train_torch`).
"""
import importlib
import os

# TensorFlow's default CPU allocator hands large buffers back to the OS and faults them in again
# on the next op: at 1080p on 2-core VMs a quarter of the model's CPU time went to page faults.
# Its BFC allocator keeps and reuses them (built-in model 1.4-1.7x faster there; see
# docs/benchmarks.md). TensorFlow reads the variable at its first tensor allocation, so this holds
# unless an op ran before film_net was imported; set it to false to keep TensorFlow's default.
os.environ.setdefault('TF_CPU_ALLOCATOR_USE_BFC', 'true')
# TensorFlow's C++ INFO lines (CPU features it was not built for) would precede every command
# line's one-line errors and progress; warnings and errors still show. Set it to 0 to see them.
# It does not reach the notices TensorFlow 2.21's libraries print while they load (absl's "All
# log messages before absl::InitializeLog()" and oneDNN's, four lines): taking those out of
# stderr meant holding all of stderr back meanwhile, which lost a crash's last words.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

from film_net.options import Options
from film_net.weights import DEFAULT_MODEL

_LAZY = {'FilmNet': 'film_net.model', 'create_model': 'film_net.model',
         'keras_inputs': 'film_net.model', 'Interpolator': 'film_net.interpolator'}

__all__ = ['Options', 'DEFAULT_MODEL', *_LAZY]


def __getattr__(name):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
