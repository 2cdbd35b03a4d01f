"""Recursive interpolation: released semantics and counts, with each frame's features once."""
import numpy as np
import pytest

from film_net import Interpolator, Options
from transforms import retime


@pytest.fixture(scope='module')
def interp():
  return Interpolator.random(Options.tiny(), seed=0, align=64)


def _naive(interp, frames, n):
  """FILM's `_recursive_generator` per pair, then the last frame: one full model call per mid."""
  def rec(a, b, depth):
    if depth == 0:
      return [a]
    mid = interp(a[None], b[None])[0]
    return rec(a, mid, depth - 1) + rec(mid, b, depth - 1)
  out = []
  for a, b in zip(frames, frames[1:]):
    out += rec(a, b, n)
  return out + [frames[-1]]


@pytest.mark.parametrize('num_frames, n', [(2, 0), (2, 1), (2, 3), (3, 2), (5, 1)])
def test_counts_order_and_equality_with_naive_recursion(interp, num_frames, n):
  rng = np.random.default_rng(num_frames * 10 + n)
  frames = list(rng.random((num_frames, 37, 45, 3), np.float32))
  calls0, features0 = interp.model_calls, interp.feature_calls
  out = interp.recursive(frames, times_to_interpolate=n)
  model_calls, feature_calls = interp.model_calls - calls0, interp.feature_calls - features0

  assert len(out) == (num_frames - 1) * 2 ** n + 1
  assert model_calls == (num_frames - 1) * (2 ** n - 1)
  # Originals pass through untouched at index i * 2**n.
  for i, frame in enumerate(frames):
    np.testing.assert_array_equal(out[i * 2 ** n], frame)
  # Each original once, and each mid frame that is an input of a deeper level once; none when
  # nothing is made.
  assert feature_calls == (num_frames + (num_frames - 1) * (2 ** (n - 1) - 1) if n else 0)

  calls_before = interp.feature_calls
  naive = _naive(interp, frames, n)
  naive_feature_calls = interp.feature_calls - calls_before
  assert len(naive) == len(out)
  for i, (a, b) in enumerate(zip(out, naive)):
    np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f'frame {i}')
  assert naive_feature_calls == 2 * model_calls
  if num_frames > 2 or n > 1:  # some frame is an input of two calls: reuse saves work
    assert feature_calls < naive_feature_calls


def test_generator_form_streams_long_clips(interp):
  rng = np.random.default_rng(9)
  clip = [rng.random((32, 32, 3), np.float32) for _ in range(6)]
  taken = []

  def frames():  # a stream: records how far the generator has read it
    for frame in clip:
      taken.append(frame)
      yield frame

  stream = interp.iter_recursive(frames(), 1)
  first_three = [next(stream) for _ in range(3)]  # frame 0, mid 0-1, frame 1
  assert len(taken) == 2  # only what those needed was read
  out = first_three + list(stream)
  expected = interp.recursive(clip, 1)
  assert len(out) == len(expected) == 11
  for got, want in zip(out, expected):
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_negative_depth_is_rejected(interp):
  with pytest.raises(ValueError, match='times_to_interpolate'):
    interp.recursive([np.zeros((8, 8, 3), np.float32)] * 2, -1)


@pytest.mark.parametrize('n, wanted', [
    (2, {0: [3], 1: [1], 2: [2]}),  # 16 fps to 24 at N = 2: two calls per pair, not three
    (3, {0: [5], 1: [], 2: [1, 7]}),  # a pair with nothing wanted: no calls, no features
    (1, {0: [1], 1: [1], 2: [1]}),  # everything: `recursive`'s in-betweens
])
def test_in_betweens_make_only_the_wanted_positions_and_their_halving_paths(interp, n, wanted):
  rng = np.random.default_rng(n)
  frames = list(rng.random((4, 40, 48, 3), np.float32))
  dense = interp.recursive(frames, n)
  calls0, features0 = interp.model_calls, interp.feature_calls
  made = list(interp.iter_in_betweens(frames, n, lambda pair: wanted[pair]))
  model_calls, feature_calls = interp.model_calls - calls0, interp.feature_calls - features0

  assert [(pair, p) for pair, p, _ in made] == [(pair, p) for pair in range(3)
                                                 for p in wanted[pair]]
  for pair, p, frame in made:  # the very frames the full recursion makes there
    np.testing.assert_array_equal(frame, dense[pair * 2 ** n + p], err_msg=f'{pair}, {p}')
  assert model_calls == sum(len(retime.halving_path(wanted[pair], n)) for pair in range(3))
  # Features: each original some call takes, and each mid frame with a call below it (a mid
  # frame m halves the intervals around it to m -+ lowbit(m) / 2).
  takes = {i for pair in range(3) if wanted[pair] for i in (pair, pair + 1)}
  deeper = 0
  for pair in range(3):
    path = retime.halving_path(wanted[pair], n)
    deeper += sum(1 for m in path if {m - (m & -m) // 2, m + (m & -m) // 2} & path - {m})
  assert feature_calls == (len(takes) + deeper) * (2 if interp.flip_average else 1)


def test_in_betweens_all_by_default_and_positions_checked(interp):
  rng = np.random.default_rng(4)
  frames = list(rng.random((3, 32, 32, 3), np.float32))
  made = list(interp.iter_in_betweens(frames, 2))
  dense = interp.recursive(frames, 2)
  assert [(pair, p) for pair, p, _ in made] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
  for pair, p, frame in made:
    np.testing.assert_array_equal(frame, dense[pair * 4 + p])
  with pytest.raises(ValueError, match='positions of pair 0 must be whole numbers in 1 .. 3'):
    list(interp.iter_in_betweens(frames, 2, lambda pair: [4]))
  # A float position, or a callable that returns nothing, failed deep in the recursion.
  with pytest.raises(ValueError, match=r'pair 0 must be whole numbers .* got \[1.5\]'):
    list(interp.iter_in_betweens(frames, 2, lambda pair: [1.5]))
  with pytest.raises(TypeError, match=r'wanted\(0\) must give the in-between positions .* None'):
    list(interp.iter_in_betweens(frames, 2, lambda pair: None))


def test_the_end_frames_are_copies_and_the_depth_a_whole_number(interp):
  """The caller's own float32 arrays came back as the end frames: clipping the output in place
  changed the inputs. A depth of 2.0 failed in range()."""
  rng = np.random.default_rng(7)
  frames = list(rng.random((2, 20, 24, 3), np.float32))
  kept = [f.copy() for f in frames]
  out = interp.recursive(frames, 1)
  for frame in out:
    frame[...] = 0
  for frame, before in zip(frames, kept):
    np.testing.assert_array_equal(frame, before)
  for depth in (2.0, -1, True):
    with pytest.raises(ValueError, match='times_to_interpolate must be a whole number >= 0'):
      interp.recursive(frames, depth)
