"""The machine line every benchmark prints first: ratios are only comparable on one machine."""
from __future__ import annotations

import os
import platform


def machine_line() -> str:
  """'x86_64, 2 cores, <CPU model> (avx512_bf16 amx_bf16)': the flags that decide bfloat16."""
  model, flags = 'unknown CPU', set()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        if key.strip() == 'model name' and model == 'unknown CPU':
          model = value.strip()
        elif key.strip() == 'flags' and not flags:
          flags = set(value.split())
  except OSError:
    pass
  bf16 = ' '.join(sorted(flags & {'avx512_bf16', 'amx_bf16'})) or 'no bf16'
  return f'{platform.machine()}, {os.cpu_count()} cores, {model} ({bf16})'
