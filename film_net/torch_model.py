"""film_net's forward pass in PyTorch, for training on GPU machines that have no TensorFlow.

The TensorFlow model (`layers`, `model`) is the reference and what the tool runs; this module
mirrors it op for op so that weights move between the two unchanged
(`tests/test_train_torch.py` checks the outputs agree). Parameters are the convolutions of
`specs.conv_specs`, kept in their order; `released_weights` / `load_released_weights` convert to and from the released names and
TensorFlow's HWIO kernel layout. Tensors here are NCHW, as cuDNN prefers. `precision` rounds
the same convolutions to bfloat16 as the TensorFlow model's.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from film_net import specs
from film_net.options import Options


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
  """`warp.warp` in NCHW: bilinear sampling at pixel + flow (dx, dy), edges clamped.

  Clamping the sample position to the border and sampling bilinearly gives the same values as
  the reference's clamped floor and weight.
  """
  _, _, height, width = image.shape
  ys = torch.arange(height, dtype=image.dtype, device=image.device)
  xs = torch.arange(width, dtype=image.dtype, device=image.device)
  x = xs[None, None, :] + flow[:, 0]
  y = ys[None, :, None] + flow[:, 1]
  grid = torch.stack([2.0 * x / (width - 1) - 1.0, 2.0 * y / (height - 1) - 1.0], dim=-1)
  return F.grid_sample(image, grid, mode='bilinear', padding_mode='border', align_corners=True)


def upsample_flow(flow: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
  """Doubles the flow and resizes it bilinearly (half-pixel centres) to `like`'s size."""
  return F.interpolate(2 * flow, size=like.shape[-2:], mode='bilinear', align_corners=False)


class FilmNetTorch(nn.Module):
  """All film_net convolutions, in `conv_specs` order, and the forward pass over them."""

  def __init__(self, options: Options, precision: str = 'float32'):
    super().__init__()
    self.options = options
    self.precision = precision
    self.specs = specs.conv_specs(options)
    self._index = {s.name: i for i, s in enumerate(self.specs)}
    rounded = specs.bfloat16_convs(options, precision)
    self._bfloat16 = [s.name in rounded for s in self.specs]
    self.kernels = nn.ParameterList(
        nn.Parameter(torch.empty(s.out_channels, s.in_channels, s.kernel_size, s.kernel_size))
        for s in self.specs)
    self.biases = nn.ParameterList(nn.Parameter(torch.zeros(s.out_channels)) for s in self.specs)
    for kernel in self.kernels:
      nn.init.xavier_uniform_(kernel)

  # -- weights by released name --------------------------------------------------------------

  def load_released_weights(self, weights: dict[str, np.ndarray]) -> None:
    """Sets every parameter from released-name, HWIO weights (as `weights.read_npz` gives)."""
    for spec, kernel, bias in zip(self.specs, self.kernels, self.biases):
      k = np.asarray(weights[f'{spec.name}/kernel'], np.float32)
      if k.shape != spec.kernel_shape:
        raise ValueError(f'{spec.name}/kernel: shape {k.shape} does not fit options '
                         f'(expected {spec.kernel_shape})')
      with torch.no_grad():
        kernel.copy_(torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))))
        bias.copy_(torch.from_numpy(np.asarray(weights[f'{spec.name}/bias'], np.float32)))

  def released_weights(self, parameters=None) -> dict[str, np.ndarray]:
    """Released-name HWIO weights of these parameters (or of a same-order list, e.g. an EMA)."""
    values = list(parameters) if parameters is not None else list(self.parameters())
    kernels, biases = values[:len(self.specs)], values[len(self.specs):]
    out = {}
    for spec, kernel, bias in zip(self.specs, kernels, biases):
      out[f'{spec.name}/kernel'] = kernel.detach().cpu().numpy().transpose(2, 3, 1, 0).copy()
      out[f'{spec.name}/bias'] = bias.detach().cpu().numpy().copy()
    return out

  # -- forward -------------------------------------------------------------------------------

  def conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
    """Keras 'same' padding: for the 2x2 fusion convs, one extra row and column bottom-right.

    In bfloat16 (as `layers.apply_conv`) input and kernel are rounded, the product comes back
    float32 and the bias is added in float32; gradients flow back to float32 weights.
    """
    i = self._index[name]
    spec = self.specs[i]
    if spec.kernel_size == 2:
      x = F.pad(x, (0, 1, 0, 1))
    padding = spec.kernel_size // 2 if spec.kernel_size != 2 else 0
    if self._bfloat16[i]:
      y = F.conv2d(x.bfloat16(), self.kernels[i].bfloat16(), padding=padding).float()
      y = y + self.biases[i][:, None, None]
    else:
      y = F.conv2d(x, self.kernels[i], self.biases[i], padding=padding)
    return F.leaky_relu(y, 0.2) if spec.activation == specs.LEAKY else y

  def features(self, image: torch.Tensor):
    """(image pyramid, cascaded feature pyramid) of one NCHW frame, finest first."""
    options = self.options
    pyramid = [image]
    for _ in range(options.pyramid_levels - 1):
      pyramid.append(F.avg_pool2d(pyramid[-1], 2))
    levels = len(pyramid)
    subtrees = []
    for i in range(levels):
      x, tree = pyramid[i], []
      for j in range(min(levels - i, options.sub_levels)):
        if j:
          x = F.avg_pool2d(x, 2)
        x = self.conv(f'feat_net/sub_extractor/cfeat_conv_{2 * j + 1}',
                      self.conv(f'feat_net/sub_extractor/cfeat_conv_{2 * j}', x))
        tree.append(x)
      subtrees.append(tree)
    features = []
    for i in range(levels):
      parts = [subtrees[i - j][j] for j in range(options.sub_levels) if j <= i]
      features.append(torch.cat(parts, dim=1))
    return pyramid, features

  def _predict_flow_level(self, level: int, feat_a, feat_b) -> torch.Tensor:
    scope = specs.predictor_name(self.options, level)
    x = torch.cat([feat_a, feat_b], dim=1)
    for j in range(self.options.flow_convs[min(level, self.options.specialized_levels)] + 2):
      x = self.conv(f'{scope}/conv_{j}', x)
    return x

  def _flow_pyramid(self, feat_a, feat_b) -> list[torch.Tensor]:
    """Full flows (residuals summed coarse to fine), finest first, as the reference gives."""
    levels = len(feat_a)
    v = self._predict_flow_level(levels - 1, feat_a[-1], feat_b[-1])
    residuals = [v]
    for i in reversed(range(levels - 1)):
      v = upsample_flow(v, feat_a[i])
      r = self._predict_flow_level(i, feat_a[i], warp(feat_b[i], v))
      residuals.append(r)
      v = r + v
    residuals.reverse()
    flow = residuals[-1]
    flows = [flow]
    for r in reversed(residuals[:-1]):
      flow = r + upsample_flow(flow, r)
      flows.append(flow)
    return list(reversed(flows))

  def interpolate_from_features(self, pyr0, feat0, pyr1, feat1) -> torch.Tensor:
    """The mid frame (t = 0.5), NCHW."""
    levels = self.options.fusion_pyramid_levels
    forward = [0.5 * f for f in self._flow_pyramid(feat0, feat1)[:levels]]
    backward = [0.5 * f for f in self._flow_pyramid(feat1, feat0)[:levels]]
    aligned = [torch.cat([warp(torch.cat([pyr0[i], feat0[i]], 1), backward[i]),
                          warp(torch.cat([pyr1[i], feat1[i]], 1), forward[i]),
                          backward[i], forward[i]], dim=1) for i in range(levels)]
    names = specs.fusion_conv_names(self.options)
    net = aligned[-1]
    for i in reversed(range(levels - 1)):
      net = F.interpolate(net, size=aligned[i].shape[-2:], mode='nearest-exact')
      net = self.conv(names[3 * i], net)
      net = self.conv(names[3 * i + 2], self.conv(names[3 * i + 1],
                                                  torch.cat([aligned[i], net], dim=1)))
    return self.conv(names[-1], net)[:, :3]

  def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    pyr0, feat0 = self.features(x0)
    pyr1, feat1 = self.features(x1)
    return self.interpolate_from_features(pyr0, feat0, pyr1, feat1)
