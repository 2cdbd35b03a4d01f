"""Exact convolution FLOPs of film_net, counted by running the graph with a counting conv.

A multiply-add counts as 2 FLOPs; warps, resizes and pooling (a few percent) are left out, so
achieved GFLOP/s figures are slight underestimates.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from film_net import layers
from film_net import specs
from film_net.options import Options


def _counting_conv(options: Options, counter: list):
  by_name = {s.name: s for s in specs.conv_specs(options)}

  def conv(name, x):
    spec = by_name[name]
    h, w = int(x.shape[1]), int(x.shape[2])
    counter[0] += 2 * spec.kernel_size ** 2 * spec.in_channels * spec.out_channels * h * w
    # Shape-only stand-in: zeros of the output shape keep the graph's sizes exact.
    return tf.zeros([x.shape[0], h, w, spec.out_channels])
  return conv


def frame_features_flops(options: Options, height: int, width: int) -> int:
  counter = [0]
  layers.frame_features(_counting_conv(options, counter), options,
                        tf.zeros([1, height, width, 3]))
  return counter[0]


def mid_frame_flops(options: Options, height: int, width: int) -> int:
  """FLOPs of one model call (both frames' features and the rest)."""
  counter = [0]
  conv = _counting_conv(options, counter)
  image = tf.zeros([1, height, width, 3])
  pyr, feat = layers.frame_features(conv, options, image)
  pyr1, feat1 = layers.frame_features(conv, options, image)
  layers.interpolate_from_features(conv, options, pyr, feat, pyr1, feat1, aux_outputs=False)
  return counter[0]


if __name__ == '__main__':
  for name in ('released', 'compact'):
    o = Options.preset(name)
    for h, w in ((128, 128), (512, 512), (1088, 1920)):
      print(name, f'{w}x{h}', f'{mid_frame_flops(o, h, w) / 1e9:.1f} GFLOP',
            f'features {frame_features_flops(o, h, w) / 1e9:.1f} GFLOP/frame')
