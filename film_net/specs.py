"""Every convolution of film_net, by its released variable name, in creation order.

`conv_specs` is the single source of truth for shapes, activations and weight names: the
TensorFlow layers, the PyTorch trainer, the exporter and the weight loaders all read it. Plain
Python, so code that only needs the table (weight files, the GPU trainer) does not load
TensorFlow.
"""
from __future__ import annotations

import dataclasses

from film_net.options import Options

LEAKY = 'leaky_relu'
LINEAR = 'linear'
PRECISIONS = ('float32', 'bfloat16')  # of the products inside the convolutions
BFLOAT16_CPU_FLAGS = frozenset({'avx512_bf16', 'amx_bf16'})  # /proc/cpuinfo names


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


def predictor_name(options: Options, level: int) -> str:
  if level < options.specialized_levels:
    return f'predict_flow/flow_predictor_{level}'
  return 'predict_flow/flow_predictor_shared'


def fusion_conv_names(options: Options) -> list[str]:
  """Fusion convs are unnamed in FILM's code, so Keras numbered them in creation order."""
  count = 3 * (options.fusion_pyramid_levels - 1) + 1
  return ['fusion/conv2d' if i == 0 else f'fusion/conv2d_{i}' for i in range(count)]


def output_resolution_convs(options: Options) -> set[str]:
  """The finest fusion level's convolutions and the output conv: they work on the frame itself.

  `precision='bfloat16'` keeps these in float32. Rounded to 8 bits, their products land in the
  output unfiltered (built-in model, all convs in bfloat16: -0.33 to -0.60 dB on the rendered
  held-out sets; all but these: within 0.03 dB), and they are 7% of its FLOPs.
  """
  names = fusion_conv_names(options)
  return set(names[:3] + names[-1:]) if options.fusion_pyramid_levels > 1 else {names[-1]}


def bfloat16_convs(options: Options, precision: str) -> set[str]:
  """The convolutions that multiply in bfloat16 at this precision (both frameworks' rule):
  with 'bfloat16' all but `output_resolution_convs`; none with 'float32'."""
  if precision not in PRECISIONS:
    raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
  if precision == 'float32':
    return set()
  return {s.name for s in conv_specs(options)} - output_resolution_convs(options)


def cpu_bfloat16_flags() -> set[str] | None:
  """This CPU's flags that multiply bfloat16 in hardware; None where /proc/cpuinfo cannot say."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        if key.strip() == 'flags':
          return set(value.split()) & BFLOAT16_CPU_FLAGS
  except OSError:
    pass
  return None


def cpu_multiplies_bfloat16() -> bool:
  """Whether this CPU has AVX512_BF16 or AMX; assumed so where /proc/cpuinfo cannot say."""
  flags = cpu_bfloat16_flags()
  return flags is None or bool(flags)


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
