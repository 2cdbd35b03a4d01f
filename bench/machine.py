"""The machine line every benchmark prints first: ratios are only comparable on one machine."""
from __future__ import annotations

import os
import platform

from film_net import specs


def machine_line() -> str:
  """'x86_64, 2 cores, <CPU model> (amx_bf16 avx512_bf16)': with the flags that decide bfloat16."""
  model = 'unknown CPU'
  try:
    with open('/proc/cpuinfo') as f:
      model = next((line.partition(':')[2].strip() for line in f
                    if line.startswith('model name')), model)
  except OSError:
    pass
  bf16 = ' '.join(sorted(specs.cpu_bfloat16_flags() or ())) or 'no bf16'
  return f'{platform.machine()}, {os.cpu_count()} cores, {model} ({bf16})'
