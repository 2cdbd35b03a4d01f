"""Argparse types for film_net's command lines (rendering and both trainers).

Plain Python, free of TensorFlow and of `pipeline`, so every command line can check its values
the same way: a value out of range is a usage error (exit status 2) that names the flag and the
range, not a traceback from deep inside rendering or training.
"""
from __future__ import annotations

import argparse
from typing import Callable


def in_range(kind: type, low: float, high: float | None = None, *, low_open: bool = False,
             high_open: bool = False) -> Callable[[str], float]:
  """An argparse type: `kind` (int or float) from `low` to `high` (None: no upper bound),
  `low_open` / `high_open` leaving out that end. argparse prefixes the flag to the message."""
  if high is None:
    allowed = f'{">" if low_open else ">="} {low}'
  else:
    allowed = f'in {"(" if low_open else "["}{low}, {high}{")" if high_open else "]"}'

  def parse(text: str):
    value = kind(text)
    above_low = value > low if low_open else value >= low  # False for nan, which is refused
    below_high = high is None or (value < high if high_open else value <= high)
    if not (above_low and below_high):
      raise argparse.ArgumentTypeError(f'must be {allowed}, got {text}')
    return value

  parse.__name__ = kind.__name__  # text that is no number: "invalid int value: 'x'"
  return parse


positive_int = in_range(int, 1)
non_negative_int = in_range(int, 0)
positive_float = in_range(float, 0, low_open=True)
share = in_range(float, 0, 1)  # a fraction of scenes, textures or batches
