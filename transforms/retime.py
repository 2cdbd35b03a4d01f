"""Which output frame is which dense position: as made (`Dense`), or retimed to a delivery rate.

Halving each pair N times (`--times_to_interpolate N`) gives the dense sequence: dense index
d = pair * 2^N + p for position p of 2^N, p / 2^N of the way from the pair's first frame to
its second. Without retiming, output frame k is dense frame k.

Retiming (`--input_fps A --output_fps B`, e.g. 16 fps film for 24 fps delivery) shows output
frame k at time k / B, k * A / B input frames after the clip's first frame, and gives it the
dense frame nearest that time: d_k = floor(k * A / B * 2^N + 1/2), a tie going to the later.
So each output frame lies within 1 / 2^(N+1) of a frame interval of its time, and only the
in-betweens some output takes are made, each with the mid frames on its halving path
(`halving_path`): 16 to 24 fps makes 2 model calls per pair at N = 2 instead of 3, 3 at N = 3
instead of 7. Output frames on a dense position 0 are the originals, copied.

A scan lost from a numbered clip (`reel_0123` then `reel_0125`) makes the pair across the gap
two frame intervals long (`long_pairs`): its dense frames lie twice as far apart in time, the
later frames keep their times (sound stays in sync), and the in-betweens shown in the gap stand
in for the lost frame. Without retiming the dense sequence has no times, and the pair is
halved as any other.

Plain Python (no Beam, no TensorFlow): the launcher checks the flags with it, workers index with it.
"""

import argparse
import dataclasses
import fractions
import math


@dataclasses.dataclass(frozen=True)
class Dense:
  """Output frame k is dense frame k: every in-between made is written. `rates`: (input fps,
  output fps) where they were given and make exactly the dense sequence (16 to 64 at N = 2)."""
  times_to_interpolate: int = 0
  rates: tuple = None

  @property
  def timed(self):
    """Whether output frames have times to keep (rates were given)."""
    return self.rates is not None

  def along(self, long_pairs):
    """Without rates the dense sequence has no times: a lost scan changes nothing. With them,
    a clip with lost scans is retimed, so that its later frames keep their times."""
    if not long_pairs or self.rates is None:
      return self
    return Retime(*self.rates, self.times_to_interpolate).along(long_pairs)

  def outputs(self, low, high):
    """[(output index, dense index)] of the output frames on dense frames low .. high."""
    return [(d, d) for d in range(low, high + 1)]

  def span(self, low, high):
    """(first, last) output index on dense frames low .. high (last = first - 1: none)."""
    return low, high

  def last_output(self, last_dense):
    return last_dense

  def key(self):
    """What done markers' keys add for this timing: nothing, so keys stay as before retiming."""
    return []

  def pair_key(self, pair):  # pylint: disable=unused-argument
    return []


@dataclasses.dataclass(frozen=True)
class Retime:
  """Output frames at `output_fps` from a clip at `input_fps`, N halvings per pair; pairs in
  `long_pairs` ((pair, length in frame intervals), ...) span more than one frame interval."""
  input_fps: fractions.Fraction
  output_fps: fractions.Fraction
  times_to_interpolate: int
  long_pairs: tuple = ()
  timed = True

  def along(self, long_pairs):
    """This timing for a clip whose `long_pairs` span more than one frame interval."""
    return dataclasses.replace(self, long_pairs=tuple(long_pairs))

  @property
  def _frames_per_output(self):
    return self.input_fps / self.output_fps

  def _time(self, dense):
    """The time of (fractional) dense index `dense`, in frame intervals from frame 0: dense
    indices are evenly spaced within a pair, 2^N to the pair."""
    step = 2 ** self.times_to_interpolate
    pair = math.floor(fractions.Fraction(dense) / step)
    before = sum(length - 1 for p, length in self.long_pairs if p < pair)
    return pair + before + (fractions.Fraction(dense) / step - pair) * self._length(pair)

  def _dense(self, time):
    """The (fractional) dense index at `time`: `_time`'s inverse."""
    step = 2 ** self.times_to_interpolate
    shift = 0  # how much later than its number frame `pair` comes, for lost frames before it
    for pair, length in sorted(self.long_pairs):
      start = pair + shift
      if time < start:
        break
      if time < start + length:
        return (pair + (time - start) / length) * step
      shift += length - 1
    return (time - shift) * step

  def _length(self, pair):
    return dict(self.long_pairs).get(pair, 1)

  def dense_index(self, k):
    """The dense frame output frame k shows: the one nearest its time (both candidates lie in
    the pair of that time, where time runs evenly, so nearest in dense index)."""
    return math.floor(self._dense(k * self._frames_per_output) + fractions.Fraction(1, 2))

  def span(self, low, high):
    """(first, last) output index on dense frames low .. high (last = first - 1: none): those
    whose times lie from dense index low - 1/2 up to (not including) high + 1/2."""
    half = fractions.Fraction(1, 2)
    rate = self._frames_per_output
    first = max(0, math.ceil(self._time(low - half) / rate))
    return first, math.ceil(self._time(high + half) / rate) - 1

  def outputs(self, low, high):
    """[(output index, dense index)] of the output frames on dense frames low .. high."""
    first, last = self.span(low, high)
    return [(k, self.dense_index(k)) for k in range(first, last + 1)]

  def last_output(self, last_dense):
    return self.span(0, last_dense)[1]

  def key(self):
    """The frames depend on the rates' ratio alone: 32 to 48 fps makes 16 to 24's frames. At
    the dense rate (16 to 64 at N = 2: a clip with lost scans, `Dense.along`), nothing, as
    `Dense`: its pairs before the first lost scan keep their markers (`pair_key`)."""
    if self._frames_per_output == fractions.Fraction(1, 2 ** self.times_to_interpolate):
      return []
    return ['retime', str(self._frames_per_output)]

  def pair_key(self, pair):
    """What a pair's done marker adds in a clip with lost frames: the pair's time and length,
    which its frames depend on; nothing where they are those of the clip without lost frames
    (every pair of a clip without; the pairs before its first lost scan, but the one whose
    last frame shows in the lost time), so that losing or restoring a scan redoes the clip from
    there on, not from its start."""
    if not self.long_pairs:  # (every pair of most clips: no outputs to compare)
      return []
    step = 2 ** self.times_to_interpolate
    start, length = self._time(pair * step), self._length(pair)
    whole = dataclasses.replace(self, long_pairs=())
    dense = (pair * step, (pair + 1) * step)
    if start == pair and length == 1 and self.outputs(*dense) == whole.outputs(*dense):
      return []
    return [str(start), str(length)]


def timing(times_to_interpolate, input_fps=None, output_fps=None):
  """`Retime` when both rates are given and differ from the dense rate, else `Dense` (whose
  frames those would be: 16 to 64 fps at N = 2 is the dense sequence, and keeps its markers,
  but for clips with lost scans)."""
  if input_fps is None or output_fps is None:
    return Dense(times_to_interpolate)
  input_fps, output_fps = fractions.Fraction(input_fps), fractions.Fraction(output_fps)
  if input_fps * 2 ** times_to_interpolate == output_fps:
    return Dense(times_to_interpolate, (input_fps, output_fps))
  return Retime(input_fps, output_fps, times_to_interpolate)


def rate_text(rate):
  """A frame rate as people write it: '24', '23.976' (a decimal where one is exact), else
  '24000/1001'."""
  rate = fractions.Fraction(rate)
  for digits in range(7):
    if (rate * 10 ** digits).denominator == 1:
      return f'{float(rate):.{digits}f}'
  return f'{rate.numerator}/{rate.denominator}'


# Frame rates taken: from one frame in ~12 days (time-lapse) to a million per second (high-speed
# cameras); beyond, a rate is a typo, and one past a float's range crashed the launcher.
_RATES = (fractions.Fraction(1, 10 ** 6), fractions.Fraction(10 ** 6))


def frame_rate(text):
  """An argparse type: a frame rate as a positive number or fraction ('24', '23.976',
  '24000/1001'), kept exact."""
  try:
    rate = fractions.Fraction(text.strip())
  except (ValueError, ZeroDivisionError):
    rate = None
  if rate is None or not _RATES[0] <= rate <= _RATES[1]:
    raise argparse.ArgumentTypeError(f'must be a positive frame rate (24, 23.976, 24000/1001) '
                                     f'from 0.000001 to 1000000, got {text!r}')
  return rate


def frame_rate_problem(input_fps, output_fps, times_to_interpolate):
  """Why these rates cannot be retimed (a usage error's text), or None. An output rate above
  the dense rate would show some dense frames twice: a stutter the user did not ask for."""
  if (input_fps is None) != (output_fps is None):
    return '--input_fps and --output_fps go together: give both, or neither'
  if input_fps is None:
    return None
  dense = input_fps * 2 ** times_to_interpolate
  if output_fps <= dense:
    return None
  n = times_to_interpolate
  while input_fps * 2 ** n < output_fps:
    n += 1
  return (f'--output_fps {rate_text(output_fps)} is more than the {rate_text(dense)} frames '
          f'per second that --times_to_interpolate {times_to_interpolate} makes of --input_fps '
          f'{rate_text(input_fps)}, so frames would repeat; use --times_to_interpolate {n} or '
          f'more')


def halving_path(positions, times_to_interpolate):
  """The positions of 2^N whose mid frames are made to make `positions`: each one and those
  halved on the way to it (`Interpolator.iter_in_betweens` makes exactly these)."""
  made = set()
  for p in positions:
    low, high = 0, 2 ** times_to_interpolate
    if not low < p < high:
      raise ValueError(f'position {p} is no in-between of {high}')
    while True:
      middle = (low + high) // 2
      made.add(middle)
      if middle == p:
        break
      low, high = (low, middle) if p < middle else (middle, high)
  return made
