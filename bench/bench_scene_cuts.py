"""How well the pipeline's scene-cut detection (transforms/scene_cuts.py) tells cuts from motion.

    .venv/bin/python bench/bench_scene_cuts.py [--count 150] \
        [--data ../shared/data/middlebury-other]

Rendered sets (film_net.render, seeds apart from training's and the held-out sets'): each scene's
outer frames are a pair that is not a cut (motion up to the set's bound, with small fast
objects, stripes, motion blur, non-rigid layers and tripod shots mixed in as in training), and
so is the same pair with the second frame 40% darker (a flash or a fade step); the last frame
of one scene and the first of the next are a cut. Flashes and fades are non-cuts of their own
(`flashes_and_fades`): a frame burnt out by a flash (x2, x4) before or after the other, a
black or white frame before or after it, a fade step out of black. For each threshold: the
share of non-cuts called cuts (their in-betweens would hold a frame mid-motion: a stutter) and
of cuts found (a missed one is cross-faded, as without detection). `--data` folders in
Middlebury's layout (frame10.png, frame11.png) are scored the same way, real motion against cuts
between their sequences: reported, not chosen on. Last, the cost of scoring a 1920x1080 pair as
the pipeline does against one built-in model mid frame, in the same run (`--no_model` skips that).
`--log` scores every set again as Cineon log code values, as a DPX scan holds them.
"""
import argparse
import glob
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from film_net import image_io
from film_net import render
from bench_log_scans import to_log
from machine import machine_line
from transforms import images
from transforms import scene_cuts

THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
SCENE_OPTIONS = dict(small_objects=3, regular_share=0.3, deform=0.3, static_share=0.3)
# name: (height, width, max motion between the outer frames in px)
RENDERED = {
    '256x256, motion <= 1/8 width': (256, 256, 32),
    '216x384, motion <= 1/8 width': (216, 384, 48),
    '384x216 (portrait), motion <= 1/8 height': (384, 216, 48),
    '256x256, motion <= 1/4 width': (256, 256, 64),
}


def rendered_pairs(height, width, motion, count, seed):
  """(non-cuts, cuts) from `count` rendered scenes."""
  triplets = [render.render_triplet(np.random.default_rng([seed, i, 11]), height, width,
                                    motion_blur=0.3, max_motion_px=motion, **SCENE_OPTIONS)
              for i in range(count)]
  same = [(x0, x1) for x0, _, x1 in triplets]
  same += [(x0, x1 * np.float32(0.6)) for x0, _, x1 in triplets]
  cuts = [(triplets[i][2], triplets[i + 1][0]) for i in range(count - 1)]
  return same, cuts


def flashes_and_fades(same):
  """Non-cuts a flash or a fade makes of each pair (x0, x1): a frame burnt out (x2 or x4,
  clipped) on either side, black or white on either side, a fade step out of black."""
  def burnt(x, gain):
    return np.clip(x * np.float32(gain), 0, 1)
  pairs = []
  for x0, x1 in same:
    black, white = np.zeros_like(x0), np.ones_like(x0)
    pairs += [(burnt(x0, 4), x1), (x0, burnt(x1, 4)), (burnt(x0, 2), x1), (x0, burnt(x1, 2)),
              (black, x1), (x0, black), (white, x1), (x0, white),
              (black, x1 * np.float32(0.15)), (x0 * np.float32(0.15), x1 * np.float32(0.5))]
  return pairs


def folder_pairs(root):
  """(non-cuts, cuts) from triplet folders: frame10 -> frame11 of each, frame11 of one ->
  frame10 of every other (cropped to the smaller size)."""
  folders = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(root, '*', 'frame10.png')))
  frames = {f: (image_io.read_rgb(os.path.join(f, 'frame10.png')),
                image_io.read_rgb(os.path.join(f, 'frame11.png'))) for f in folders}
  same = [frames[f] for f in folders]
  cuts = []
  for a in folders:
    for b in folders:
      if a != b:
        x, y = frames[a][1], frames[b][0]
        h, w = min(x.shape[0], y.shape[0]), min(x.shape[1], y.shape[1])
        cuts.append((x[:h, :w], y[:h, :w]))
  return same, cuts


def as_log(pairs):
  """The pairs as a log scan holds them: Cineon code values."""
  return [(to_log(a), to_log(b)) for a, b in pairs]


def report(name, same, cuts):
  s = np.array([scene_cuts.cut_score(a, b) for a, b in same])
  c = np.array([scene_cuts.cut_score(a, b) for a, b in cuts] or [np.nan])
  print(f'\n{name}: {len(same)} non-cuts (score median {np.median(s):.3f}, max {s.max():.3f}), '
        f'{len(cuts)} cuts (median {np.median(c):.3f}, min {c.min():.3f})')
  print('  threshold  non-cuts called cuts  cuts found')
  for t in THRESHOLDS:
    mark = '  <- default' if t == scene_cuts.DEFAULT_THRESHOLD else ''
    print(f'  {t:9.2f}  {np.sum(s > t):4d} ({np.mean(s > t):6.1%})      '
          f'{np.sum(c > t):4d} ({np.mean(c > t):6.1%}){mark}')


def timing(with_model):
  """A 1920x1080 pair scored as the pipeline scores it: each frame's thumbnail made once from
  its 8-bit pixels (every frame is in two pairs, so one per pair), then the score."""
  rng = np.random.default_rng(0)
  x0, _, x1 = render.render_triplet(rng, 1080, 1920, max_motion_px=120)
  frames = [images.Frame(image_io.to_uint8(x)) for x in (x0, x1)]
  thumbs = [scene_cuts.frame_thumbnail(f) for f in frames]
  scene_cuts.thumbnail_score(*thumbs)
  started = time.perf_counter()
  for _ in range(5):
    scene_cuts.frame_thumbnail(frames[1])
    scene_cuts.thumbnail_score(*thumbs)
  score_s = (time.perf_counter() - started) / 5
  line = f'\n1920x1080 pair, as the pipeline scores it: {score_s * 1000:.0f} ms'
  if with_model:
    from film_net import Interpolator  # pylint: disable=import-outside-toplevel
    model = Interpolator.from_path(None, align=64)
    model(x0, x1)
    started = time.perf_counter()
    model(x0, x1)
    model_s = time.perf_counter() - started
    line += (f', one built-in model mid frame {model_s:.2f} s (as the pipeline runs it): '
             f'{score_s / model_s:.4f} of it')
  print(line)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--count', type=int, default=150, help='rendered scenes per set')
  parser.add_argument('--seed', type=int, default=3000)
  parser.add_argument('--data', action='append', default=[],
                      help='a folder of triplet folders (Middlebury layout), repeatable')
  parser.add_argument('--no_model', action='store_true', help='time the score alone')
  parser.add_argument('--sets', default='',
                      help='score only the rendered sets whose name contains this (e.g. portrait)')
  parser.add_argument('--no_timing', action='store_true', help='skip the 1080p timing')
  parser.add_argument('--log', action='store_true',
                      help='also score every set as Cineon log code values (scans as DPX '
                           'holds them; bench/bench_log_scans.py)')
  args = parser.parse_args(argv)
  print(f'{machine_line()}; default threshold {scene_cuts.DEFAULT_THRESHOLD}')
  sets = [(f'rendered {name}', rendered_pairs(height, width, motion, args.count, args.seed))
          for name, (height, width, motion) in RENDERED.items() if args.sets in name]
  sets += [(root, folder_pairs(root)) for root in args.data]
  for name, (same, cuts) in sets:
    report(name, same, cuts)
    fades = flashes_and_fades(same[:len(same) // 2] if name.startswith('rendered') else same)
    report(f'{name}, flashes and fades', fades, [])
    if args.log:
      report(f'{name}, as log code values', as_log(same), as_log(cuts))
      report(f'{name}, flashes and fades as log code values', as_log(fades), [])
  if not args.no_timing:
    timing(not args.no_model)


if __name__ == '__main__':
  main()
