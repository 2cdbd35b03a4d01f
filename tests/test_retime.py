"""Retiming's index arithmetic: the nearest dense frame, every output written once, the flags."""

import argparse
import fractions
import itertools

import pytest

from transforms import retime

F = fractions.Fraction
RATES = [(16, 24), (18, 24), (24, 25), (F(24000, 1001), F(30000, 1001)), (25, 24), (24, 60),
         (30, 24), (24, 8)]


@pytest.mark.parametrize('input_fps, output_fps', RATES)
@pytest.mark.parametrize('n', [0, 1, 2, 3])
def test_each_output_frame_is_the_dense_frame_nearest_its_time(input_fps, output_fps, n):
  timing = retime.timing(n, input_fps, output_fps)
  step = 2 ** n
  for k in range(200):
    time = F(k) * F(input_fps) / F(output_fps)  # in input frames
    d = timing.dense_index(k)
    # Nearest by brute force over the neighbours; a tie goes to the later frame.
    best = min(range(int(time * step) - 2, int(time * step) + 3),
               key=lambda c: (abs(F(c, step) - time), -c))
    assert d == best, (k, d, best)
    assert abs(F(d, step) - time) <= F(1, 2 * step)


# Pairs longer than one frame interval (pair 3 of 2: a scan lost), or none.
LONG_PAIRS = [(), ((3, 2),), ((0, 3), (4, 2)), ((2, F(3, 2)), (3, 4))]


def _dense_times(lengths, step):
  """Each dense frame's time in frame intervals, from the pairs' lengths: the brute force."""
  times, start = [], F(0)
  for length in lengths:
    times += [start + F(p, step) * length for p in range(step)]
    start += length
  return times + [start]


@pytest.mark.parametrize('input_fps, output_fps', RATES)
@pytest.mark.parametrize('n', [0, 2, 3])
@pytest.mark.parametrize('long_pairs', LONG_PAIRS)
def test_pairs_write_every_output_frame_once_in_order(input_fps, output_fps, n, long_pairs):
  """Pair i covers dense frames i * 2^N + 1 .. (i + 1) * 2^N (pair 0 from 0): together every
  output frame up to the clip's last, each once, and `span` says which; across pairs longer
  than one interval each is still the dense frame nearest its time (ties to the later)."""
  timing = retime.timing(n, input_fps, output_fps).along(long_pairs)
  step, pairs = 2 ** n, 9
  lengths = [dict(long_pairs).get(j, 1) for j in range(pairs)]
  times = _dense_times(lengths, step)
  covered = []
  for i in range(pairs):
    low, high = i * step + (i > 0), (i + 1) * step
    outputs = timing.outputs(low, high)
    first, last = timing.span(low, high)
    assert [k for k, _ in outputs] == list(range(first, last + 1))
    covered += [k for k, _ in outputs]
    for k, d in outputs:
      time = F(k) * F(input_fps) / F(output_fps)
      best = min(range(len(times)), key=lambda c: (abs(times[c] - time), -c))
      assert d == best and low <= d <= high, (k, d, best)
  assert covered == list(range(timing.last_output(pairs * step) + 1))
  end = sum(lengths)  # the clip's last frame: outputs up to half a dense step past it
  last = F(covered[-1]) * F(input_fps) / F(output_fps)
  assert last < end + F(lengths[-1], 2 * step) <= last + F(input_fps) / F(output_fps)


def test_a_lost_scan_fills_its_time_from_the_long_pair():
  """16 to 24 fps, frames 0 1 2 _ 4 5: frame 4 keeps time 4 (output 6), and outputs 4 and 5 (times
  2.67 and 3.33) are the long pair's 1/4 and 3/4 (nearest 1/3 and 2/3 of its two intervals)."""
  timing = retime.timing(2, 16, 24).along([(2, 2)])
  assert [timing.dense_index(k) for k in range(8)] == [0, 3, 5, 8, 9, 11, 12, 15]
  assert timing.last_output(4 * 4) == 7
  assert retime.timing(2, 16, 24).last_output(4 * 4) == 6  # read as consecutive: one early
  assert timing.pair_key(2) == ['2', '2'] and timing.pair_key(3) == ['4', '1']
  # Before the gap the frames are those of the clip without it: so are the keys.
  assert timing.pair_key(0) == timing.pair_key(1) == [] == retime.timing(2, 16, 24).pair_key(1)
  # But where the last frame of the pair before shows in the lost time: at N = 1, frames
  # 0 1 2 3 _ 5, frame 3 (dense 6) is also output 5 (time 10/3) once pair 3 is two long.
  shifted = retime.timing(1, 16, 24).along([(3, 2)])
  assert shifted.outputs(4, 6)[-1] == (5, 6) and (5, 6) not in retime.timing(1, 16, 24).outputs(4, 6)
  assert shifted.pair_key(1) == [] and shifted.pair_key(2) == ['2', '1']
  assert retime.timing(2, 16, 24).pair_key(2) == [] and retime.Dense().along([(2, 2)]).key() == []


def test_dense_is_every_frame_with_keys_as_before():
  dense = retime.timing(2)
  assert dense.outputs(5, 8) == [(5, 5), (6, 6), (7, 7), (8, 8)]
  assert dense.span(5, 8) == (5, 8) and dense.last_output(12) == 12 and dense.key() == []
  assert retime.timing(2, 16, 24).key() == ['retime', '2/3'] == retime.timing(2, 32, 48).key()
  at_dense_rate = retime.timing(2, 16, 64)  # the dense sequence, its markers ...
  assert isinstance(at_dense_rate, retime.Dense) and at_dense_rate.key() == []
  assert at_dense_rate.outputs(5, 8) == dense.outputs(5, 8)
  # ... but for a clip with a lost scan, whose later frames keep their times.
  lost = at_dense_rate.along([(1, 2)])
  assert lost.last_output(3 * 4) == 4 * 4 and dense.along([(1, 2)]).last_output(12) == 12
  # Its pairs before the lost scan keep their keys, those of the dense sequence (no ratio).
  assert lost.key() == [] and lost.pair_key(0) == [] and lost.pair_key(1) == ['1', '2']
  assert lost == retime.timing(2, 16, F(64000, 1000)).along([(1, 2)])


@pytest.mark.parametrize('rate, text', [(F(24), '24'), (F(23976, 1000), '23.976'),
                                        (F(24000, 1001), '24000/1001'), (F(25, 2), '12.5')])
def test_rates_are_shown_as_written(rate, text):
  assert retime.rate_text(rate) == text


def test_sixteen_to_twenty_four_takes_two_model_calls_per_pair_at_n2():
  timing = retime.timing(2, 16, 24)
  assert [timing.dense_index(k) for k in range(7)] == [0, 3, 5, 8, 11, 13, 16]
  calls = [len(retime.halving_path({d % 4 for _, d in timing.outputs(i * 4 + 1, i * 4 + 4)}
                                   - {0}, 2)) for i in range(4)]
  assert calls == [2, 2, 2, 2]  # against 3 for every in-between


def test_halving_path():
  assert retime.halving_path([], 3) == set()
  assert retime.halving_path([4], 3) == {4}
  assert retime.halving_path([5], 3) == {4, 6, 5}
  assert retime.halving_path([1, 7], 3) == {4, 2, 1, 6, 7}
  assert retime.halving_path(range(1, 8), 3) == set(range(1, 8))
  for n, p in itertools.product(range(1, 5), range(1, 16)):
    if p < 2 ** n:
      assert len(retime.halving_path([p], n)) == n - (p & -p).bit_length() + 1
  with pytest.raises(ValueError):
    retime.halving_path([0], 2)


@pytest.mark.parametrize('text, rate', [('24', F(24)), ('23.976', F(23976, 1000)),
                                        ('24000/1001', F(24000, 1001)), (' 25 ', F(25))])
def test_frame_rates_parse_exactly(text, rate):
  assert retime.frame_rate(text) == rate


@pytest.mark.parametrize('text', ['0', '-24', 'fast', '24/0', ''])
def test_bad_frame_rates_are_refused(text):
  with pytest.raises(argparse.ArgumentTypeError, match='positive frame rate'):
    retime.frame_rate(text)


def test_rate_problems():
  assert retime.frame_rate_problem(None, None, 1) is None
  assert retime.frame_rate_problem(F(16), F(24), 1) is None
  assert 'go together' in retime.frame_rate_problem(F(16), None, 1)
  assert 'go together' in retime.frame_rate_problem(None, F(24), 1)
  problem = retime.frame_rate_problem(F(24), F(60), 1)
  assert '--output_fps 60 is more than the 48 frames per second' in problem
  problem = retime.frame_rate_problem(F(23976, 1000), F(60), 1)
  assert '--output_fps 60 is more than the 47.952 frames' in problem
  assert 'makes of --input_fps 23.976, so' in problem
  assert 'use --times_to_interpolate 2 or more' in problem
  assert retime.frame_rate_problem(F(24), F(48), 1) is None
