"""film_net: FILM (Frame Interpolation for Large Motion) in TensorFlow 2 / Keras 3.

    from film_net import Options, Interpolator
    interp = Interpolator.from_path(path=None, options=None, align=64, engine='native')
    mid = interp(x0, x1)                                    # (B,H,W,3) float32 in [0,1]
    frames = interp.recursive(frames, times_to_interpolate=n)
"""
from film_net.options import Options
from film_net.model import FilmNet, create_model, keras_inputs
from film_net.interpolator import DEFAULT_MODEL, Interpolator

__all__ = ['Options', 'Interpolator', 'FilmNet', 'create_model', 'keras_inputs', 'DEFAULT_MODEL']
