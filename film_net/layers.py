"""The film_net architecture as plain functions over a `conv(name, x)` callable.

Conventions (FILM's, stated once here): tensors are NHWC float32; images are RGB in [0, 1],
gamma space; pyramids are python lists ordered finest level first, level i at H / 2**i.

Every convolution of the model is listed by `conv_specs`, under the variable name it has in the
released checkpoints and in creation order. That table is the single source of truth for
shapes, activations and weight names; the Keras layer, the exporter and the weight loaders all
read it, and the forward functions below only ever refer to convolutions by those names.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow as tf

from film_net.options import Options
from film_net.warp import warp

Conv = Callable[[str, tf.Tensor], tf.Tensor]

LEAKY = 'leaky_relu'
LINEAR = 'linear'


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  name: str                  # released variable scope, e.g. 'fusion/conv2d_3'
  kernel_size: int
  in_channels: int
  out_channels: int
  activation: str

  @property
  def kernel_shape(self) -> tuple[int, int, int, int]:
    return (self.kernel_size, self.kernel_size, self.in_channels, self.out_channels)


def feature_channels(options: Options, level: int) -> int:
  """Channels of the cascaded feature at a pyramid level."""
  return sum(options.filters << j for j in range(min(level + 1, options.sub_levels)))


def fusion_filters(options: Options, level: int) -> int:
  return options.filters << min(level, options.specialized_levels)


def _predictor_name(options: Options, level: int) -> str:
  if level < options.specialized_levels:
    return f'predict_flow/flow_predictor_{level}'
  return 'predict_flow/flow_predictor_shared'


def fusion_conv_names(options: Options) -> list[str]:
  """Fusion convs are unnamed in FILM's code, so Keras numbered them in creation order."""
  count = 3 * (options.fusion_pyramid_levels - 1) + 1
  return ['fusion/conv2d' if i == 0 else f'fusion/conv2d_{i}' for i in range(count)]


def conv_specs(options: Options) -> list[ConvSpec]:
  """All convolutions of the model, released names, in creation order."""
  specs = []
  in_ch = 3
  for i in range(options.sub_levels):
    for k in (2 * i, 2 * i + 1):
      out = options.filters << i
      specs.append(ConvSpec(f'feat_net/sub_extractor/cfeat_conv_{k}', 3, in_ch, out, LEAKY))
      in_ch = out

  predictor_levels = list(range(options.specialized_levels)) + ['shared']
  for idx, level in enumerate(predictor_levels):
    scope = f'predict_flow/flow_predictor_{level}'
    # The shared predictor runs on levels >= specialized_levels, whose features have the
    # cascade's full channel count.
    feat_level = level if level != 'shared' else options.specialized_levels
    in_ch = 2 * feature_channels(options, feat_level)
    n_convs, n_filters = options.flow_convs[idx], options.flow_filters[idx]
    for j in range(n_convs):
      specs.append(ConvSpec(f'{scope}/conv_{j}', 3, in_ch, n_filters, LEAKY))
      in_ch = n_filters
    specs.append(ConvSpec(f'{scope}/conv_{n_convs}', 1, in_ch, n_filters // 2, LEAKY))
    specs.append(ConvSpec(f'{scope}/conv_{n_convs + 1}', 1, n_filters // 2, 2, LINEAR))

  names = iter(fusion_conv_names(options))
  levels = options.fusion_pyramid_levels
  aligned = [2 * (3 + feature_channels(options, i)) + 4 for i in range(levels)]
  for i in range(levels - 1):
    nf = fusion_filters(options, i)
    coarser = aligned[levels - 1] if i == levels - 2 else fusion_filters(options, i + 1)
    specs.append(ConvSpec(next(names), 2, coarser, nf, LINEAR))
    specs.append(ConvSpec(next(names), 3, aligned[i] + nf, nf, LEAKY))
    specs.append(ConvSpec(next(names), 3, nf, nf, LEAKY))
  final_in = fusion_filters(options, 0) if levels > 1 else aligned[0]
  specs.append(ConvSpec(next(names), 1, final_in, 3, LINEAR))
  return specs


def apply_conv(spec: ConvSpec, kernel, bias, x: tf.Tensor) -> tf.Tensor:
  """Keras 2 Conv2D: stride 1, 'same' padding (extra row/col bottom-right), bias, activation."""
  y = tf.nn.conv2d(x, kernel, strides=1, padding='SAME') + bias
  return tf.nn.leaky_relu(y, alpha=0.2) if spec.activation == LEAKY else y


# ----------------------------------------------------------------------------------------------
# Pyramids

def image_pyramid(image: tf.Tensor, levels: int) -> list[tf.Tensor]:
  pyramid = [image]
  for _ in range(levels - 1):
    image = tf.nn.avg_pool2d(image, ksize=2, strides=2, padding='VALID')
    pyramid.append(image)
  return pyramid


def _size(x: tf.Tensor) -> tf.Tensor:
  return tf.shape(x)[1:3]


def upsample_flow(flow: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
  """Doubles the flow's magnitude and resizes it (bilinear, half-pixel) to `like`'s size."""
  return tf.image.resize(2 * flow, _size(like), method=tf.image.ResizeMethod.BILINEAR)


# ----------------------------------------------------------------------------------------------
# Feature extractor (scope feat_net)

def _sub_tree(conv: Conv, image: tf.Tensor, depth: int) -> list[tf.Tensor]:
  features = []
  x = image
  for i in range(depth):
    x = conv(f'feat_net/sub_extractor/cfeat_conv_{2 * i}', x)
    x = conv(f'feat_net/sub_extractor/cfeat_conv_{2 * i + 1}', x)
    features.append(x)
    if i < depth - 1:
      x = tf.nn.avg_pool2d(x, ksize=2, strides=2, padding='VALID')
  return features


def extract_features(conv: Conv, pyramid: list[tf.Tensor], options: Options) -> list[tf.Tensor]:
  """Cascaded features: level i joins subtree i's own level with older subtrees' deeper ones."""
  levels = len(pyramid)
  subtrees = [_sub_tree(conv, pyramid[i], min(levels - i, options.sub_levels))
              for i in range(levels)]
  features = []
  for i in range(levels):
    parts = [subtrees[i - j][j] for j in range(options.sub_levels) if j <= i]
    features.append(parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1))
  return features


# ----------------------------------------------------------------------------------------------
# Flow estimator (scope predict_flow)

def _predict_flow_level(conv: Conv, options: Options, level: int, feat_a, feat_b) -> tf.Tensor:
  scope = _predictor_name(options, level)
  idx = min(level, options.specialized_levels)
  x = tf.concat([feat_a, feat_b], axis=-1)
  for j in range(options.flow_convs[idx] + 2):
    x = conv(f'{scope}/conv_{j}', x)
  return x


def estimate_flow(conv: Conv, options: Options, feat_a: list[tf.Tensor],
                  feat_b: list[tf.Tensor]) -> list[tf.Tensor]:
  """Residual flows, finest first, on feat_a's grid pointing into feat_b."""
  levels = len(feat_a)
  v = _predict_flow_level(conv, options, levels - 1, feat_a[-1], feat_b[-1])
  residuals = [v]
  for i in reversed(range(levels - 1)):
    v = upsample_flow(v, feat_a[i])
    warped = warp(feat_b[i], v)
    r = _predict_flow_level(conv, options, i, feat_a[i], warped)
    residuals.append(r)
    v = r + v
  return list(reversed(residuals))


def synthesize_flow_pyramid(residuals: list[tf.Tensor]) -> list[tf.Tensor]:
  """Sums residual flows coarse to fine into a full flow pyramid, finest first."""
  flow = residuals[-1]
  out = [flow]
  for r in reversed(residuals[:-1]):
    flow = r + upsample_flow(flow, r)
    out.append(flow)
  return list(reversed(out))


# ----------------------------------------------------------------------------------------------
# Fusion (scope fusion)

def fuse(conv: Conv, options: Options, aligned: list[tf.Tensor]) -> tf.Tensor:
  names = fusion_conv_names(options)
  levels = options.fusion_pyramid_levels
  net = aligned[levels - 1]
  for i in reversed(range(levels - 1)):
    net = tf.image.resize(net, _size(aligned[i]), method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    net = conv(names[3 * i], net)
    net = tf.concat([aligned[i], net], axis=-1)
    net = conv(names[3 * i + 1], net)
    net = conv(names[3 * i + 2], net)
  return conv(names[-1], net)


# ----------------------------------------------------------------------------------------------
# The whole model, split where a frame's own work ends, so recursion can reuse it.

def frame_features(conv: Conv, options: Options, image: tf.Tensor):
  """Everything that depends on one frame only: its image and feature pyramids."""
  pyramid = image_pyramid(image, options.pyramid_levels)
  return pyramid, extract_features(conv, pyramid, options)


def interpolate_from_features(conv: Conv, options: Options, pyr0, feat0, pyr1, feat1,
                              aux_outputs: bool = True) -> dict:
  """The mid frame (t = 0.5) from two frames' pyramids; returns FILM's output dict."""
  forward_residual = estimate_flow(conv, options, feat0, feat1)
  backward_residual = estimate_flow(conv, options, feat1, feat0)
  levels = options.fusion_pyramid_levels
  forward_flow_pyramid = synthesize_flow_pyramid(forward_residual)[:levels]
  backward_flow_pyramid = synthesize_flow_pyramid(backward_residual)[:levels]
  # film_net ignores `time` and always predicts t = 0.5, so the flows from the mid frame are
  # the other frame's flows halved.
  backward_flow = [f * 0.5 for f in backward_flow_pyramid]
  forward_flow = [f * 0.5 for f in forward_flow_pyramid]

  to_warp0 = [tf.concat([pyr0[i], feat0[i]], axis=-1) for i in range(levels)]
  to_warp1 = [tf.concat([pyr1[i], feat1[i]], axis=-1) for i in range(levels)]
  forward_warped = [warp(to_warp0[i], backward_flow[i]) for i in range(levels)]
  backward_warped = [warp(to_warp1[i], forward_flow[i]) for i in range(levels)]
  aligned = [tf.concat([forward_warped[i], backward_warped[i], backward_flow[i],
                        forward_flow[i]], axis=-1) for i in range(levels)]
  outputs = {'image': fuse(conv, options, aligned)[..., :3]}
  if aux_outputs:
    outputs.update({
        'x0_warped': forward_warped[0][..., 0:3],
        'x1_warped': backward_warped[0][..., 0:3],
        'forward_residual_flow_pyramid': forward_residual,
        'backward_residual_flow_pyramid': backward_residual,
        'forward_flow_pyramid': forward_flow_pyramid,
        'backward_flow_pyramid': backward_flow_pyramid,
    })
  return outputs
