"""film_net as a Keras layer, and `create_model` with the released inputs and outputs."""
from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from film_net import layers
from film_net import specs
from film_net.options import Options
from film_net.warp import warp

_log = logging.getLogger(__name__)


def _variable_name(released_name: str, part: str) -> str:
  # Keras 3 weight names may not contain '/'.
  return released_name.replace('/', '.') + '.' + part


class FilmNet(keras.layers.Layer):
  """All film_net weights, keyed by released name, and the forward pass over them.

  `features` and `interpolate_from_features` expose the split that lets recursion compute
  each frame's feature pyramid once.
  """

  def __init__(self, options: Options, seed: int | None = None, precision: str = 'float32',
               **kwargs):
    super().__init__(**kwargs)
    self._bfloat16 = specs.bfloat16_convs(options, precision)
    if precision == 'bfloat16' and not bfloat16_is_native():
      _log.warning('precision bfloat16: this machine has no bfloat16 arithmetic (CPU without '
                   'AVX512_BF16 or AMX, GPU before compute capability 8.0), so it is emulated '
                   'and likely slower than float32')
    self.options = options
    self.precision = precision
    self.specs = specs.conv_specs(options)
    self.kernels, self.biases = {}, {}
    initializer = keras.initializers.GlorotUniform(seed=seed)
    for spec in self.specs:
      self.kernels[spec.name] = self.add_weight(
          name=_variable_name(spec.name, 'kernel'), shape=spec.kernel_shape,
          initializer=initializer)
      self.biases[spec.name] = self.add_weight(
          name=_variable_name(spec.name, 'bias'), shape=(spec.out_channels,),
          initializer='zeros')
    self._spec_by_name = {s.name: s for s in self.specs}

  def conv(self, name: str, x: tf.Tensor) -> tf.Tensor:
    return layers.apply_conv(self._spec_by_name[name], self.kernels[name], self.biases[name], x,
                             'bfloat16' if name in self._bfloat16 else 'float32')

  def features(self, image: tf.Tensor):
    return layers.frame_features(self.conv, self.options, image)

  def interpolate_from_features(self, pyr0, feat0, pyr1, feat1, aux_outputs=False,
                                warp_fn: layers.Warp = warp) -> dict:
    return layers.interpolate_from_features(self.conv, self.options, pyr0, feat0, pyr1, feat1,
                                            aux_outputs=aux_outputs, warp_fn=warp_fn)

  def call(self, inputs: dict, training=False) -> dict:
    del training  # No dropout or normalisation: training and inference are the same graph.
    pyr0, feat0 = self.features(inputs['x0'])
    pyr1, feat1 = self.features(inputs['x1'])
    return self.interpolate_from_features(pyr0, feat0, pyr1, feat1,
                                          aux_outputs=self.options.use_aux_outputs)

  def compute_output_spec(self, inputs, training=False):
    image = inputs['x0']
    batch = image.shape[0]

    def spec(channels, level):
      h, w = image.shape[1], image.shape[2]
      if h is not None:
        h, w = h // 2 ** level, w // 2 ** level
      return keras.KerasTensor((batch, h, w, channels), dtype='float32')

    out = {'image': spec(3, 0)}
    if self.options.use_aux_outputs:
      levels, fusion = self.options.pyramid_levels, self.options.fusion_pyramid_levels
      out.update({
          'x0_warped': spec(3, 0), 'x1_warped': spec(3, 0),
          'forward_residual_flow_pyramid': [spec(2, i) for i in range(levels)],
          'backward_residual_flow_pyramid': [spec(2, i) for i in range(levels)],
          'forward_flow_pyramid': [spec(2, i) for i in range(fusion)],
          'backward_flow_pyramid': [spec(2, i) for i in range(fusion)],
      })
    return out

  # -- weights by released name --------------------------------------------------------------

  def released_variables(self) -> dict[str, tf.Variable]:
    """{'feat_net/sub_extractor/cfeat_conv_0/kernel': variable, ...} in creation order."""
    out = {}
    for spec in self.specs:
      out[f'{spec.name}/kernel'] = self.kernels[spec.name]
      out[f'{spec.name}/bias'] = self.biases[spec.name]
    return out

  def released_weights(self) -> dict[str, np.ndarray]:
    """The values of `released_variables()`."""
    return {name: v.numpy() for name, v in self.released_variables().items()}

  def set_released_weights(self, weights: dict[str, np.ndarray]) -> None:
    """Assigns every variable from a released-name dict; names and shapes must all match."""
    expected = {f'{s.name}/{p}' for s in self.specs for p in ('kernel', 'bias')}
    missing, extra = expected - set(weights), set(weights) - expected
    if missing or extra:
      raise ValueError(f'weights do not fit options {self.options}: missing {sorted(missing)[:5]}'
                       f'{"..." if len(missing) > 5 else ""}, unexpected {sorted(extra)[:5]}'
                       f'{"..." if len(extra) > 5 else ""}')
    for spec in self.specs:
      for part, var in (('kernel', self.kernels[spec.name]), ('bias', self.biases[spec.name])):
        value = np.asarray(weights[f'{spec.name}/{part}'], dtype=np.float32)
        if tuple(value.shape) != tuple(var.shape):
          raise ValueError(f'{spec.name}/{part}: shape {value.shape} does not fit options '
                           f'(expected {tuple(var.shape)})')
        var.assign(value)


def bfloat16_is_native() -> bool:
  """Whether the device TensorFlow computes on multiplies bfloat16 in hardware: the first GPU
  from compute capability 8.0 (Ampere) on, else a CPU with AVX512_BF16 or AMX (read from
  /proc/cpuinfo; elsewhere assumed so, as nothing can tell)."""
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    capability = tf.config.experimental.get_device_details(gpus[0]).get('compute_capability')
    return bool(capability) and capability >= (8, 0)
  return specs.cpu_multiplies_bfloat16()


def create_model(x0, x1, time, config: Options, seed: int | None = None) -> keras.Model:
  """A Keras model taking {'x0', 'x1', 'time'} and returning FILM's output dict.

  As in FILM, `time` only gives the batch size: film_net always predicts t = 0.5.
  Raises ValueError if config.pyramid_levels < config.fusion_pyramid_levels.
  """
  config.validate()
  net = FilmNet(config, seed=seed, name='film_net')
  outputs = net({'x0': x0, 'x1': x1, 'time': time})
  model = keras.Model(inputs={'x0': x0, 'x1': x1, 'time': time}, outputs=outputs)
  model.film_net = net
  return model


def keras_inputs():
  """The released model's Keras inputs: any frame size, RGB, and a (B, 1) time."""
  return (keras.Input(shape=(None, None, 3), name='x0'),
          keras.Input(shape=(None, None, 3), name='x1'),
          keras.Input(shape=(1,), name='time'))
