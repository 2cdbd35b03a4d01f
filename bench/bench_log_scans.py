"""What interpolating a log-encoded scan's code values costs, against interpolating the same
frames as display images: why the pipeline keeps a DPX's code values as they are.

    .venv/bin/python bench/bench_log_scans.py [--data ../shared/data/middlebury-other]

Film scans are mostly log-encoded (Cineon printing density: flat, low-contrast code values),
while the built-in model was trained on display images. Each Middlebury-Other triplet's frames
(sRGB) are converted to Cineon log (10-bit codes, black 95, white 685, 0.002 density per code,
gamma 0.6), interpolated there, and converted back; its PSNR against the true middle frame (in
display sRGB, prediction clipped to [0, 1]) is set beside the model's on the display frames.
The conversion itself round-trips at ~147 dB. Frames are read from ../shared at run time.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from bench.bench_quality import DEFAULT_DATA
from film_net import Interpolator
from film_net.image_io import read_rgb
from film_net.render import TRIPLET_NAMES
from machine import machine_line
from transforms.quality import psnr

BLACK, WHITE, DENSITY_PER_CODE, GAMMA = 95, 685, 0.002, 0.6
_OFFSET = 10 ** ((BLACK - WHITE) * DENSITY_PER_CODE / GAMMA)


def srgb_to_linear(x):
  return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(y):
  y = np.clip(y, 0, None)
  return np.where(y <= 0.0031308, y * 12.92, 1.055 * y ** (1 / 2.4) - 0.055)


def to_log(srgb):
  """Display sRGB in [0, 1] -> Cineon code values / 1023."""
  linear = srgb_to_linear(srgb) * (1 - _OFFSET) + _OFFSET
  return (WHITE + GAMMA / DENSITY_PER_CODE * np.log10(linear)) / 1023


def from_log(code):
  linear = 10 ** ((code * 1023 - WHITE) * DENSITY_PER_CODE / GAMMA)
  return linear_to_srgb((linear - _OFFSET) / (1 - _OFFSET))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', default=DEFAULT_DATA)
  parser.add_argument('--model_path', default=None, help='default: the built-in model')
  args = parser.parse_args()
  model = Interpolator.from_path(args.model_path, align=None)
  print(machine_line())
  print('| sequence | display (dB) | log codes (dB) | difference | log round trip (dB) |')
  print('|---|---|---|---|---|')
  rows = []
  for name in sorted(os.listdir(args.data)):
    folder = os.path.join(args.data, name)
    if not os.path.isfile(os.path.join(folder, TRIPLET_NAMES[1])):
      continue
    x0, truth, x1 = (read_rgb(os.path.join(folder, n)) for n in TRIPLET_NAMES)
    display = psnr(np.clip(model(x0, x1), 0, 1), truth)
    logged = psnr(np.clip(from_log(np.clip(model(to_log(x0), to_log(x1)), 0, 1)), 0, 1), truth)
    rows.append((display, logged))
    print(f'| {name} | {display:.2f} | {logged:.2f} | {logged - display:+.2f} | '
          f'{psnr(from_log(to_log(truth)), truth):.0f} |', flush=True)
  display, logged = np.mean(rows, axis=0)
  print(f'| mean | {display:.3f} | {logged:.3f} | {logged - display:+.3f} | |')


if __name__ == '__main__':
  main()
