"""Interpolator: alignment padding as FILM's tools do, any frame size, clear input errors."""
import concurrent.futures
import dataclasses
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from film_net import Interpolator, Options
from film_net import interpolator
from film_net import warp as warp_lib
from film_net import weights as weights_lib


@pytest.fixture(scope='module')
def interp():
  return Interpolator.random(Options.tiny(), seed=0, align=64)


def _frames(rng, *shape):
  return rng.random(shape, np.float32)


def _model_on(interp, x0, x1):
  """The raw model on frames as they are (no padding)."""
  pyr0, feat0 = interp.net.features(tf.constant(x0))
  pyr1, feat1 = interp.net.features(tf.constant(x1))
  return interp.net.interpolate_from_features(pyr0, feat0, pyr1, feat1)['image'].numpy()


def test_aligned_size_runs_the_model_directly(interp):
  rng = np.random.default_rng(0)
  x0, x1 = _frames(rng, 1, 64, 64, 3), _frames(rng, 1, 64, 64, 3)
  out = interp(x0, x1)
  assert out.shape == (1, 64, 64, 3) and out.dtype == np.float32
  np.testing.assert_allclose(out, _model_on(interp, x0, x1), atol=1e-6)


def test_unaligned_frames_are_zero_padded_centred_and_cropped_back(interp):
  rng = np.random.default_rng(1)
  x0, x1 = _frames(rng, 1, 37, 53, 3), _frames(rng, 1, 37, 53, 3)
  out = interp(x0, x1)
  assert out.shape == (1, 37, 53, 3)
  # 37x53 -> 64x64: pads of 27 and 11, the odd pixel bottom/right: offsets (13, 5).
  p0, p1 = (np.zeros((1, 64, 64, 3), np.float32) for _ in range(2))
  p0[:, 13:50, 5:58], p1[:, 13:50, 5:58] = x0, x1
  np.testing.assert_allclose(out, _model_on(interp, p0, p1)[:, 13:50, 5:58], atol=1e-6)


def test_mirror_padding_reflects_the_frame_into_the_border_and_marks_the_fingerprint():
  zeros = Interpolator.random(Options.tiny(), seed=0, align=64)
  mirror = Interpolator.random(Options.tiny(), seed=0, align=64, padding='mirror')
  rng = np.random.default_rng(1)
  x0, x1 = _frames(rng, 1, 37, 53, 3), _frames(rng, 1, 37, 53, 3)
  # The same offsets as zero padding, (13, 5), and the border the frame mirrored (edge repeated).
  box = ((0, 0), (13, 14), (5, 6), (0, 0))
  p0, p1 = np.pad(x0, box, mode='symmetric'), np.pad(x1, box, mode='symmetric')
  columns = [*range(4, -1, -1), *range(53), *range(52, 46, -1)]
  np.testing.assert_array_equal(p0[0, 12], x0[0, 0, columns])  # row 0, mirrored at both sides
  out = mirror(x0, x1)
  np.testing.assert_allclose(out, _model_on(mirror, p0, p1)[:, 13:50, 5:58], atol=1e-6)
  assert np.abs(out - zeros(x0, x1)).max() > 1e-3
  assert mirror.fingerprint == zeros.fingerprint + '+mirror_pad'
  # Frames smaller than the pad repeat the reflection; recursion pads each mid frame alike.
  tiny = _frames(rng, 3, 5, 7, 3)
  frames = mirror.recursive(list(tiny[:2]), times_to_interpolate=1)
  assert [f.shape for f in frames] == [(5, 7, 3)] * 3
  np.testing.assert_allclose(frames[1], mirror(tiny[:1], tiny[1:2])[0], atol=1e-6)
  with pytest.raises(ValueError, match='padding must be one of'):
    Interpolator.random(Options.tiny(), padding='reflect')


def test_no_alignment_runs_on_the_frames_as_they_are():
  interp = Interpolator.random(Options.tiny(), seed=0, align=None)
  rng = np.random.default_rng(2)
  x0, x1 = _frames(rng, 1, 40, 56, 3), _frames(rng, 1, 40, 56, 3)
  np.testing.assert_allclose(interp(x0, x1), _model_on(interp, x0, x1), atol=1e-6)
  with pytest.raises(ValueError, match='too small'):
    interp(x0[:, :6], x1[:, :6])


def test_batched_equals_single_and_unbatched(interp):
  rng = np.random.default_rng(3)
  x0, x1 = _frames(rng, 3, 48, 40, 3), _frames(rng, 3, 48, 40, 3)
  calls = interp.model_calls
  batched = interp(x0, x1)
  assert interp.model_calls == calls + 3  # (one a pair, as the pipeline's metrics count them)
  for i in range(3):
    np.testing.assert_allclose(batched[i], interp(x0[i], x1[i]), atol=1e-5)


def test_the_model_is_traced_once_for_every_frame_size_and_its_transpose():
  """A second frame size, or a non-square frame's flipped run, must not trace the model again
  (seconds per size with the built-in model); results match the model run on each size alone."""
  net = Interpolator.random(Options.tiny(), seed=0).net
  interp = Interpolator(net, align=None, flip_average=True, flip_weights='agreement',
                        warp_fn=warp_lib.warp)  # plain ops: no XLA compile per size
  rng = np.random.default_rng(3)
  for height, width in ((64, 96), (64, 64)):
    x0, x1 = _frames(rng, 1, height, width, 3), _frames(rng, 1, height, width, 3)
    plain = _model_on(interp, x0, x1)
    flipped = np.transpose(_model_on(interp, *(np.transpose(x, (0, 2, 1, 3)) for x in (x0, x1))),
                           (0, 2, 1, 3))
    out = interp(x0, x1)
    lower, upper = np.minimum(plain, flipped), np.maximum(plain, flipped)
    assert np.all(out >= lower - 1e-5) and np.all(out <= upper + 1e-5)  # a per-pixel mix
  assert interp._features.tracing_count() == 1
  assert interp._mid_and_disagreement.tracing_count() == 1


def test_threads_sharing_an_interpolator_run_the_model_one_at_a_time():
  """A pipeline's worker threads share one Interpolator: their calls must not run the model at
  once (each would add a call's activations), and each gets its own pair's frame."""
  interp = Interpolator.random(Options.tiny(), seed=0, align=64)
  running, most = [0], [0]
  guard = threading.Lock()
  mid = interp._mid

  def slow_mid(*args):
    with guard:
      running[0] += 1
      most[0] = max(most[0], running[0])
    time.sleep(0.05)
    try:
      return mid(*args)
    finally:
      with guard:
        running[0] -= 1

  rng = np.random.default_rng(9)
  pairs = [(_frames(rng, 1, 40, 56, 3), _frames(rng, 1, 40, 56, 3)) for _ in range(6)]
  alone = [interp(x0, x1) for x0, x1 in pairs]
  interp._mid = slow_mid
  calls, features = interp.model_calls, interp.feature_calls
  with concurrent.futures.ThreadPoolExecutor(6) as pool:
    together = list(pool.map(lambda pair: interp(*pair), pairs))
  assert most[0] == 1
  assert (interp.model_calls - calls, interp.feature_calls - features) == (6, 12)
  for a, b in zip(alone, together):
    np.testing.assert_array_equal(a, b)
  # Held exclusively, a whole recursion runs with no other thread's call between its calls
  # (whose frames' features would otherwise wait in memory meanwhile).
  order = []
  interp._mid = lambda *args: (order.append(threading.current_thread().name), slow_mid(*args))[1]
  frames = [x0[0] for x0, _ in pairs[:3]]

  def recursion():
    with interp.exclusively():
      return interp.recursive(frames, 2)

  with concurrent.futures.ThreadPoolExecutor(3, thread_name_prefix='t') as pool:
    first = pool.submit(recursion)
    while not order:
      time.sleep(0.01)
    others = [pool.submit(interp, *pairs[3]), pool.submit(interp, *pairs[4])]
    first.result(), [f.result() for f in others]
  assert len(order) == 6 + 2 and len(set(order[:6])) == 1 and order[0] not in order[6:]


def test_hd_frame(interp):
  rng = np.random.default_rng(4)
  x0, x1 = _frames(rng, 1, 720, 1280, 3), _frames(rng, 1, 720, 1280, 3)
  out = interp(x0, x1)
  assert out.shape == (1, 720, 1280, 3) and np.isfinite(out).all()


def test_output_is_not_clipped():
  # Random-init FILM predictions go outside [0, 1]; the released tools return them as they are.
  interp = Interpolator.random(Options.tiny(), seed=5)
  rng = np.random.default_rng(5)
  out = interp(_frames(rng, 1, 64, 64, 3), _frames(rng, 1, 64, 64, 3))
  assert out.min() < 0 or out.max() > 1


def test_grayscale_and_mismatched_pairs_are_rejected_clearly(interp):
  rng = np.random.default_rng(6)
  with pytest.raises(ValueError, match='RGB with 3 channels.*1 channel'):
    interp(_frames(rng, 1, 64, 64, 1), _frames(rng, 1, 64, 64, 1))
  with pytest.raises(ValueError, match='differ in size'):
    interp(_frames(rng, 1, 64, 64, 3), _frames(rng, 1, 64, 80, 3))
  with pytest.raises(ValueError, match='differ in size'):
    interp.recursive([_frames(rng, 64, 64, 3), _frames(rng, 48, 64, 3)], 1)


def test_pixels_that_are_not_floats_in_0_1_are_rejected_clearly(interp):
  rng = np.random.default_rng(7)
  x = _frames(rng, 40, 56, 3)
  with pytest.raises(ValueError, match='floats in \\[0, 1\\]; got uint8'):
    interp((x * 255).astype(np.uint8), (x * 255).astype(np.uint8))
  with pytest.raises(ValueError, match='0-255 pixels'):
    interp(x * 255, x * 255)
  with pytest.raises(ValueError, match='NaN'):
    interp(np.where(x > 0.999, np.nan, x), x)
  with pytest.raises(ValueError, match='2-D array.*grayscale'):
    interp(x[..., 0], x[..., 0])
  # A 1-D array was told to convert its "3 channels" to RGB; an empty one got NumPy's "zero-size
  # array to reduction operation minimum which has no identity".
  with pytest.raises(ValueError, match=r'must be \(H, W, 3\) or \(B, H, W, 3\); got an array of '
                                       r'shape \(3,\)$'):
    interp(x[0, 0], x[0, 0])
  with pytest.raises(ValueError, match=r'are empty: shape \(0, 56, 3\)'):
    interp(x[:0], x[:0])
  with pytest.raises(ValueError, match='must all be single frames or all batches'):
    interp(x, x[None])
  with pytest.raises(ValueError, match='single frames.*got a batch'):
    interp.recursive([x[None], x[None]], 1)


def test_weights_or_mid_frames_with_nan_or_infinity_are_errors_not_frames(tmp_path):
  """A diverged checkpoint's NaN weights ran, and every frame came out NaN: written as black
  pixels by the pipeline, scored as 'exact' by the evaluation. Now the file is refused, and a
  mid frame the model overflows in (finite weights) is an error naming the model."""
  weights = Interpolator.random(Options.tiny(), seed=3).net.released_weights()
  name = sorted(k for k in weights if k.endswith('bias'))[0]
  broken = {**weights, name: np.full_like(weights[name], np.nan)}
  with pytest.raises(ValueError, match=f'1 of its weight arrays hold NaN or infinite values '
                                       f'\\({name}\\)'):
    Interpolator.from_weights(broken, Options.tiny())
  np.savez(tmp_path / 'diverged.npz', **broken)
  with pytest.raises(ValueError, match=f'cannot load film_net model from .*diverged.npz: 1 of'):
    Interpolator.from_path(str(tmp_path / 'diverged.npz'), options=Options.tiny())
  huge = {k: v * 1e30 if k.endswith('kernel') else v for k, v in weights.items()}
  interp = Interpolator.from_weights(huge, Options.tiny(), source='huge.npz')
  x = _frames(np.random.default_rng(3), 64, 64, 3)
  with pytest.raises(ValueError, match=r'the model gave \d+ NaN or infinite values of 12288 in a '
                                       r'mid frame \(huge.npz\)'):
    interp(x, x[::-1])
  with pytest.raises(ValueError, match='NaN or infinite'):
    interp.recursive([x, x[::-1]], 2)


def test_frames_too_small_for_the_pyramids_are_rejected_with_or_without_align():
  # Tiny options: 4 pyramid levels (>= 8 px), 4 fusion levels (the warp at the coarsest needs
  # 2 px there: >= 16 px).
  rng = np.random.default_rng(8)
  small, enough = _frames(rng, 12, 12, 3), _frames(rng, 16, 16, 3)
  for align in (None, 4):
    model = Interpolator.random(Options.tiny(), seed=0, align=align)
    with pytest.raises(ValueError, match='too small for this model: it needs >= 16 px'):
      model(small, small)
  assert Interpolator.random(Options.tiny(), seed=0, align=None)(enough, enough).shape == (
      16, 16, 3)
  assert Interpolator.random(Options.tiny(), seed=0, align=64)(small, small).shape == (12, 12, 3)


def test_no_features_are_extracted_when_nothing_is_made():
  model = Interpolator.random(Options.tiny(), seed=0, flip_average=True)
  frames = [_frames(np.random.default_rng(i), 20, 30, 3) for i in range(4)]
  out = model.recursive(frames, 0)
  assert len(out) == 4 and model.feature_calls == 0 and model.model_calls == 0
  np.testing.assert_array_equal(out[2], frames[2])


@pytest.mark.parametrize('size,tile,overlap,multiple', [
    (1080, 512, 128, 64), (1920, 1024, 128, 64), (3840, 1024, 128, 64), (513, 512, 128, 64),
    (640, 256, 0, 64), (1000, 300, 50, 1), (100, 512, 128, 64), (512, 512, 64, 64)])
def test_tile_spans_cover_the_side_with_the_fewest_shortest_tiles_overlapping_enough(
    size, tile, overlap, multiple):
  spans = interpolator.tile_spans(size, tile, overlap, multiple)
  if size <= tile:
    assert spans == [(0, size)]
    return
  count, length = len(spans), spans[0][1] - spans[0][0]
  assert spans[0][0] == 0 and spans[-1][1] == size
  assert all(stop - start == length for start, stop in spans) and length <= tile
  assert length % multiple == 0
  assert all(a[1] - b[0] >= overlap for a, b in zip(spans, spans[1:]))
  # One tile fewer, however placed, could not overlap by `overlap`; nor could shorter tiles.
  assert (count - 1) * tile - (count - 2) * overlap < size
  assert count * (length - multiple) - (count - 1) * overlap < size


def test_tile_spans_end_at_the_edge_whatever_the_sizes():
  """A float step rounded the last start down one pixel on some sizes (539 px, --tile 86:
  ~13,000 such pairs of sizes): that column had no tile and was written black, marked done."""
  for size in range(2, 1200):
    for tile in (64, 86, 100, 128, 257, 384):
      for multiple in (1, 64):
        spans = interpolator.tile_spans(size, tile, min(32, tile // 4), multiple)
        assert spans[0][0] == 0 and spans[-1][1] == size, (size, tile, multiple)
        assert all(b[0] <= a[1] for a, b in zip(spans, spans[1:])), (size, tile, multiple)
  assert interpolator.tile_spans(7680, 384, 128)[-1][1] == 7680


def test_unpadded_tiles_are_never_shorter_than_the_model_takes():
  """Without padding (align 0) tiles shortened to split a side evenly fell under the model's
  least size: `--tile 64 --align 0` on 160x96 frames failed every pair inside TensorFlow."""
  assert interpolator.tile_spans(96, 64, 16) == [(0, 56), (40, 96)]
  assert interpolator.tile_spans(96, 64, 16, shortest=64) == [(0, 64), (32, 96)]
  tiny = Options.tiny()
  tiled = Interpolator.random(tiny, seed=0, align=0, tile=tiny.min_size, tile_overlap=4)
  rng = np.random.default_rng(2)
  x0, x1 = (_frames(rng, 1, tiny.min_size + 8, 2 * tiny.min_size + 8, 3) for _ in range(2))
  assert tiled(x0, x1).shape == x0.shape


def test_tiles_padded_to_an_align_below_the_models_least_side_still_run():
  """Padding was taken to bring every tile up to the model's least side: at `align` 8 (the
  built-in model's is 64 px) tiles shortened to split a side evenly were padded to 56 px alone,
  and TensorFlow failed inside the model."""
  tiny = Options.tiny()
  tiled = Interpolator.random(tiny, seed=0, align=tiny.min_size // 4, tile=tiny.min_size,
                              tile_overlap=4)
  rng = np.random.default_rng(3)
  x0, x1 = (_frames(rng, 1, tiny.min_size + 1, tiny.min_size + 2, 3) for _ in range(2))
  assert tiled(x0, x1).shape == x0.shape


def test_tile_ramps_are_positive_and_one_where_a_single_tile_covers():
  spans = interpolator.tile_spans(160, 64, 16)
  assert spans == [(0, 64), (48, 112), (96, 160)]
  ramps = interpolator.tile_ramps(spans)
  assert all(r.min() > 0 for r in ramps)
  np.testing.assert_array_equal(ramps[0][:48], 1)
  np.testing.assert_array_equal(ramps[1][16:48], 1)
  # Across an overlap the two ramps cross linearly and sum to 1.
  np.testing.assert_allclose(ramps[0][48:] + ramps[1][:16], 1, atol=1e-6)
  np.testing.assert_allclose(ramps[1][:16], (np.arange(16) + 0.5) / 16)


def test_tiled_frames_are_each_tiles_mid_frame_blended_across_the_overlaps(interp):
  tiled = Interpolator.random(Options.tiny(), seed=0, align=64, tile=64, tile_overlap=16)
  assert tiled.fingerprint == interp.fingerprint + '+tile64o16'
  rng = np.random.default_rng(5)
  x0, x1 = _frames(rng, 1, 64, 160, 3), _frames(rng, 1, 64, 160, 3)
  out = tiled(x0, x1)
  assert out.shape == (1, 64, 160, 3) and tiled.feature_calls == 6  # 3 tiles, 2 frames each
  parts = [interp(x0[:, :, a:b], x1[:, :, a:b]) for a, b in [(0, 64), (48, 112), (96, 160)]]
  np.testing.assert_allclose(out[:, :, :48], parts[0][:, :, :48], atol=1e-6)
  np.testing.assert_allclose(out[:, :, 64:96], parts[1][:, :, 16:48], atol=1e-6)
  np.testing.assert_allclose(out[:, :, 112:], parts[2][:, :, 16:], atol=1e-6)
  ramp = ((np.arange(16) + 0.5) / 16)[None, None, :, None]
  np.testing.assert_allclose(out[:, :, 48:64],
                             (1 - ramp) * parts[0][:, :, 48:] + ramp * parts[1][:, :, :16],
                             atol=1e-6)
  # A frame within one tile runs whole, as without tiles.
  small = _frames(rng, 1, 50, 64, 3), _frames(rng, 1, 50, 64, 3)
  np.testing.assert_array_equal(tiled(*small), interp(*small))


def test_recursion_over_tiles_feeds_each_tiled_mid_frame_back():
  tiled = Interpolator.random(Options.tiny(), seed=0, align=64, tile=64, tile_overlap=16)
  rng = np.random.default_rng(6)
  x0, x1 = _frames(rng, 64, 160, 3), _frames(rng, 64, 160, 3)
  frames = tiled.recursive([x0, x1], 2)
  assert len(frames) == 5 and tiled.model_calls == 3 and tiled.feature_calls == 18
  np.testing.assert_allclose(frames[2], tiled(x0, x1), atol=1e-6)
  np.testing.assert_allclose(frames[1], tiled(x0, frames[2]), atol=1e-6)
  np.testing.assert_allclose(frames[3], tiled(frames[2], x1), atol=1e-6)


@pytest.mark.parametrize('setting, message', [
    ({'padding': 'reflect'}, "padding must be one of ('zeros', 'mirror'), got 'reflect'"),
    ({'flip_weights': 'vote'}, 'flip_weights must be one of'),
    ({'precision': 'float16'}, "precision must be one of ('float32', 'bfloat16')"),
    ({'tile': 64, 'tile_overlap': 64}, 'tile_overlap must be in [0, 32] (at most half of tile=64'),
    ({'tile': 64, 'tile_overlap': 33}, 'tile_overlap must be in [0, 32] (at most half of tile=64'),
    ({'align': -64}, 'align must be None or >= 0, got -64'),
    # A tile's sign was blamed on the overlap; floats failed at the first frame, in TensorFlow.
    ({'tile': -5}, 'tile must be None or 0 (whole frames) or > 0, got -5'),
    ({'align': 64.0}, 'align must be a whole number of pixels, got 64.0'),
    ({'tile': 60.5}, 'tile must be a whole number of pixels, got 60.5'),
    # (the model's own least tile, checked once it is built)
    ({'tile': 32}, 'tile=32 is too small for this model: its tiles need >= 64 px')])
def test_a_setting_no_model_runs_with_is_blamed_on_the_setting_not_the_file(setting, message):
  """Each read 'cannot load film_net model from .../film_net_default.npz: ...', after the
  weights were read and the network built; a negative align padded to '64x0'."""
  with pytest.raises(ValueError) as raised:
    Interpolator.from_path(**setting)
  assert str(raised.value).startswith(message) and 'cannot load' not in str(raised.value)


def test_tile_settings_the_model_cannot_run_are_refused():
  with pytest.raises(ValueError, match='tile_overlap must be in'):
    Interpolator.random(Options.tiny(), tile=64, tile_overlap=64)
  assert Interpolator.random(Options.tiny(), tile=64, tile_overlap=32).tile_overlap == 32  # (half)
  with pytest.raises(ValueError, match='tile=8 is too small for this model'):
    Interpolator.random(Options.tiny(), align=None, tile=8, tile_overlap=2)
  # Padded up to the model's least side, a 1-pixel tile ran every pixel as a tile of border.
  with pytest.raises(ValueError, match='tile=1 is too small for this model'):
    Interpolator.random(Options.tiny(), align=64, tile=1, tile_overlap=0)
  # A deeper model's tiles of the command lines' least size, padded up to its least side, run.
  deeper = dataclasses.replace(Options.tiny(), pyramid_levels=Options.tiny().pyramid_levels + 4)
  assert deeper.min_size > 64
  Interpolator.random(deeper, align=deeper.min_size, tile=64, tile_overlap=16)
  with pytest.raises(ValueError, match='tile=64 is too small for this model'):
    Interpolator.random(deeper, align=64, tile=64, tile_overlap=16)


def _transposed(x):
  return np.transpose(x, (0, 2, 1, 3))


@pytest.mark.parametrize('padding', ['zeros', 'mirror'])
def test_flip_average_is_the_mean_with_the_diagonally_flipped_run(padding):
  plain = Interpolator.random(Options.tiny(), seed=3, align=64, padding=padding)
  flipped = Interpolator.random(Options.tiny(), seed=3, align=64, padding=padding,
                                flip_average=True)
  rng = np.random.default_rng(5)
  # Both sides padded unevenly (37 -> 64: 13 + 14, 45 -> 64: 9 + 10): the flipped run is
  # exactly the model on transposed frames, transposed back.
  x0, x1 = rng.random((2, 1, 37, 45, 3), np.float32)
  transposed = _transposed(plain(_transposed(x0), _transposed(x1)))
  expected = 0.5 * (plain(x0, x1) + transposed)
  assert np.abs(transposed - plain(x0, x1)).max() > 1e-3  # the flipped run really differs
  np.testing.assert_allclose(flipped(x0, x1), expected, atol=1e-5)
  # Recursion (features kept per frame, flipped ones too) gives the same mid frames.
  frames = [x0[0], x1[0], rng.random((37, 45, 3), np.float32)]
  recursive = flipped.recursive(frames, times_to_interpolate=1)
  np.testing.assert_allclose(recursive[1], expected[0], atol=1e-5)
  np.testing.assert_allclose(recursive[3], flipped(x1, frames[2][None])[0], atol=1e-5)
  assert flipped.fingerprint != plain.fingerprint  # same weights, other pixels
  assert flipped.fingerprint.split('+')[0] == plain.fingerprint.split('+')[0]


def test_mix_by_agreement_favours_the_run_whose_warped_inputs_agree():
  rng = np.random.default_rng(0)
  mid_a, mid_b = rng.random((2, 1, 40, 60, 3), np.float32)
  calm = np.full((1, 40, 60, 1), 0.02, np.float32)
  # Alike everywhere: the plain mean.
  np.testing.assert_allclose(interpolator.mix_by_agreement([(mid_a, calm), (mid_b, calm)]),
                             0.5 * (mid_a + mid_b), atol=1e-6)
  # Run b's inputs land apart on the left third (a wrong flow there): run a takes over there,
  # far from it the mean stays, and every pixel is between the two runs.
  troubled = calm.copy()
  troubled[:, :, :20] = 0.2
  mixed = interpolator.mix_by_agreement([(mid_a, calm), (mid_b, troubled)]).numpy()
  np.testing.assert_allclose(mixed[:, :, :8], mid_a[:, :, :8], atol=1e-4)
  np.testing.assert_allclose(mixed[:, :, 40:], 0.5 * (mid_a + mid_b)[:, :, 40:], atol=1e-4)
  assert np.all(mixed >= np.minimum(mid_a, mid_b) - 1e-6)
  assert np.all(mixed <= np.maximum(mid_a, mid_b) + 1e-6)
  # Swapping the runs swaps the roles; frames smaller than the blur kernel work too.
  swapped = interpolator.mix_by_agreement([(mid_b, troubled), (mid_a, calm)]).numpy()
  np.testing.assert_allclose(swapped, mixed, atol=1e-6)
  small = interpolator.mix_by_agreement([(mid_a[:, :5, :7], calm[:, :5, :7]),
                                         (mid_b[:, :5, :7], calm[:, :5, :7] + 0.1)])
  np.testing.assert_allclose(small, mid_a[:, :5, :7], atol=1e-4)
  # Two runs that agree alike and a third that agrees better on the right half.
  worse = calm.copy()
  worse[:, :, 30:] = 0.12
  mid_c = rng.random((1, 40, 60, 3), np.float32)
  three = interpolator.mix_by_agreement([(mid_a, worse), (mid_b, worse), (mid_c, calm)]).numpy()
  np.testing.assert_allclose(three[:, :, 50:], mid_c[:, :, 50:], atol=1e-4)
  np.testing.assert_allclose(three[:, :, :10], (mid_a + mid_b + mid_c)[:, :, :10] / 3, atol=1e-4)


def test_flip_average_by_agreement_mixes_the_two_runs_pixel_by_pixel():
  options = Options.tiny()
  plain = Interpolator.random(options, seed=3, align=64)
  by_mean = Interpolator.random(options, seed=3, align=64, flip_average=True)
  by_agreement = Interpolator.random(options, seed=3, align=64, flip_average=True,
                                     flip_weights='agreement')
  rng = np.random.default_rng(5)
  x0, x1 = rng.random((2, 1, 37, 45, 3), np.float32)
  run_a = plain(x0, x1)
  run_b = _transposed(plain(_transposed(x0), _transposed(x1)))
  mixed = by_agreement(x0, x1)
  assert np.all(mixed >= np.minimum(run_a, run_b) - 1e-5)
  assert np.all(mixed <= np.maximum(run_a, run_b) + 1e-5)
  assert np.abs(mixed - by_mean(x0, x1)).max() > 1e-4  # weights really differ from 1/2
  frames = [x0[0], x1[0], rng.random((37, 45, 3), np.float32)]
  recursive = by_agreement.recursive(frames, times_to_interpolate=1)
  np.testing.assert_allclose(recursive[1], mixed[0], atol=1e-5)
  assert by_agreement.fingerprint != by_mean.fingerprint
  assert by_agreement.fingerprint.split('+')[0] == by_mean.fingerprint.split('+')[0]
  with pytest.raises(ValueError, match='flip_weights must be one of'):
    Interpolator.random(options, flip_average=True, flip_weights='median')


def test_agreement_with_average_mixes_the_inputs_mean_in_by_its_own_agreement(monkeypatch):
  # The no-motion candidate: the inputs' mean, scored by how far apart the inputs themselves
  # are plus a margin; with the margin pushed far either way the mix is the inputs' mean or the
  # two runs' agreement mix, on both call paths.
  x0 = np.random.default_rng(7).random((1, 37, 45, 3), np.float32)
  x1 = np.roll(x0, 4, axis=2)
  x1[:, :, :20] = x0[:, :, :20]  # left part still, right part moved 4 px
  mean, disagreement = (np.asarray(t) for t in interpolator.input_average(x0, x1))
  np.testing.assert_allclose(mean, 0.5 * (x0 + x1))
  np.testing.assert_allclose(disagreement[:, :, :20], interpolator.AVERAGE_MARGIN)
  assert disagreement[:, :, 24:].mean() > 0.1 + interpolator.AVERAGE_MARGIN
  options = Options.tiny()
  by_agreement = Interpolator.random(options, seed=3, align=64, flip_average=True,
                                     flip_weights='agreement')
  with_average = Interpolator.random(options, seed=3, align=64, flip_average=True,
                                     flip_weights='agreement_with_average')
  frames = [x0[0], x1[0]]
  mixed = with_average(x0, x1)
  np.testing.assert_allclose(with_average.recursive(frames, 1)[1], mixed[0], atol=1e-5)
  runs = by_agreement(x0, x1)
  assert np.abs(mixed - runs).max() > 1e-3  # the third candidate weighs in
  monkeypatch.setattr(interpolator, 'AVERAGE_MARGIN', -10.0)
  np.testing.assert_allclose(with_average(x0, x1), 0.5 * (x0 + x1), atol=1e-5)
  np.testing.assert_allclose(with_average.recursive(frames, 1)[1], 0.5 * (x0 + x1)[0],
                             atol=1e-5)
  monkeypatch.setattr(interpolator, 'AVERAGE_MARGIN', 10.0)
  np.testing.assert_allclose(with_average(x0, x1), runs, atol=1e-5)
  assert with_average.fingerprint.startswith(by_agreement.fingerprint.split('+mirror')[0])
  assert with_average.fingerprint != by_agreement.fingerprint


def test_flip_average_and_padding_default_to_what_the_weight_file_says(tmp_path):
  options = Options.tiny()
  weights = Interpolator.random(options, seed=3).net.released_weights()
  plain_file, own_file = str(tmp_path / 'plain.npz'), str(tmp_path / 'own.npz')
  weights_lib.save(plain_file, weights, options, meta={'steps': 1})
  weights_lib.save(own_file, weights, options,
                   meta={'inference': {'flip_average': True, 'padding': 'mirror',
                                       'flip_weights': 'agreement'}})
  plain, own = Interpolator.from_path(plain_file), Interpolator.from_path(own_file)
  assert (plain.flip_average, plain.padding, plain.flip_weights) == (False, 'zeros', 'equal')
  assert (own.flip_average, own.padding, own.flip_weights) == (True, 'mirror', 'agreement')
  overridden = Interpolator.from_path(own_file, flip_average=False, padding='zeros',
                                      flip_weights='equal')
  assert (overridden.flip_average, overridden.padding, overridden.flip_weights) == (
      False, 'zeros', 'equal')
  assert Interpolator.from_path(plain_file, flip_average=True).flip_average
  # The built-in model runs flip-averaged (mixed by agreement, with the inputs' mean as a third
  # candidate) and mirror padded unless told otherwise.
  builtin = Interpolator.from_path()
  assert (builtin.flip_average, builtin.padding, builtin.flip_weights) == (
      True, 'mirror', 'agreement_with_average')
  assert builtin.fingerprint.endswith(
      '+diagonal_flip_average_by_agreement_with_input_average+mirror_pad')
  assert not Interpolator.from_path(flip_average=False).flip_average


def test_a_saved_interpolator_reloads_as_it_ran_under_any_file_name(tmp_path):
  options = Options.tiny()
  model = Interpolator.random(options, seed=3, flip_average=True, padding='mirror',
                              flip_weights='agreement')
  path = str(tmp_path / 'copy_without_suffix')
  model.save(path)
  again = Interpolator.from_path(path)
  assert (again.flip_average, again.padding, again.flip_weights) == (True, 'mirror', 'agreement')
  assert again.fingerprint == model.fingerprint


def test_a_truncated_or_foreign_weight_file_is_a_clear_load_error(tmp_path):
  good = str(tmp_path / 'good.npz')
  Interpolator.random(Options.tiny(), seed=3).save(good)
  truncated = tmp_path / 'truncated.npz'
  truncated.write_bytes(open(good, 'rb').read()[:5000])  # an interrupted download
  text = tmp_path / 'notes.txt'
  text.write_text('not weights')
  empty = tmp_path / 'empty.npz'  # a copy that never started (np.load raised EOFError)
  empty.write_bytes(b'')
  for path in (truncated, text, empty):
    with pytest.raises(ValueError, match=f'cannot load film_net model from {path}: not a '
                                         'readable .npz'):
      Interpolator.from_path(str(path))
  # A training run's folder (what film_net.train --output names) points at the file it holds.
  run = tmp_path / 'run'
  run.mkdir()
  os.replace(good, run / 'latest.npz')
  with pytest.raises(ValueError, match=f"a training run's folder; its weights are {run}/latest"):
    Interpolator.from_path(str(run) + '/')


def test_bfloat16_precision_rounds_only_inside_the_convolutions():
  exact = Interpolator.random(Options.tiny(), seed=3, align=64)
  rounded = Interpolator.random(Options.tiny(), seed=3, align=64, precision='bfloat16')
  rng = np.random.default_rng(6)
  x0, x1 = rng.random((2, 1, 37, 45, 3), np.float32)
  a, b = exact(x0, x1), rounded(x0, x1)
  assert b.dtype == np.float32
  difference = np.abs(a - b)
  # Products of 8-bit mantissas, sums and flows in float32: a small error, but a real one.
  assert 1e-5 < difference.max() < 0.03 and difference.mean() < 3e-3
  assert rounded.precision == 'bfloat16' and exact.precision == 'float32'
  assert rounded.fingerprint == exact.fingerprint + '+bfloat16'  # same weights, other pixels
  with pytest.raises(ValueError, match='precision must be one of'):
    Interpolator.random(Options.tiny(), precision='float16')


def test_bfloat16_frames_of_the_built_in_model_stay_close_to_float32():
  rng = np.random.default_rng(7)
  scene = np.kron(rng.random((12, 16, 3), np.float32), np.ones((8, 8, 1), np.float32))
  x0, x1 = scene[:, :-6], scene[:, 6:]  # a 6-pixel pan of a blocky 96x122 frame
  exact = Interpolator.from_path()(x0, x1)
  rounded = Interpolator.from_path(precision='bfloat16')(x0, x1)
  psnr = 10 * np.log10(1 / np.mean((np.clip(exact, 0, 1) - np.clip(rounded, 0, 1)) ** 2))
  # ~0.08 grey levels RMS from the float32 frame, yet not the same. With the convolutions at
  # the output's resolution in bfloat16 too it was 55 dB, and -0.3 to -0.6 dB on held-out sets.
  assert 62 < psnr < 120
  with pytest.raises(ValueError, match="needs engine='native'"):
    Interpolator.from_path(precision='bfloat16', engine='savedmodel')


def test_importing_film_net_selects_the_bfc_cpu_allocator_unless_told_otherwise():
  # TensorFlow reads the variable at its first allocation; an explicit choice is kept.
  code = 'import os, film_net; print(os.environ["TF_CPU_ALLOCATOR_USE_BFC"])'
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPU_ALLOCATOR_USE_BFC'}
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  chosen = [subprocess.run([sys.executable, '-c', code], env=env | extra, cwd=root, check=True,
                           capture_output=True, text=True).stdout.strip()
            for extra in ({}, {'TF_CPU_ALLOCATOR_USE_BFC': 'false'})]
  assert chosen == ['true', 'false']


def test_write_png_refuses_frames_it_would_write_wrong_and_read_rgb_names_a_folder(tmp_path):
  """A uint8 frame came out almost white and a NaN pixel black, unsaid; a folder was called a
  named pipe, socket or device."""
  from film_net import image_io  # pylint: disable=import-outside-toplevel
  frame = np.random.default_rng(0).random((6, 8, 3)).astype(np.float32)
  for bad, message in ((image_io.to_uint8(frame), 'takes floats in \\[0, 1\\], got uint8'),
                       (frame[None], 'one HxWx3 or HxW frame, got shape \\(1, 6, 8, 3\\)'),
                       (np.where(frame > 0.5, np.nan, frame), 'holds NaN or infinite values')):
    with pytest.raises(ValueError, match=message):
      image_io.write_png(str(tmp_path / 'x.png'), bad)
  assert not (tmp_path / 'x.png').exists()
  image_io.write_png(str(tmp_path / 'gray.png'), frame[..., :1])  # HxWx1: gray
  image_io.write_png(str(tmp_path / 'rgb.png'), frame)
  np.testing.assert_allclose(image_io.read_rgb(str(tmp_path / 'rgb.png')), frame, atol=0.5 / 255)
  with pytest.raises(ValueError, match='is a folder, not a file'):
    image_io.read_rgb(str(tmp_path))


def test_bfloat16_is_native_on_gpus_from_compute_capability_8_0(monkeypatch):
  """An A100 (8.0) multiplies bfloat16 in hardware: no warning that it is emulated; a T4 (7.5)
  does not."""
  from film_net import model  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(tf.config, 'list_physical_devices',
                      lambda kind=None: ['GPU:0'] if kind == 'GPU' else [])
  for capability, native in (((8, 0), True), ((9, 0), True), ((7, 5), False)):
    monkeypatch.setattr(tf.config.experimental, 'get_device_details',
                        lambda _, c=capability: {'compute_capability': c})
    assert model.bfloat16_is_native() is native, capability
