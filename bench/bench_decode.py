"""What decoding a frame costs the pipeline (`transforms.images.decode`), per format, against
OpenCV's own decoder (libtiff, libpng) on the same bytes in the same run; DPX, which OpenCV
cannot read, alone (written by ffmpeg: the one on PATH or imageio-ffmpeg's, where there is one).

    .venv/bin/python bench/bench_decode.py [--size 1920x1080] [--repeats 5]

A scanner-like 16-bit RGB frame (smooth ramps with busy low bits, so compression and the
predictor work as on real scans) is written by OpenCV as TIFF in each compression it has and as
16-bit PNG, and an 8-bit copy as PNG; each is decoded once to warm up, then `--repeats` times by
both, best time kept. 16-bit colour TIFF is the case PIL cannot read in full, decoded by
relabelling it as 16-bit gray. Then the other way: encoding a 16-bit in-between as the pipeline
writes it (PNG, DPX after a scan's header, plain DPX). OpenCV is a benchmark extra (requirements-dev.txt), never a
runtime dependency.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from bench_film_net import best_of
from machine import machine_line
from transforms import images
from transforms import quality

TIFF_COMPRESSIONS = {'none': 1, 'LZW': 5, 'Deflate': 8, 'PackBits': 32773}


def scan_like(width, height, seed=0):
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  rgb = np.stack([x / width, y / height, 0.5 + 0.4 * np.sin((x + y) / 97.0)], axis=-1)
  noise = np.random.default_rng(seed).normal(0, 300, rgb.shape)
  return np.clip(rgb * 60000 + 2000 + noise, 0, 65535).astype(np.uint16)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--size', default='1920x1080')
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  try:
    import cv2  # pylint: disable=import-outside-toplevel
  except ImportError:
    sys.exit('bench_decode compares with OpenCV, which is not installed: pip install '
             'opencv-python-headless (requirements-dev.txt)')
  width, height = map(int, args.size.split('x'))
  rgb16 = scan_like(width, height)
  bgr16 = np.ascontiguousarray(rgb16[..., ::-1])
  cases = [(f'16-bit RGB TIFF, {name}',
            cv2.imencode('.tiff', bgr16, [cv2.IMWRITE_TIFF_COMPRESSION, code])[1].tobytes(), rgb16)
           for name, code in TIFF_COMPRESSIONS.items()]
  cases.append(('16-bit RGB PNG', cv2.imencode('.png', bgr16)[1].tobytes(), rgb16))
  rgb8 = (rgb16 >> 8).astype(np.uint8)
  cases.append(('8-bit RGB PNG', cv2.imencode('.png', rgb8[..., ::-1])[1].tobytes(), rgb8))
  ffmpeg = quality.find_ffmpeg()
  if ffmpeg:
    for pix_fmt, name, expected in (('gbrp10be', '10-bit RGB DPX (method A)', rgb16 >> 6 << 6 |
                                     rgb16 >> 10), ('rgb48be', '16-bit RGB DPX', rgb16)):
      cases.append((name, _ffmpeg_dpx(ffmpeg, bgr16, pix_fmt), expected))
  print(machine_line())
  print(f'{width}x{height}, best of {args.repeats}')
  print('| frame | MB | ours (s) | OpenCV (s) | ours / OpenCV |')
  print('|---|---|---|---|---|')
  for name, data, expected in cases:
    decoded = images.decode(data).pixels
    assert np.array_equal(decoded, expected), f'{name}: decoded pixels differ'
    ours = best_of(lambda d=data: images.decode(d), args.repeats)
    if 'DPX' in name:  # OpenCV has no DPX decoder
      print(f'| {name} | {len(data) / 1e6:.1f} | {ours:.3f} | | |')
      continue
    buf = np.frombuffer(data, np.uint8)
    theirs = best_of(lambda b=buf: cv2.imdecode(b, cv2.IMREAD_UNCHANGED), args.repeats)
    print(f'| {name} | {len(data) / 1e6:.1f} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} |')
  _encoding(rgb16, cases, args.repeats)


def _encoding(rgb16, cases, repeats):
  """What writing an in-between costs (`images.encode`): PNG at zlib levels 1 (the default) and
  6 (libpng's usual), 8 and 16 bit, against OpenCV's encoder at the same level; DPX after a
  10-bit scan's header and as plain 16-bit DPX."""
  import cv2  # pylint: disable=import-outside-toplevel
  print()
  print('| output frame (encoding) | MB | ours (s) | OpenCV (s) | ours / OpenCV |')
  print('|---|---|---|---|---|')
  rgb8 = (rgb16 >> 8).astype(np.uint8)
  for pixels, depth in ((rgb8, 8), (rgb16, 16)):
    for level in (images.DEFAULT_PNG_COMPRESSION, 6):
      data = images.encode(pixels, 'png', png_compression=level)
      ours = best_of(lambda p=pixels, c=level: images.encode(p, 'png', png_compression=c),
                     repeats)
      theirs = best_of(lambda p=pixels, c=level: cv2.imencode(
          '.png', p[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, c]), repeats)
      print(f'| {depth}-bit RGB PNG, level {level} | {len(data) / 1e6:.2f} | {ours:.3f} | '
            f'{theirs:.3f} | {ours / theirs:.2f} |')
  template = next((d for name, d, _ in cases if name.startswith('10-bit')), b'')
  for name, template in (('10-bit DPX after a scan\'s header', template),
                         ('16-bit DPX, plain header', b'')):
    if name.startswith('10-bit') and not template:
      continue  # no ffmpeg, no scan to follow
    data = images.encode(rgb16, 'dpx', templates=(template,))
    ours = best_of(lambda t=template: images.encode(rgb16, 'dpx', templates=(t,)), repeats)
    print(f'| {name} | {len(data) / 1e6:.2f} | {ours:.3f} | | |')


def _ffmpeg_dpx(ffmpeg, bgr16, pix_fmt):
  import cv2  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as tmp:
    source, out = os.path.join(tmp, 'in.png'), os.path.join(tmp, 'out.dpx')
    cv2.imwrite(source, bgr16)
    subprocess.run([ffmpeg, '-v', 'error', '-y', '-i', source, '-pix_fmt', pix_fmt, out],
                   check=True)
    with open(out, 'rb') as f:
      return f.read()


if __name__ == '__main__':
  main()
