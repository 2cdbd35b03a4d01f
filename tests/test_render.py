"""Tests for film_net.render: exact middle frames, ranges, determinism, motion bounds, speed."""

import os
import sys
import time

import numpy as np
import pytest

from film_net import render


def _texture(seed=0, h=90, w=110):
  return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def _shifted(image, dx, dy):
  """image content moved by (dx, dy) pixels; the uncovered border is dropped by the callers."""
  return np.roll(image, (dy, dx), axis=(0, 1))


@pytest.mark.parametrize('velocity, pan', [((6.0, -4.0), (0.0, 0.0)),
                                           ((0.0, 0.0), (-8.0, 2.0)),
                                           ((4.0, 2.0), (2.0, -6.0))])
def test_middle_frame_of_an_even_translation_is_the_shifted_first_frame(velocity, pan):
  layer = render.Layer(_texture(), texture_offset=(3.0, 5.0), center=(20.0, 16.0),
                       velocity=velocity)
  scene = render.Scene(40, 48, [layer], pan=pan)
  x0, mid, x1 = (render.render(scene, t) for t in (0.0, 0.5, 1.0))
  dx, dy = int(velocity[0] + pan[0]), int(velocity[1] + pan[1])
  assert render.max_motion(scene) == pytest.approx(np.hypot(dx, dy))
  m = 10  # ignore the border where content enters or leaves
  inner = (slice(m, -m), slice(m, -m))
  np.testing.assert_array_equal(mid[inner], _shifted(x0, dx // 2, dy // 2)[inner])
  np.testing.assert_array_equal(x1[inner], _shifted(x0, dx, dy)[inner])
  assert not np.array_equal(mid[inner], x0[inner])


def test_occluding_layer_moving_evenly_shifts_exactly_over_a_still_background():
  background = render.Layer(_texture(1), texture_offset=(0.0, 0.0), center=(24.0, 20.0))
  disc = render.Layer(_texture(2), texture_offset=(40.0, 40.0), center=(20.0, 20.0),
                      velocity=(8.0, 0.0), mask=(9.0, 7.0, 2, np.zeros((0, 3)), 1.0))
  scene = render.Scene(40, 48, [background, disc])
  x0, mid = render.render(scene, 0.0), render.render(scene, 0.5)
  still = render.render(render.Scene(40, 48, [background]), 0.0)
  # Far from the disc both frames show the background; inside it, mid is x0 shifted by 4 px.
  np.testing.assert_array_equal(mid[:, 40:], still[:, 40:])
  inside = (slice(15, 26), slice(15, 26))  # the disc, 9 x 7 px half-axes, centred at (20, 20)
  np.testing.assert_array_equal(mid[inside], _shifted(x0, 4, 0)[inside])


def test_render_triplet_middle_is_the_scene_at_half_time():
  x0, mid, x1 = render.render_triplet(np.random.default_rng(5), 64, 80)
  scene = render.random_scene(np.random.default_rng(5), 64, 80)
  np.testing.assert_array_equal(mid, render.render(scene, 0.5))
  np.testing.assert_array_equal(x0, render.render(scene, 0.0))
  np.testing.assert_array_equal(x1, render.render(scene, 1.0))


def test_outputs_are_float32_in_range_and_deterministic_by_seed():
  first = render.render_triplet(np.random.default_rng(3), 48, 64)
  again = render.render_triplet(np.random.default_rng(3), 48, 64)
  other = render.render_triplet(np.random.default_rng(4), 48, 64)
  for frame, same in zip(first, again):
    assert frame.shape == (48, 64, 3) and frame.dtype == np.float32
    assert frame.min() >= 0.0 and frame.max() <= 1.0
    np.testing.assert_array_equal(frame, same)
  assert not np.array_equal(first[1], other[1])


def test_without_scikit_image_training_says_its_scenes_lose_the_photographs(monkeypatch,
                                                                               caplog):
  """`pip install .[cpu]` has no scikit-image: training went on silently on procedural
  textures alone, not the data the built-in model was trained on."""
  monkeypatch.setitem(sys.modules, 'skimage.data', None)  # an import of it fails
  render.natural_images.cache_clear()
  try:
    assert render.natural_images() == ()
  finally:
    render.natural_images.cache_clear()
  assert 'scikit-image is not installed' in caplog.text and '.[train]' in caplog.text


def test_natural_images_ship_with_scikit_image():
  pytest.importorskip('skimage')
  images = render.natural_images()
  assert len(images) >= 10
  assert all(image.min() >= 0 and image.max() <= 1 for image, _ in images)
  assert not any('motorcycle' in name for name in render.NATURAL_IMAGES)  # Middlebury stereo


def test_motion_stays_within_bounds_and_spans_the_range():
  h, w = 64, 128
  motions = []
  for seed in range(40):
    scene = render.random_scene(np.random.default_rng(seed), h, w)
    motion = render.max_motion(scene)
    assert 2.0 * 0.98 <= motion <= w / 8 * 1.001
    motions.append(motion)
    # Independent check of the corner argument: track points of every layer directly.
    points = np.random.default_rng(seed).uniform(-80, 80, (2, 400))
    homogeneous = np.vstack([points, np.ones(400)])
    for layer in scene.layers:
      p0 = (render.layer_to_frame(scene, layer, 0.0) @ homogeneous)[:2]
      p1 = (render.layer_to_frame(scene, layer, 1.0) @ homogeneous)[:2]
      visible = (p0[0] >= 0) & (p0[0] <= w - 1) & (p0[1] >= 0) & (p0[1] <= h - 1)
      assert np.all(np.hypot(*(p1 - p0))[visible] <= motion + 1e-6)
  assert min(motions) < 5.0 and max(motions) > w / 8 * 0.6


def test_render_is_fast():
  rng = np.random.default_rng(0)
  render.render_triplet(rng, 128, 128)  # loads the texture banks
  start = time.process_time()
  for _ in range(20):
    render.render_triplet(rng, 128, 128)
  per_triplet = (time.process_time() - start) / 20
  # About 5-10 ms on an idle core. CPU time, not wall time: other work sharing the cores (the
  # other test worker, other users) slows the clock, not what rendering costs.
  assert per_triplet < 0.05, f'{per_triplet * 1e3:.1f} ms per 128x128 triplet'


def test_augment_keeps_the_middle_and_shapes():
  rng = np.random.default_rng(0)
  x0, y, x1 = (np.full((6, 10, 3), v, np.float32) for v in (0.0, 0.5, 1.0))
  x0[0, 0] = 0.25
  seen_reversed = False
  for _ in range(20):
    a, b, c = render.augment(rng, x0, y, x1)
    assert a.shape == b.shape == c.shape == (6, 10, 3)
    np.testing.assert_array_equal(b, y)
    seen_reversed |= a.max() == 1.0
  assert seen_reversed


def _dihedral(image):
  """The 8 flips and rotations of a square image."""
  turns = [np.rot90(image, k) for k in range(4)]
  return turns + [t[:, ::-1] for t in turns]


def test_augment_views_are_distinct_flips_and_rotations_of_one_triplet():
  rng = np.random.default_rng(1)
  x0, y, x1 = rng.random((3, 8, 8, 3), np.float32)
  views = render.augment_views(rng, x0, y, x1, 8)
  middles = [v[1] for v in views]
  # Each middle frame is one of y's 8 transforms, and all 8 appear once.
  matches = [[np.array_equal(m, t) for t in _dihedral(y)] for m in middles]
  assert all(sum(row) == 1 for row in matches)
  assert sorted(row.index(True) for row in matches) == list(range(8))
  for (a, b, c), row in zip(views, matches):  # the outer frames move with it, maybe swapped
    k = row.index(True)
    assert {a.tobytes(), c.tobytes()} == {_dihedral(x0)[k].tobytes(), _dihedral(x1)[k].tobytes()}
  assert any(np.array_equal(v[0], _dihedral(x1)[matches[i].index(True)])
             for i, v in enumerate(views))  # some views run backwards in time
  wide = [f[:, :6] for f in (x0, y, x1)]
  assert len({v[1].tobytes() for v in render.augment_views(rng, *wide, 4)}) == 4
  with pytest.raises(ValueError, match='between 1 and 4'):
    render.augment_views(rng, *wide, 5)


def test_held_out_triplets_are_written_in_the_middlebury_layout(tmp_path):
  assert render.main(['--output', str(tmp_path), '--count', '2', '--size', '32',
                      '--seed', '4']) == 0
  first = tmp_path / '0000'
  assert sorted(p.name for p in first.iterdir()) == sorted(render.TRIPLET_NAMES)
  x0, mid, x1 = render.render_triplet(np.random.default_rng([4, 0, 1]), 32, 32)
  from film_net import image_io
  for name, image in zip(render.TRIPLET_NAMES, (x0, mid, x1)):
    written = np.round(image_io.read_rgb(str(first / name)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(written, image_io.to_uint8(image))
  assert not np.array_equal(image_io.read_rgb(str(tmp_path / '0001' / 'frame10.png')),
                            image_io.read_rgb(str(first / 'frame10.png')))


def test_small_objects_are_small_and_travel_further_than_their_size():
  h = w = 128
  fast_small = 0
  for seed in range(20):
    scene = render.random_scene(np.random.default_rng(seed), h, w, max_motion_px=40,
                                small_objects=3)
    assert render.max_motion(scene) <= 40 * 1.001
    for layer in scene.layers[1:]:
      size = max(layer.mask[0], layer.mask[1]) * np.exp(layer.log_scale)  # half-axis, frame px
      if size > 0.06 * h:
        continue
      start, end = (render.layer_to_frame(scene, layer, t)[:2, 2] for t in (0.0, 1.0))
      fast_small += np.hypot(*(end - start)) > 2 * size
  assert fast_small >= 5  # balls and birds, not only large slow shapes


def test_scene_options_at_zero_leave_the_random_stream_unchanged():
  plain = render.render_triplet(np.random.default_rng(11), 48, 48)
  zero = render.render_triplet(np.random.default_rng(11), 48, 48, small_objects=0,
                               regular_share=0.0, motion_blur=0.0, deform=0.0, static_share=0.0)
  extended = render.render_triplet(np.random.default_rng(11), 48, 48, small_objects=3,
                                   regular_share=0.5, motion_blur=0.5, deform=0.5,
                                   static_share=0.5)
  for a, b in zip(plain, zero):
    np.testing.assert_array_equal(a, b)  # earlier training runs stay reproducible
  assert not np.array_equal(plain[0], extended[0])


def test_regular_patterns_are_sharp_periodic_textures():
  bank = render.regular_patterns()
  assert len(bank) >= 12
  for pattern in bank:
    assert pattern.shape == (256, 256, 1) and pattern.dtype == np.float32
    assert pattern.min() >= 0.0 and pattern.max() <= 1.0
    assert pattern.max() - pattern.min() > 0.2
  stripes = bank[0][..., 0]
  profile = stripes[0] if np.ptp(stripes[:, 0]) < 1e-6 else stripes[:, 0]
  assert np.sum(np.abs(np.diff(profile > 0.5))) >= 256 / 16  # many edges: a fine period
  scene = render.random_scene(np.random.default_rng(2), 64, 64, regular_share=1.0)
  assert all(any(layer.texture is p for p in bank) for layer in scene.layers)


def test_motion_blur_averages_the_scene_over_the_open_shutter():
  layer = render.Layer(_texture(3), texture_offset=(0.0, 0.0), center=(24.0, 20.0),
                       velocity=(8.0, 0.0))
  scene = render.Scene(40, 48, [layer])
  blurred = render.render_exposed(scene, (0.0, 0.5, 1.0), shutter=0.25, samples=5)
  instants = 0.5 + (np.arange(5) - 2) * 0.05  # five instants spread over 0.5 +- 0.125
  np.testing.assert_allclose(blurred[1], np.mean([render.render(scene, t) for t in instants], 0),
                             atol=1e-6)
  sharp = render.render_times(scene, (0.0, 0.5, 1.0))
  np.testing.assert_array_equal(render.render_exposed(scene, (0.0, 0.5, 1.0), 0.0), sharp)
  detail = lambda image: float(np.abs(np.diff(image[5:-5, 5:-5], axis=1)).mean())
  assert detail(blurred[1]) < 0.8 * detail(sharp[1])  # smeared along the motion
  stripes = np.repeat(_texture(4, w=1), 110, axis=1)  # varies along y only
  across = render.Scene(40, 48, [render.Layer(stripes, texture_offset=(0.0, 0.0),
                                              center=(24.0, 20.0), velocity=(8.0, 0.0))])
  np.testing.assert_allclose(render.render_exposed(across, (0.5,), 0.25)[0],
                             render.render(across, 0.5), atol=1e-6)  # not across it
  still = render.Scene(40, 48, [render.Layer(_texture(3), texture_offset=(0.0, 0.0),
                                             center=(24.0, 20.0))])
  np.testing.assert_allclose(render.render_exposed(still, (0.5,), 0.25)[0],
                             render.render(still, 0.5), atol=1e-6)  # nothing moves, no blur


def test_motion_blur_share_blurs_about_that_share_of_triplets():
  def blurred(seed):
    rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
    triplet = render.render_triplet(rng, 48, 48, motion_blur=0.5)
    scene = render.random_scene(ref, 48, 48)
    return not np.array_equal(triplet[1], render.render(scene, 0.5))
  share = np.mean([blurred(seed) for seed in range(40)])
  assert 0.25 < share < 0.75


def _displacements(scene, layer, points):
  """Where the layer point seen at frame `points` (2, N) at t = 0 is seen at t = 1."""
  def seen_at(p, t):  # frame pixel -> frame pixel of the rigid layer at time t
    d = np.zeros_like(p)
    if layer.deform is not None:
      dx, dy = layer.deformation(p[0][None].astype(np.float32), p[1][None].astype(np.float32))
      d = np.vstack([dx, dy]).astype(float)
    return p + (t - 0.5) * d
  to0, to1 = (render.layer_to_frame(scene, layer, t) for t in (0.0, 1.0))
  homogeneous = lambda p: np.vstack([p, np.ones(p.shape[1])])
  u = np.linalg.solve(to0, homogeneous(seen_at(points, 0.0)))  # layer coordinates
  target = (to1 @ u)[:2]
  end = target.copy()
  for _ in range(50):  # end + 0.5 D(end) = target, by fixed-point iteration
    end = target - (seen_at(end, 1.0) - end)
  return end - points


def test_deforming_layers_move_non_rigidly_within_the_motion_bound():
  h, w = 96, 128
  deforming = 0
  for seed in range(12):
    scene = render.random_scene(np.random.default_rng(seed), h, w, deform=1.0, max_motion_px=16)
    bound = render.max_motion(scene)
    assert bound <= 16 * 1.001
    points = np.random.default_rng(seed).uniform([[0], [0]], [[w - 1], [h - 1]], (2, 300))
    for layer in scene.layers:
      moved = _displacements(scene, layer, points)
      assert np.hypot(*moved).max() <= bound * 1.02 + 1e-6
      if layer.deform is None:
        continue
      deforming += 1
      # Not an affine motion: an affine fit leaves a residual of a sizeable share of the motion.
      design = np.vstack([points, np.ones(points.shape[1])]).T
      fit, *_ = np.linalg.lstsq(design, moved.T, rcond=None)
      residual = np.abs(design @ fit - moved.T).max()
      assert residual > 0.2 * layer.deform_bound()
  assert deforming >= 10


def test_deforming_scene_is_its_rigid_self_at_half_time():
  scene = render.random_scene(np.random.default_rng(1), 128, 128, deform=1.0, max_motion_px=16)
  assert any(layer.deform is not None for layer in scene.layers)
  frames = render.render_times(scene, (0.0, 0.5, 1.0))
  for layer in scene.layers:
    layer.deform = None
  rigid = render.render_times(scene, (0.0, 0.5, 1.0))
  np.testing.assert_array_equal(frames[1], rigid[1])
  assert np.abs(frames[0] - rigid[0]).max() > 0.02 and np.abs(frames[2] - rigid[2]).max() > 0.02


def test_tripod_scenes_keep_camera_and_background_exactly_still():
  moving_layers = 0
  for seed in range(8):
    scene = render.random_scene(np.random.default_rng(seed), 64, 96, static_share=1.0,
                                max_motion_px=12)
    assert scene.pan == (0.0, 0.0) and scene.log_zoom == 0.0 and scene.roll == 0.0
    background, *others = scene.layers
    for t in (0.0, 1.0):
      np.testing.assert_array_equal(render.layer_to_frame(scene, background, t),
                                    render.layer_to_frame(scene, background, 0.5))
    if others:
      moving_layers += 1
      assert render.max_motion(scene) > 1.9  # the motion target (>= 2 px) went to the layers
  assert moving_layers >= 4
  # Nothing but the background (and no brightness ramp): the three frames are one picture.
  scene = render.random_scene(np.random.default_rng(3), 64, 96, max_layers=0, static_share=1.0)
  scene.brightness = 0.0
  x0, mid, x1 = render.render_times(scene, (0.0, 0.5, 1.0))
  np.testing.assert_array_equal(x0, mid)
  np.testing.assert_array_equal(x1, mid)
  # At a share of one half, about half the scenes are tripod shots.
  scenes = [render.random_scene(np.random.default_rng(100 + i), 32, 32, static_share=0.5)
            for i in range(60)]
  still = sum(scene.layers[0].velocity == (0.0, 0.0) for scene in scenes)
  assert 18 <= still <= 42


@pytest.mark.parametrize('power', [2, 4, 8])
def test_a_turned_layer_is_drawn_whole_not_cut_at_its_footprint(power, monkeypatch):
  # A square-ish superellipse reaches 2^(1/2 - 1/p) of its half-axis along its diagonals: a
  # footprint of the half-axis alone cut its corners once the layer turned.
  plain = np.ones((64, 64, 1), np.float32)
  background = render.Layer(texture=np.zeros((8, 8, 3), np.float32), texture_offset=(0, 0),
                            center=(63.5, 63.5))
  layer = render.Layer(texture=plain, texture_offset=(0, 0), center=(64.0, 64.0),
                       angle=np.pi / 4, mask=(40.0, 40.0, power, np.zeros((0, 3)), 1.0),
                       tint=(np.zeros(3, np.float32), np.ones(3, np.float32)))
  scene = render.Scene(128, 128, [background, layer])
  drawn = render.render(scene, 0.5)
  radius = render.Layer.radius
  monkeypatch.setattr(render.Layer, 'radius',
                      lambda self: 3 * radius(self) if self.mask is not None else np.inf)
  np.testing.assert_array_equal(drawn, render.render(scene, 0.5))


def test_held_out_sets_never_mix_and_motion_under_2_px_is_kept(tmp_path):
  render.write_triplets(str(tmp_path / 'set'), 1, 32, seed=0)
  with pytest.raises(ValueError, match='is not empty'):
    render.write_triplets(str(tmp_path / 'set'), 2, 48, seed=0)
  assert sorted(os.listdir(tmp_path / 'set')) == ['0000']
  (tmp_path / 'a_file').write_text('x')  # a traceback from the first triplet's mkdir, once
  with pytest.raises(ValueError, match='a_file is a file: --output names the folder'):
    render.write_triplets(str(tmp_path / 'a_file'), 1, 32, seed=0)
  scene = render.random_scene(np.random.default_rng(3), 64, 64, max_motion_px=0.5)
  assert 0 < render.max_motion(scene) <= 0.5 + 1e-6


def test_flags_out_of_range_are_usage_errors_naming_the_flag(tmp_path, capsys):
  """Each of these wrote a set (or nothing, saying so), or failed without naming the flag."""
  bad = [('--regular_share', '2', 'in [0, 1]'), ('--motion_blur', '-1', 'in [0, 1]'),
         ('--deform', '1.5', 'in [0, 1]'), ('--static_share', '7', 'in [0, 1]'),
         ('--count', '-1', '>= 1'), ('--small_objects', '-2', '>= 0'), ('--seed', '-1', '>= 0'),
         ('--size', '0', 'in [32, 4096]'), ('--size', '3', 'in [32, 4096]'),
         # a memory traceback, a hang in the motion's rescaling, an overflow's traceback:
         ('--size', '100000', 'in [32, 4096]'), ('--max_motion', '0', 'in [0.01, 2048.0]'),
         ('--max_motion', '1e-14', 'in [0.01, 2048.0]'),
         ('--max_motion', '1e7', 'in [0.01, 2048.0]')]
  for flag, value, allowed in bad:
    with pytest.raises(SystemExit) as stop:
      render.main(['--output', str(tmp_path / 'set'), flag, value])
    assert stop.value.code == 2, flag
    assert f'argument {flag}: must be {allowed}, got {value}' in capsys.readouterr().err
  # Within its range, but 64 frame sides: a scene's zoom overflowed as it was rescaled.
  with pytest.raises(SystemExit) as stop:
    render.main(['--output', str(tmp_path / 'set'), '--size', '32', '--max_motion', '2048'])
  assert stop.value.code == 2 and ('--max_motion 2048 is more than 8 times --size 32 (256 px)'
                                   in capsys.readouterr().err)
  assert not (tmp_path / 'set').exists()
  # A bucket wrote a local folder named 'gs:'; a folder below a file was a traceback.
  (tmp_path / 'a_file').write_text('')
  for output, message in (
      ('gs://bucket/set', '--output must be a local folder; got gs://bucket/set'),
      (str(tmp_path / 'a_file' / 'set'), f'--output {tmp_path / "a_file" / "set"}: '
                                         f'{tmp_path / "a_file"} is a file, not a folder')):
    with pytest.raises(SystemExit) as stop:
      render.main(['--output', output, '--count', '1', '--size', '32'])
    assert stop.value.code == 2 and message in capsys.readouterr().err
  assert not os.path.exists('gs:')
  assert render.main(['--output', str(tmp_path / 'set'), '--count', '1', '--size', '32',
                      '--seed', '0', '--regular_share', '1', '--motion_blur', '1',
                      '--deform', '1', '--static_share', '1']) == 0
