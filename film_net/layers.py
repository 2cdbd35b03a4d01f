"""The film_net architecture as plain functions over a `conv(name, x)` callable.

Conventions (FILM's, stated once here): tensors are NHWC float32; images are RGB in [0, 1],
gamma space; pyramids are python lists ordered finest level first, level i at H / 2**i.

Every convolution of the model is listed by `specs.conv_specs`, under the variable name it has
in the released checkpoints; the forward functions below only ever refer to convolutions by
those names.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

from film_net.options import Options
from film_net.specs import LEAKY, ConvSpec, fusion_conv_names, predictor_name
from film_net.warp import warp

Conv = Callable[[str, tf.Tensor], tf.Tensor]
Warp = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # `warp.warp` or `warp.fused_warp`


def apply_conv(spec: ConvSpec, kernel, bias, x: tf.Tensor,
               precision: str = 'float32') -> tf.Tensor:
  """Keras 2 Conv2D: stride 1, 'same' padding (extra row/col bottom-right), bias, activation.

  precision 'bfloat16' multiplies in bfloat16 (input and kernel rounded to 8 mantissa bits)
  and returns float32, so flows, warps and sums between convolutions keep float32.
  """
  if precision == 'bfloat16':
    y = tf.cast(tf.nn.conv2d(tf.cast(x, tf.bfloat16), tf.cast(kernel, tf.bfloat16), strides=1,
                             padding='SAME'), tf.float32) + bias
  else:
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
  scope = predictor_name(options, level)
  idx = min(level, options.specialized_levels)
  x = tf.concat([feat_a, feat_b], axis=-1)
  for j in range(options.flow_convs[idx] + 2):
    x = conv(f'{scope}/conv_{j}', x)
  return x


def estimate_flow(conv: Conv, options: Options, feat_a: list[tf.Tensor],
                  feat_b: list[tf.Tensor], warp_fn: Warp = warp) -> list[tf.Tensor]:
  """Residual flows, finest first, on feat_a's grid pointing into feat_b."""
  levels = len(feat_a)
  v = _predict_flow_level(conv, options, levels - 1, feat_a[-1], feat_b[-1])
  residuals = [v]
  for i in reversed(range(levels - 1)):
    v = upsample_flow(v, feat_a[i])
    warped = warp_fn(feat_b[i], v)
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
                              aux_outputs: bool = True, warp_fn: Warp = warp) -> dict:
  """The mid frame (t = 0.5) from two frames' pyramids; returns FILM's output dict."""
  forward_residual = estimate_flow(conv, options, feat0, feat1, warp_fn)
  backward_residual = estimate_flow(conv, options, feat1, feat0, warp_fn)
  levels = options.fusion_pyramid_levels
  forward_flow_pyramid = synthesize_flow_pyramid(forward_residual)[:levels]
  backward_flow_pyramid = synthesize_flow_pyramid(backward_residual)[:levels]
  # film_net ignores `time` and always predicts t = 0.5, so the flows from the mid frame are
  # the other frame's flows halved.
  backward_flow = [f * 0.5 for f in backward_flow_pyramid]
  forward_flow = [f * 0.5 for f in forward_flow_pyramid]

  to_warp0 = [tf.concat([pyr0[i], feat0[i]], axis=-1) for i in range(levels)]
  to_warp1 = [tf.concat([pyr1[i], feat1[i]], axis=-1) for i in range(levels)]
  forward_warped = [warp_fn(to_warp0[i], backward_flow[i]) for i in range(levels)]
  backward_warped = [warp_fn(to_warp1[i], forward_flow[i]) for i in range(levels)]
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
