"""film_net reproduces FILM's reference outputs (film-golden) to float precision."""
import numpy as np
import pytest

from film_net import Interpolator, create_model, keras_inputs
from film_net import weights as weights_lib
from film_net_helpers import GOLDEN_BUNDLES, golden_path

RTOL, ATOL = 1e-4, 1e-5


def _flatten(outputs):
  for key, value in outputs.items():
    if isinstance(value, (list, tuple)):
      for i, level in enumerate(value):
        yield f'{key}/{i}', np.asarray(level)
    else:
      yield key, np.asarray(value)


@pytest.mark.parametrize('bundle', GOLDEN_BUNDLES)
def test_interpolator_from_npz_matches_reference(bundle):
  path = golden_path(bundle)
  data = np.load(path)
  interp = Interpolator.from_path(path, align=None)
  image = interp(data['input/x0'], data['input/x1'])
  np.testing.assert_allclose(image, data['output/image'], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('bundle', GOLDEN_BUNDLES)
def test_create_model_matches_every_reference_output(bundle):
  path = golden_path(bundle)
  data = np.load(path)
  weights, _ = weights_lib.read_npz(path)
  options = weights_lib.infer_options(weights)
  model = create_model(*keras_inputs(), options)
  model.film_net.set_released_weights(weights)
  outputs = model({'x0': data['input/x0'], 'x1': data['input/x1'],
                   'time': np.full((1, 1), 0.5, np.float32)}, training=False)
  flat = dict(_flatten(outputs))
  expected = {k[len('output/'):] for k in data.files if k.startswith('output/')}
  assert set(flat) == expected
  for key in sorted(expected):
    np.testing.assert_allclose(flat[key], data[f'output/{key}'], rtol=RTOL, atol=ATOL,
                               err_msg=key)
  # The big-flow bundle must really exercise edge clamping: flows far beyond the frame.
  if bundle == 'golden_small_bigflow':
    assert np.abs(flat['forward_flow_pyramid/0']).max() > 100


def test_time_input_is_ignored():
  path = golden_path('golden_small_seed1')
  data = np.load(path)
  weights, _ = weights_lib.read_npz(path)
  model = create_model(*keras_inputs(), weights_lib.infer_options(weights))
  model.film_net.set_released_weights(weights)
  inputs = {'x0': data['input/x0'], 'x1': data['input/x1']}
  a = model({**inputs, 'time': np.full((1, 1), 0.1, np.float32)})['image']
  b = model({**inputs, 'time': np.full((1, 1), 0.5, np.float32)})['image']
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
