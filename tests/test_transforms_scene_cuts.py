"""Scene-cut detection: motion, relighting and the same frame are no cut; two shots are."""

import numpy as np

from film_net import render
from transforms import scene_cuts

CUT = scene_cuts.DEFAULT_THRESHOLD


def _shot(seed, motion=12.0, height=96, width=128):
  """A rendered scene's outer frames (motion up to `motion` px between them)."""
  x0, _, x1 = render.render_triplet(np.random.default_rng([seed, 77]), height, width,
                                    max_motion_px=motion, small_objects=2, regular_share=0.3)
  return x0, x1


def test_motion_and_relighting_within_a_shot_are_no_cut():
  for seed in range(8):
    x0, x1 = _shot(seed, motion=16.0)  # an eighth of the width
    assert scene_cuts.cut_score(x0, x0) < 1e-6
    assert scene_cuts.cut_score(x0, x1) < CUT, seed
    assert scene_cuts.cut_score(x0, x1 * np.float32(0.6)) < CUT, seed  # a flash or a fade step


def test_the_last_frame_of_one_shot_and_the_first_of_another_are_a_cut():
  shots = [_shot(seed) for seed in range(8)]
  scores = [scene_cuts.cut_score(shots[i][1], shots[i + 1][0]) for i in range(7)]
  assert sum(s > CUT for s in scores) >= 6, scores
  assert all(0.0 <= s <= 1.0 for s in scores)


def test_black_and_white_frames_and_fade_steps_are_no_cut_either_way():
  """A black or white frame has nothing to compare: as the first of a pair it matched nothing
  and was a cut (the frame after a fade to black or a white flash held), as the second no cut."""
  for seed in range(4):
    x0, x1 = _shot(seed)
    black, white = np.zeros_like(x0), np.ones_like(x0)
    for pair in ((black, x1), (x0, black), (white, x1), (x0, white),
                 (black, x1 * np.float32(0.15)), (x0 * np.float32(0.15), black)):
      assert scene_cuts.cut_score(*pair) < CUT, seed
  # Burnt out in part, what is left is compared: another shot beside a flash is still a cut.
  other, _ = _shot(9)
  assert scene_cuts.cut_score(np.clip(x0 * 1.5, 0, 1), other) > CUT


def test_blocks_are_matched_across_a_pan_of_a_quarter_of_the_width():
  x0, _ = _shot(5, height=96, width=160)
  panned = np.roll(x0, 40, axis=1)
  assert scene_cuts.structure_change(scene_cuts.thumbnail(x0), scene_cuts.thumbnail(panned)) < 0.05
  other, _ = _shot(4, height=96, width=160)
  assert scene_cuts.structure_change(scene_cuts.thumbnail(x0), scene_cuts.thumbnail(other)) > CUT


def test_the_colours_are_compared_whatever_the_exposure():
  for seed in range(4):
    x0, _ = _shot(seed)
    darker = scene_cuts.thumbnail(x0 * np.float32(0.6))
    assert scene_cuts.colour_change(scene_cuts.thumbnail(x0), darker) < 0.1, seed


def test_the_colours_are_compared_whatever_the_contrast():
  """A log scan's flat code values, or a fade toward grey, is no colour change; another shot
  in the same flat contrast still is."""
  def flat(x):
    return np.float32(0.35) + np.float32(0.3) * x
  for seed in range(4):
    x0, _ = _shot(seed)
    _, other = _shot(seed + 10)
    thumb, flat_thumb = scene_cuts.thumbnail(x0), scene_cuts.thumbnail(flat(x0))
    assert scene_cuts.colour_change(thumb, flat_thumb) < 0.1, seed
    assert scene_cuts.colour_change(flat_thumb, scene_cuts.thumbnail(flat(other))) > CUT, seed


def test_thumbnail_is_the_area_average():
  rng = np.random.default_rng(0)
  blocks = rng.random((12, 32, 3)).astype(np.float32)
  frame = np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)  # 48x128
  np.testing.assert_allclose(scene_cuts.thumbnail(frame, 128), frame, rtol=1e-6)
  np.testing.assert_allclose(scene_cuts.thumbnail(frame, 32), blocks, rtol=1e-6)
  small = rng.random((5, 7, 3)).astype(np.float32)  # narrower than the thumbnail: unchanged
  np.testing.assert_allclose(scene_cuts.thumbnail(small), small, rtol=1e-6)


def test_a_tall_frame_is_thumbnailed_within_the_square_of_a_wide_one():
  """Portrait footage costs what landscape does: the thumbnail bounds the longer side."""
  rng = np.random.default_rng(2)
  tall = rng.random((2000, 64, 3)).astype(np.float32)
  assert scene_cuts.thumbnail(tall).shape == (64, 2, 3)
  assert scene_cuts.thumbnail(tall.transpose(1, 0, 2)).shape == (2, 64, 3)
  x0, x1 = _shot(6, height=160, width=96)
  assert scene_cuts.cut_score(x0, x1) < CUT


def test_a_frames_thumbnail_from_its_pixels_is_that_of_its_rgb_view():
  """The pipeline thumbnails decoded frames from their integer pixels: gray, alpha and 16 bit
  must give what `Frame.rgb()` would."""
  from transforms import images  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(3)
  for channels, dtype in ((1, np.uint8), (2, np.uint8), (3, np.uint16), (4, np.uint8)):
    top = np.iinfo(dtype).max
    frame = images.Frame(rng.integers(0, top, (50, 90, channels), endpoint=True).astype(dtype))
    np.testing.assert_allclose(scene_cuts.frame_thumbnail(frame),
                               scene_cuts.thumbnail(frame.rgb()), atol=1e-6)


def test_tiny_and_flat_frames_score_without_error():
  rng = np.random.default_rng(1)
  a, b = rng.random((3, 5, 3)).astype(np.float32), rng.random((3, 5, 3)).astype(np.float32)
  assert 0.0 <= scene_cuts.cut_score(a, b) <= 1.0
  black = np.zeros((48, 64, 3), np.float32)
  grain = black + rng.normal(0, 0.002, black.shape).astype(np.float32).clip(0, 1)
  assert scene_cuts.cut_score(black, black) == 0.0
  assert scene_cuts.structure_change(scene_cuts.thumbnail(black),
                                     scene_cuts.thumbnail(grain)) < CUT


def test_each_inbetween_of_a_cut_holds_the_nearer_original():
  assert [scene_cuts.held_frame(k, 2) for k in (1,)] == [0]
  assert [scene_cuts.held_frame(k, 4) for k in (1, 2, 3)] == [0, 0, 1]
  assert [scene_cuts.held_frame(k, 8) for k in range(1, 8)] == [0, 0, 0, 0, 1, 1, 1]
