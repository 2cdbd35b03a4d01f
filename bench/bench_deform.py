"""How the model copes with non-rigid motion: rendered scenes with `--deform`-style layers
against the very same scenes moving rigidly.

    .venv/bin/python bench/bench_deform.py [--model_path P] [--count 48]

Each scene (256x256, motion up to 40 px, small objects and periodic textures as in training
stages 5-8) is drawn with every foreground layer deforming (`render.random_scene(deform=1.0)`),
rendered, then rendered again with the deformations removed, so the pairs differ only in the
non-rigid part of the motion; the model's PSNR on both (prediction clipped to [0, 1], run as
`Interpolator.from_path` runs it by default, unpadded) says what that part costs it. A
measurement for deciding whether training needs such scenes, not a benchmark of the tool.
"""
import argparse
import copy
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from film_net import Interpolator
from film_net import render
from transforms.quality import psnr


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--model_path', default=None, help='default: the built-in model')
  parser.add_argument('--count', type=int, default=48)
  parser.add_argument('--seed', type=int, default=1000)
  args = parser.parse_args(argv)
  interp = Interpolator.from_path(args.model_path, align=None)
  scores = {'deforming': [], 'rigid': []}
  for i in range(10 * args.count):
    scene = render.random_scene(np.random.default_rng([args.seed, i, 7]), 256, 256,
                                max_motion_px=40, small_objects=3, regular_share=0.3, deform=1.0)
    if not any(layer.deform is not None for layer in scene.layers):
      continue  # a background-only scene has nothing to deform
    rigid = copy.deepcopy(scene)
    for layer in rigid.layers:
      layer.deform = None
    for name, version in (('deforming', scene), ('rigid', rigid)):
      x0, truth, x1 = render.render_times(version, (0.0, 0.5, 1.0))
      scores[name].append(float(psnr(np.clip(interp(x0[None], x1[None])[0], 0, 1), truth)))
    if len(scores['rigid']) == args.count:
      break
  deforming, rigid = np.array(scores['deforming']), np.array(scores['rigid'])
  print(f'{len(rigid)} scenes, model {interp.source} (flip_average={interp.flip_average}): '
        f'rigid {rigid.mean():.2f} dB, deforming {deforming.mean():.2f} dB, difference '
        f'{np.mean(deforming - rigid):+.2f} dB (sd {np.std(deforming - rigid):.2f}), '
        f'worse on {int(np.sum(deforming < rigid))}')


if __name__ == '__main__':
  main()
