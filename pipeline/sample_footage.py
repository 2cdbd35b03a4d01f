"""Synthetic sample footage: short clips of textured shapes moving over a textured background.

Made on the spot (nothing downloaded), deterministic per seed, so the README demo and the tests
have archive-like input with real motion:

    python -m pipeline.sample_footage --output sample_footage [--clips 3 --frames 5 --size 160x96]
        [--edits 1]

An edit (`edit_00`, ...) is two shots cut together, so the demo shows a scene cut held rather
than cross-faded.
"""

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import argparse
import io
import os
import re

import numpy as np
from PIL import Image

from film_net import flags
from transforms import files


def _texture(height, width, rng, scale):
  """Smooth random texture in [0, 1], HxWx3 (sum of a few random sinusoids per channel)."""
  y, x = np.mgrid[0:height, 0:width].astype(np.float32)
  out = np.zeros((height, width, 3), np.float32)
  for c in range(3):
    for _ in range(3):
      fx, fy = rng.uniform(0.5, 3.0, 2) * 2 * np.pi / scale
      phase = rng.uniform(0, 2 * np.pi)
      out[..., c] += np.sin(x * fx + y * fy + phase)
  return (out - out.min()) / max(float(np.ptp(out)), 1e-6)


def render_frames(num_frames, width, height, seed=0, shapes=3, speed=3.0):
  """num_frames uint8 HxWx3 frames: textured discs and boxes moving linearly over a background."""
  rng = np.random.default_rng(seed)
  background = 0.25 + 0.5 * _texture(height, width, rng, scale=max(width, height))
  sprites = []
  for s in range(shapes):
    radius = rng.uniform(0.12, 0.25) * min(width, height)
    sprites.append({
        'pos': rng.uniform([radius, radius], [width - radius, height - radius]),
        'vel': rng.uniform(-speed, speed, 2) + np.sign(rng.uniform(-1, 1, 2)) * speed / 2,
        'radius': radius, 'disc': s % 2 == 0,
        'texture': _texture(height, width, rng, scale=radius),
    })
  y, x = np.mgrid[0:height, 0:width].astype(np.float32)
  frames = []
  for t in range(num_frames):
    img = background.copy()
    for sp in sprites:
      cx, cy = sp['pos'] + sp['vel'] * t
      if sp['disc']:
        mask = (x - cx) ** 2 + (y - cy) ** 2 <= sp['radius'] ** 2
      else:
        mask = (abs(x - cx) <= sp['radius']) & (abs(y - cy) <= sp['radius'] * 0.7)
      img[mask] = sp['texture'][mask]
    frames.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
  return frames


def write_clip(folder, frames, pattern='frame{:03d}.png'):
  """Writes frames (uint8 arrays) into `folder` as numbered image files; returns their paths.

  A file that already holds the same image is left as it is (its modification time too), so
  running the demo again finds its pairs done, as a nightly run over an unchanged archive does."""
  os.makedirs(folder, exist_ok=True)
  paths = []
  for i, frame in enumerate(frames):
    path = os.path.join(folder, pattern.format(i))
    buffer = io.BytesIO()
    image_format = Image.registered_extensions()[os.path.splitext(path)[1].lower()]
    Image.fromarray(frame).save(buffer, format=image_format)
    data = buffer.getvalue()
    if not (os.path.exists(path) and files.read_bytes(path) == data):
      with open(path, 'wb') as f:
        f.write(data)
    paths.append(path)
  return paths


MIN_SIDE, MAX_SIDE = 8, 8192


def frame_size(text):
  """An argparse type: 'WIDTHxHEIGHT' -> (width, height), each side MIN_SIDE to MAX_SIDE."""
  try:
    width, height = (int(v) for v in text.lower().split('x'))
  except ValueError:
    raise argparse.ArgumentTypeError(f'must be WIDTHxHEIGHT (e.g. 160x96), got {text!r}') from None
  if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
    raise argparse.ArgumentTypeError(f'each side must be {MIN_SIDE} to {MAX_SIDE} px, got {text}')
  return width, height


def main(argv=None):
  flags.start_command()
  parser = flags.command_line('pipeline.sample_footage', __doc__.split('\n')[0])
  parser.add_argument('--output', default='sample_footage', type=flags.path_value,
                      help='folder the clips go to (default sample_footage)')
  parser.add_argument('--clips', type=flags.non_negative_int, default=3,
                      help='clips of one shot, clip_00, ... (default 3)')
  parser.add_argument('--frames', type=flags.in_range(int, 2), default=5,
                      help='frames per shot, at least 2 (default 5)')
  parser.add_argument('--size', type=frame_size, default=(160, 96),
                      help=f'WIDTHxHEIGHT, each {MIN_SIDE} to {MAX_SIDE} px (default 160x96)')
  parser.add_argument('--edits', type=flags.non_negative_int, default=1,
                      help='clips of two shots cut together, edit_00, ... (each shot --frames '
                           'frames; default 1)')
  args = parser.parse_args(argv)
  if not args.clips and not args.edits:
    parser.error('--clips 0 and --edits 0 write nothing')
  flags.check_paths(parser, [('--output', args.output)])
  problem = flags.cannot_write('--output', args.output)  # (it was a traceback of the first frame)
  if problem:
    parser.error(problem)
  width, height = args.size
  for c in range(args.clips):
    folder = os.path.join(args.output, f'clip_{c:02d}')
    write_clip(folder, render_frames(args.frames, width, height, seed=c))
    print(f'wrote {args.frames} frames of {width}x{height} to {folder}')
  for e in range(args.edits):
    folder = os.path.join(args.output, f'edit_{e:02d}')
    write_clip(folder, edited_frames(args.frames, width, height, seed=e))
    print(f'wrote {2 * args.frames} frames of {width}x{height} (two shots) to {folder}')
  kept = {**{f'clip_{c:02d}': args.frames for c in range(args.clips)},
          **{f'edit_{e:02d}': 2 * args.frames for e in range(args.edits)}}
  for path in remove_leftovers(args.output, kept):
    print(f'removed {path}, left by an earlier, larger set')


def remove_leftovers(output, kept):
  """Removes the frames an earlier run into `output` wrote beyond this set (more clips, edits
  or frames per shot: a clip of frames of two sizes, which the pipeline refuses), and folders
  left empty; `kept`: frames per folder of this set. Only this command's names go (`clip_NN`,
  `edit_NN`, `frameNNN.png`); yields what it removed."""
  for name in sorted(os.listdir(output)):
    folder = os.path.join(output, name)
    kind = re.fullmatch(r'(clip|edit)_(\d{2,})', name)
    if (not kind or name != f'{kind[1]}_{int(kind[2]):02d}' or os.path.islink(folder)
        or not os.path.isdir(folder)):
      continue  # (`clip_000` is no name this command writes)
    for frame in sorted(os.listdir(folder)):
      number = re.fullmatch(r'frame(\d{3,})\.png', frame)
      path = os.path.join(folder, frame)
      if (number and frame == f'frame{int(number[1]):03d}.png' and int(number[1]) >= kept.get(
          name, 0) and not os.path.isdir(path)):
        os.remove(path)
        yield path
    if not os.listdir(folder):
      os.rmdir(folder)


def edited_frames(frames_per_shot, width, height, seed=0):
  """Two shots of `render_frames`, the second right after the first: one scene cut. (These
  shots are all smooth sinusoids and alike; seeds from 1006 on make the demo's cut clear,
  a score of 0.28 at the default size, where 1000 and 1001 score 0.18, under the threshold.)"""
  return (render_frames(frames_per_shot, width, height, seed=1006 + 2 * seed) +
          render_frames(frames_per_shot, width, height, seed=1007 + 2 * seed))


if __name__ == '__main__':
  flags.exit_with(flags.run_command(main))
