"""Scene cuts: pairs whose two frames belong to different shots.

Archive footage is edited. Between the last frame of one shot and the first of the next there
is no motion to follow, and an interpolator (FILM included) can only fill the gap with ghosted
double exposures. At a cut the pipeline writes no model frames: each in-between holds the
original nearer in time (the first one at exactly half way), as ffmpeg's minterpolate does at
the scene changes it detects, so the cut stays one clean frame boundary.

A pair is a cut only when two cheap measures on small thumbnails both say so, each blind to
what is not a cut:
- colour: the colour histograms overlap little. Each channel is first standardised (zero mean,
  unit deviation), so a change of exposure, a flash or a fade does not count, nor does the flat
  contrast of a log-encoded scan (dividing by the mean alone, before 2026-12-02, found 2-7
  points fewer of the rendered cuts in log code values, 0.6-3.4 fewer in display, and called
  one log non-cut of 1200 a cut).
- structure: most 8x8 blocks of the second frame's grey thumbnail (64 px on its longer side,
  zero mean, unit variance) find no close match in the first within a quarter of that side, so
  motion, even large or of many objects, does not count. Only blocks seen in both frames count:
  where either is black or burnt out (a fade's black, a flash's clipped white) there is nothing
  to compare, and a pair with too few such blocks is no cut. Before 2026-12-03 they counted,
  one way only: the frame after a flash or a black frame was a cut, the one before it not.
`cut_score` is the smaller of the two, clipped to [0, 1]; a pair is a cut when it exceeds the
threshold. bench/bench_scene_cuts.py measures both kinds of error (docs/benchmarks.md).
Thumbnails are made once per frame (`thumbnail`, then `thumbnail_score`) where a frame is in
two pairs.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DEFAULT_THRESHOLD = 0.2
# Bump when the scores change: done markers of runs with detection on carry it, so their pairs
# are decided again by the new score (2: colour histograms of standardised channels; 3: blocks
# black or burnt out in either frame left out).
SCORE_VERSION = 3
THUMBNAIL_SIZE = 64  # px on the longer side
_BINS = 6            # per channel, over its mean +- 2 standard deviations
_BLOCK = 8           # thumbnail pixels per block side
_REACH = 0.25        # the farthest a block is looked for, as a share of the longer side
_CLIPPED = 0.02      # grey this near black or white (thumbnail average) holds no structure
_SEEN_SHARE = 0.25   # blocks seen in both frames needed to call a cut
_LUMA = np.float32([0.299, 0.587, 0.114])


def thumbnail(image: np.ndarray, size: int = THUMBNAIL_SIZE, scale: float = 1.0) -> np.ndarray:
  """Area average of HxWxC `image` (any numeric type), divided by `scale`, down to `size` px
  on its longer side (unchanged when smaller), keeping the aspect ratio: float32."""
  h, w = image.shape[:2]
  shrink = min(1.0, size / max(h, w))
  th, tw = max(1, round(h * shrink)), max(1, round(w * shrink))
  rows = np.linspace(0, h, th + 1).astype(int)
  cols = np.linspace(0, w, tw + 1).astype(int)
  summed = np.add.reduceat(np.add.reduceat(image, cols[:-1], axis=1, dtype=np.float64),
                           rows[:-1], axis=0)
  counts = np.diff(rows)[:, None, None] * np.diff(cols)[None, :, None]
  return (summed / (counts * scale)).astype(np.float32)


def frame_thumbnail(frame) -> np.ndarray:
  """The RGB thumbnail of a decoded `images.Frame`, summed from its integer pixels: no
  full-size float copy (a third of the time of thumbnailing `frame.rgb()` at 1080p)."""
  pixels = frame.pixels
  thumb = thumbnail(pixels[..., :3] if frame.channels >= 3 else pixels[..., :1],
                    scale=(1 << frame.bits) - 1)
  return thumb if thumb.shape[-1] == 3 else np.repeat(thumb, 3, axis=-1)


def colour_change(thumb0: np.ndarray, thumb1: np.ndarray) -> float:
  """1 - the overlap of the two thumbnails' colour histograms (standardised per channel)."""
  def histogram(thumb):
    x = thumb.reshape(-1, 3)
    x = (x - x.mean(axis=0)) / (4 * x.std(axis=0) + 1e-3) + 0.5  # +-2 std over [0, 1]
    q = np.clip((x * _BINS).astype(int), 0, _BINS - 1)
    counts = np.bincount((q[:, 0] * _BINS + q[:, 1]) * _BINS + q[:, 2], minlength=_BINS ** 3)
    return counts / counts.sum()
  return float(1.0 - np.minimum(histogram(thumb0), histogram(thumb1)).sum())


def structure_change(thumb0: np.ndarray, thumb1: np.ndarray) -> float:
  """The median over thumb1's blocks seen in both frames (at most half their pixels black or
  burnt out in either) of the mean absolute difference to their best match in thumb0 within
  the reach, in units of the frames' contrast (standardised grey); 0 when under a quarter of
  the blocks are seen."""
  def standard_grey(g):
    return (g - g.mean()) / (g.std() + 0.02)  # + 0.02: flat frames' grain is not structure
  grey0, grey1 = thumb0 @ _LUMA, thumb1 @ _LUMA
  g0, g1 = standard_grey(grey0), standard_grey(grey1)
  h, w = g1.shape
  bh, bw = min(_BLOCK, h), min(_BLOCK, w)
  h, w = h // bh * bh, w // bw * bw
  g0, g1 = g0[:h, :w], g1[:h, :w]
  seen = np.ones_like(g1, bool)
  for grey in (grey0, grey1):
    seen &= (grey[:h, :w] > _CLIPPED) & (grey[:h, :w] < 1 - _CLIPPED)
  seen_blocks = seen.reshape(h // bh, bh, w // bw, bw).mean(axis=(1, 3)) >= 0.5
  if seen_blocks.mean() < _SEEN_SHARE:
    return 0.0
  reach = max(1, round(_REACH * max(h, w)))
  n = 2 * reach + 1
  # Every shift of g0 within the reach at once: (n, n, h, w) views, ~18 MB at most.
  shifted = sliding_window_view(np.pad(g0, reach, mode='edge'), (h, w))
  blocks = np.abs(shifted - g1).reshape(n, n, h // bh, bh, w // bw, bw).mean(axis=(3, 5))
  return float(np.median(blocks.min(axis=(0, 1))[seen_blocks]))


def cut_score(rgb0: np.ndarray, rgb1: np.ndarray) -> float:
  """How surely float RGB frames `rgb0`, `rgb1` (HxWx3 in [0, 1], same size) are two shots:
  0 for the same image, near 1 for unrelated ones."""
  return thumbnail_score(thumbnail(rgb0), thumbnail(rgb1))


def thumbnail_score(thumb0: np.ndarray, thumb1: np.ndarray) -> float:
  """`cut_score` of two frames from their thumbnails."""
  return min(1.0, colour_change(thumb0, thumb1), structure_change(thumb0, thumb1))


def not_a_midpoint(x0: np.ndarray, middle: np.ndarray, x1: np.ndarray,
                   threshold: float = DEFAULT_THRESHOLD) -> tuple[str | None, float | None]:
  """Why the middle of three consecutive frames of footage is not the moment between the other
  two, as leave-one-out scoring and fine-tuning on footage both need it to be: 'repeated frame'
  (it equals a neighbour: a freeze or a transfer's repeat, where motion is not even) or 'scene
  cut' (a cut score above `threshold` on either side); with the larger score where computed.
  (None, score) for a usable triplet."""
  if np.array_equal(middle, x0) or np.array_equal(middle, x1):
    return 'repeated frame', None
  thumb0, thumb, thumb1 = (thumbnail(x) for x in (x0, middle, x1))
  score = max(thumbnail_score(thumb0, thumb), thumbnail_score(thumb, thumb1))
  return ('scene cut' if score > threshold else None), score


def held_frame(k: int, step: int) -> int:
  """Which original (0 or 1) in-between k of `step` holds at a cut: the nearer in time."""
  return 0 if 2 * k <= step else 1
