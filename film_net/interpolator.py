"""`Interpolator`: film_net inference on frames of any size, and recursive in-betweening.

Frames are float32 RGB in [0, 1]. With `align=64` each frame is padded (centred, the odd
pixel at the bottom/right) to a multiple of 64 and the result cropped back, as FILM's released
tools do: with zeros, as they do, or mirrored where the model file's meta says so (the built-in
model); `align=None` runs the model on frames as they are.

Recursion follows the released semantics (pre-order; each mid frame is an input of the next
level) but computes every frame's feature pyramid once: the native engine splits the model
into per-frame features and the pairwise rest, so a frame shared by two calls, including the
frame shared by consecutive input pairs, is extracted once.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import zipfile
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from film_net import memory
from film_net import specs
from film_net import warp as warp_lib
from film_net import weights as weights_lib
from film_net.flags import MIN_TILE
from film_net.flags import max_tile_overlap
from film_net.flags import tile_overlap as default_tile_overlap
from film_net.model import FilmNet
from film_net.options import Options
from film_net.options import is_whole_number
from film_net.weights import DEFAULT_MODEL

_log = logging.getLogger(__name__)

ENGINES = ('native', 'savedmodel')
PADDINGS = ('zeros', 'mirror')
FLIP_WEIGHTS = ('equal', 'agreement', 'agreement_with_average')
# `flip_weights='agreement'`: disagreement maps are blurred over this many pixels (Gaussian
# sigma) and compared on this scale (mean absolute RGB difference). Chosen on the rendered
# held-out sets with the built-in model (`bench/bench_ensemble.py`), not on Middlebury.
AGREEMENT_SIGMA = 4.0
AGREEMENT_SCALE = 0.01
# `flip_weights='agreement_with_average'`: the inputs' average (no motion) counts as this much
# worse agreement than it shows, so the model's runs keep the pixels where it is not clearly
# better. Chosen on the rendered held-out sets too, tripod shots among them.
AVERAGE_MARGIN = 0.01


def _pad_box(height: int, width: int, align: int | None):
  if not align:
    return 0, 0, height, width
  pad_h, pad_w = (align - height % align) % align, (align - width % align) % align
  return pad_h // 2, pad_w // 2, height + pad_h, width + pad_w


def tile_spans(size: int, tile: int | None, overlap: int,
               multiple: int = 1, shortest: int = 1) -> list[tuple[int, int]]:
  """(start, stop) of the tiles along one side of `size` px: one span when it fits in `tile`,
  else the fewest spans of at most `tile` px that overlap by at least `overlap` px, each as
  short as that count allows (rounded up to a `multiple`, the model's `align`, so tiles need
  no padding; and to `shortest`, the least the model takes, where nothing pads them), spread
  evenly from edge to edge. Starts are rounded down, so a step never exceeds
  `length - overlap`; in whole numbers, so the last tile ends at the edge (a float step rounded
  it one pixel short, left black, on some sizes)."""
  if not tile or size <= tile:
    return [(0, size)]
  count = -(-(size - overlap) // (tile - overlap))
  length = -(-(size + (count - 1) * overlap) // count)
  length = min(tile, max(shortest, -(-length // multiple) * multiple))
  starts = [i * (size - length) // (count - 1) for i in range(count)]
  return [(start, start + length) for start in starts]


def tile_ramps(spans: list[tuple[int, int]]) -> list[np.ndarray]:
  """Per span, its blending weights along the side: rising linearly across the overlap with
  the previous span, falling across the next one's, 1 elsewhere; never 0, so a weighted mean
  over the spans is defined everywhere and seamless."""
  ramps = []
  for i, (start, stop) in enumerate(spans):
    inside = np.arange(stop - start, dtype=np.float32) + 0.5
    ramp = np.ones(stop - start, np.float32)
    if i > 0 and spans[i - 1][1] > start:
      ramp = np.minimum(ramp, inside / (spans[i - 1][1] - start))
    if i + 1 < len(spans) and stop > spans[i + 1][0]:
      ramp = np.minimum(ramp, inside[::-1] / (stop - spans[i + 1][0]))
    ramps.append(ramp)
  return ramps


def check_frames(*frames: np.ndarray, what: str = 'frames', single: bool = False) -> None:
  """Raises ValueError unless all frames are equally sized float RGB, (H, W, 3) or, unless
  `single`, all (B, H, W, 3), finite and in [0, 1] (give or take what a model's own unclipped
  output holds): integer pixels or 0-255 floats would run and give garbage."""
  layouts = '(H, W, 3)' if single else '(H, W, 3) or (B, H, W, 3)'
  shapes = [tuple(np.shape(f)) for f in frames]
  for frame, shape in zip(frames, shapes):
    if len(shape) == 2:
      raise ValueError(f'{what} must be RGB, {layouts}; got a 2-D array of shape {shape}, a '
                       'grayscale frame? Repeat it into 3 channels first.')
    if single and len(shape) == 4:
      raise ValueError(f'{what} must be single frames {layouts}; got a batch of shape {shape} '
                       '(interpolate each clip by itself)')
    if len(shape) not in ((3,) if single else (3, 4)):  # (a 1-D or 5-D array is no image)
      raise ValueError(f'{what} must be {layouts}; got an array of shape {shape}')
    if shape[-1] != 3:
      channels = shape[-1]
      raise ValueError(f'{what} must be RGB with 3 channels, {layouts}; got shape {shape} '
                       f'({channels} channel{"s" if channels != 1 else ""}). Convert grayscale '
                       'or RGBA frames to RGB first.')
    if 0 in shape:
      raise ValueError(f'{what} are empty: shape {shape}')
    dtype = np.asarray(frame).dtype
    if dtype.kind != 'f':
      raise ValueError(f'{what} must be floats in [0, 1]; got {dtype} (divide the pixels by '
                       f'their largest code: 255 for 8-bit, 65535 for 16-bit)')
  if len({len(s) for s in shapes}) > 1:
    raise ValueError(f'{what} must all be single frames or all batches; got shapes {shapes}')
  if len({s[-3:-1] for s in shapes}) > 1:
    raise ValueError(f'{what} differ in size: {[f"{s[-2]}x{s[-3]}" for s in shapes]} (WxH); '
                     'interpolation needs frames of one size')
  for frame in frames:
    low, high = float(np.min(frame)), float(np.max(frame))
    if not (np.isfinite(low) and np.isfinite(high)):
      raise ValueError(f'{what} hold NaN or infinite values')
    if low < -0.5 or high > 1.5:
      raise ValueError(f'{what} must be in [0, 1]; got values from {low:.4g} to {high:.4g} '
                       '(0-255 pixels? divide by 255)')


def _unreadable(error: Exception) -> str:
  """TensorFlow's reason a SavedModel's files cannot be read, in one line."""
  reason = (getattr(error, 'message', None) or str(error)).strip().splitlines()
  return (f'a file of it is cut short or unreadable ({type(error).__name__}: '
          f'{reason[0] if reason else "no reason given"})')


def _wanted_positions(wanted, pair: int, step: int, times_to_interpolate: int) -> list[int]:
  """`wanted(pair)` as sorted whole positions in 1 .. step - 1, or a clear error: a callable that
  gave None or a float failed deep in the recursion."""
  named = wanted(pair)
  try:
    positions = sorted(set(named))
  except TypeError:
    raise TypeError(f'wanted({pair}) must give the in-between positions to make (ints), got '
                    f'{named!r}') from None
  if any(not is_whole_number(p) or not 0 < p < step for p in positions):
    raise ValueError(f'in-between positions of pair {pair} must be whole numbers in 1 .. '
                     f'{step - 1} for times_to_interpolate={times_to_interpolate}, got {positions}')
  return positions


class TileTooSmall(ValueError):
  """A `tile` this model cannot run (its least side): the setting's fault, not the file's."""


def check_settings(align=None, padding=None, flip_weights=None, precision=None, tile=None,
                   tile_overlap=None) -> None:
  """ValueError for a way of running a model that no model runs (None: not given); the model's
  own limits (its least tile) are checked once it is loaded."""
  for name, value in (('align', align), ('tile', tile), ('tile_overlap', tile_overlap)):
    if value is not None and not is_whole_number(value):
      raise ValueError(f'{name} must be a whole number of pixels, got {value!r}')
  if tile is not None and tile < 0:
    raise ValueError(f'tile must be None or 0 (whole frames) or > 0, got {tile}')
  if align is not None and align < 0:
    raise ValueError(f'align must be None or >= 0, got {align}')
  if padding is not None and padding not in PADDINGS:
    raise ValueError(f'padding must be one of {PADDINGS}, got {padding!r}')
  if flip_weights is not None and flip_weights not in FLIP_WEIGHTS:
    raise ValueError(f'flip_weights must be one of {FLIP_WEIGHTS}, got {flip_weights!r}')
  if precision is not None and precision not in specs.PRECISIONS:
    raise ValueError(f'precision must be one of {specs.PRECISIONS}, got {precision!r}')
  overlap = default_tile_overlap(tile, tile_overlap)
  if tile and not 0 <= overlap <= max_tile_overlap(tile):
    raise ValueError(f'tile_overlap must be in [0, {max_tile_overlap(tile)}] (at most half of '
                     f'tile={tile}: tiles step by at least half their size), got {overlap}')


class Interpolator:
  """film_net inference. Build with `from_path`, `random` or `from_weights`. (The scores below
  are the built-in model's when each choice was made, stage 8b's file of 2026-11-26; today's
  are in `docs/benchmarks.md`.)

  `flip_average=True` also runs every pair flipped about its main diagonal (transposed: rows
  become columns) and returns the mean of the two mid frames, flipped back. The model's errors
  are not symmetric, so they partly cancel; the diagonal flip turns horizontal structure
  vertical, which a left-right mirror does not, and gains more: built-in model, each pair once
  34.30 dB on Middlebury-Other, mirrored left-right 34.49, diagonal 34.57, and on the rendered
  held-out sets 0.2 dB more than left-right (`bench/bench_ensemble.py`), for 1.6-1.9x the model
  time (`bench/bench_film_net.py`). The fingerprint says so, since the pixels differ.

  `padding` is how `align` fills the border: 'zeros' as FILM's released tools do, or 'mirror'
  (the frame reflected, its edge pixels repeated). Black borders are content the built-in
  model never saw in training: on Middlebury-Other at align 64 it scores 34.00 dB with zeros,
  34.26 mirrored, 34.30 unpadded. The fingerprint marks mirror padding too.

  `flip_weights` is how the two runs are mixed: 'equal' (the plain mean) or 'agreement': per
  pixel, each run's disagreement between its two warped inputs (FILM's
  `x0_warped`, `x1_warped`, |difference| averaged over RGB, Gaussian-blurred over
  `AGREEMENT_SIGMA` px) is compared, and the run whose inputs agree better gets more weight,
  sigmoid(difference / `AGREEMENT_SCALE`); where they agree alike it is the plain mean. A run
  that misreads the motion (a wrong flow on periodic texture) warps its two inputs to different
  places, so the other run takes over there. Built-in model: Middlebury-Other 34.566 -> 34.623
  dB, rendered held-out sets +0.04 dB in the mean, for ~3% more time; a later checkpoint whose
  plain run smeared a small object over stripes scores 38.5 dB there instead of 31.1.
  'agreement_with_average' adds a third candidate to that mix, the plain average of the two
  inputs, whose disagreement is |x0 - x1| (what warped inputs show for no motion) plus
  `AVERAGE_MARGIN`. Where the scene stands still, the model's small spurious flows resample
  and soften what the average keeps sharp; where something moves, the inputs disagree and the
  runs keep their weight. Built-in model: Middlebury-Other 34.623 -> 34.723 dB (MiniCooper's
  still street +0.27), rendered held-out sets +0.02 / +0.08 / +0.14 dB, tripod shots +1.1.

  `from_path` takes these from the weight file (`weights.inference_defaults`): the built-in model
  runs flip-averaged (its 1080p frame stays inside its speed budget with it) and mirror padded,
  and so do the files trained on from it (training carries that meta); other models run each
  pair once, zero padded.

  `precision='bfloat16'` (native engine; `FilmNet`'s) multiplies in bfloat16 inside the
  convolutions, except those at the output's resolution (`specs.output_resolution_convs`), and
  keeps flows and warps in float32: on a 2-core CPU with AMX the built-in model's 1080p frame
  took 0.74x the time (flip-averaged; 0.69x each pair once), scores within 0.03 dB of float32
  on Middlebury-Other and rendered held-out sets (`bench/bench_film_net.py`,
  `bench/bench_quality.py --precision bfloat16`). The fingerprint marks it.

  `tile` (pixels) runs frames wider or taller than it as overlapping tiles of at most
  `tile` px a side (`tile_spans`: the fewest that overlap by `tile_overlap` px, default
  `flags.tile_overlap`, as short as that allows), each padded by itself as FILM's block mode
  does, and blends their mid frames with linear ramps across the overlaps (`tile_ramps`;
  FILM's blocks abut, leaving seams). The model's memory then follows the tile's area instead of
  the frame's: no features are kept between calls, so each call extracts its two tiles' anew.
  Motion that crosses a tile edge by more than the overlap loses its context there
  (`bench/bench_tiles.py` measures both). The fingerprint marks it.

  `warp_fn` is the native engine's warp; by default `warp.default_warp()` (XLA-fused on CPU).
  """

  def __init__(self, net: FilmNet | None = None, *, align: int | None = 64,
               saved_model=None, fingerprint: str = '', source: str = '',
               flip_average: bool = False, padding: str = 'zeros', warp_fn=None,
               flip_weights: str = 'equal', tile: int | None = None,
               tile_overlap: int | None = None, options: Options | None = None):
    if (net is None) == (saved_model is None):
      raise ValueError('an Interpolator needs exactly one of a FilmNet or a SavedModel')
    check_settings(align=align, padding=padding, flip_weights=flip_weights, tile=tile,
                   tile_overlap=tile_overlap)
    tile_overlap = default_tile_overlap(tile, tile_overlap)
    self.align = align
    self.tile = tile or None
    self.tile_overlap = tile_overlap
    self.padding = padding
    self.engine = 'native' if net is not None else 'savedmodel'
    self.net = net
    # A SavedModel's options, where known, say the smallest frame it runs (`check_size`).
    self.options = net.options if net is not None else options
    self.flip_average = flip_average
    self.flip_weights = flip_weights
    self.precision = net.precision if net is not None else 'float32'
    self._by_agreement = flip_average and flip_weights != 'equal'
    self._with_average = flip_average and flip_weights == 'agreement_with_average'
    self.fingerprint = (fingerprint + ('+diagonal_flip_average' if flip_average else '') +
                        ('_by_agreement' if self._by_agreement else '') +
                        ('_with_input_average' if self._with_average else '') +
                        ('+mirror_pad' if padding == 'mirror' else '') +
                        ('+bfloat16' if self.precision == 'bfloat16' else '') +
                        (f'+tile{tile}o{tile_overlap}' if tile else ''))
    self.source = source
    self.model_calls = 0      # mid frames computed
    self.feature_calls = 0    # frames run through the feature extractor
    # One model computation at a time, whichever thread asks (a pipeline's worker threads
    # share one Interpolator): each concurrent call would add its activations (4.4 GB for the
    # built-in model's 1080p frame) for at most a few percent more frames per second, since
    # one call already keeps every CPU core (or the GPU) busy (`docs/benchmarks.md`).
    # Re-entrant, so that `exclusively()` can hold it across calls.
    self._one_at_a_time = threading.RLock()
    self._saved_model = saved_model
    self._mix_by_agreement = (_fused_mix_by_agreement if warp_lib.fuse_with_xla() else
                              mix_by_agreement)
    if net is not None:
      self._features = AnySizeFunction(net.features)
      warp_fn = warp_fn or warp_lib.default_warp()
      self._mid = AnySizeFunction(
          lambda p0, f0, p1, f1: net.interpolate_from_features(p0, f0, p1, f1,
                                                               warp_fn=warp_fn)['image'])
      self._mid_and_disagreement = AnySizeFunction(
          lambda p0, f0, p1, f1: _mid_and_disagreement(
              net.interpolate_from_features(p0, f0, p1, f1, aux_outputs=True, warp_fn=warp_fn)))
    # Padded (to `align`), a tile must reach the model's least side; and it must be a tile of
    # the frame, not of border: at least MIN_TILE px (the command lines' least), or the model's
    # least side where that is smaller (tiny models). (tile=1 ran every pixel as a tile.)
    if self.tile and self.options is not None:
      least = min(self.options.min_size, MIN_TILE)
      if self.tile < least or _pad_box(self.tile, self.tile, align)[2] < self.options.min_size:
        raise TileTooSmall(f'tile={self.tile} is too small for this model: its tiles need >= '
                           f'{least} px of the frame and >= {self.options.min_size} px on each '
                           f'side once padded to align={align}')

  # -- construction ----------------------------------------------------------------------------

  @classmethod
  def from_weights(cls, weights: dict[str, np.ndarray], options: Options | None = None,
                   align: int | None = 64, source: str = '',
                   flip_average: bool = False, padding: str = 'zeros',
                   precision: str = 'float32', flip_weights: str = 'equal',
                   tile: int | None = None,
                   tile_overlap: int | None = None) -> 'Interpolator':
    options = options or weights_lib.infer_options(weights)
    weights_lib.check_finite(weights)
    net = FilmNet(options, name='film_net', precision=precision)
    net.set_released_weights(weights)
    return cls(net, align=align, fingerprint=weights_lib.fingerprint(weights, options),
               source=source, flip_average=flip_average, padding=padding,
               flip_weights=flip_weights, tile=tile, tile_overlap=tile_overlap)

  @classmethod
  def random(cls, options: Options | None = None, seed: int = 0, align: int | None = 64,
             flip_average: bool = False, padding: str = 'zeros',
             precision: str = 'float32', flip_weights: str = 'equal', tile: int | None = None,
             tile_overlap: int | None = None) -> 'Interpolator':
    """Glorot-initialised weights (zero biases), as a fresh FILM model; for tests and benches."""
    options = options or Options.tiny()
    net = FilmNet(options, seed=seed, name='film_net', precision=precision)
    return cls(net, align=align, source=f'random(seed={seed})',
               fingerprint=weights_lib.fingerprint(net.released_weights(), options),
               flip_average=flip_average, padding=padding, flip_weights=flip_weights,
               tile=tile, tile_overlap=tile_overlap)

  @classmethod
  def from_path(cls, path: str | None = None, options: Options | None = None,
                align: int | None = 64, engine: str = 'native',
                flip_average: bool | None = None, padding: str | None = None,
                precision: str = 'float32', flip_weights: str | None = None,
                tile: int | None = None,
                tile_overlap: int | None = None) -> 'Interpolator':
    """Loads a released SavedModel dir, a `.npz`, or our weight file; None: the built-in model.

    Options not given are read from the weight file or inferred from the weight shapes (given
    ones that differ from the file's are used, and said in a warning);
    `flip_average`, `padding` and `flip_weights` None are the weight file's defaults (see the
    class docstring).
    """
    if engine not in ENGINES:
      raise ValueError(f'engine must be one of {ENGINES}, got {engine!r}')
    # Before the file is read: a setting it cannot run with is no fault of the file's.
    check_settings(align=align, padding=padding, flip_weights=flip_weights, precision=precision,
                   tile=tile, tile_overlap=tile_overlap)
    if path is None:
      path = DEFAULT_MODEL
      if not os.path.exists(path):
        raise FileNotFoundError(f'the built-in default model is missing from the package: {path}')
    with weights_lib.local_copy(str(path)) as local:
      try:
        defaults = weights_lib.inference_defaults(local)
      except ValueError as e:  # (a damaged meta: run as it says, or not at all)
        raise ValueError(f'cannot load film_net model from {path}: {e}') from None
      flip_average = defaults['flip_average'] if flip_average is None else flip_average
      padding = padding or defaults['padding']
      flip_weights = flip_weights or defaults['flip_weights']
      is_saved_model = weights_lib.is_saved_model(local)
      if engine == 'savedmodel':
        if precision != 'float32':
          raise ValueError(f"precision {precision!r} needs engine='native'")
        if not is_saved_model:
          raise ValueError(f"engine='savedmodel' needs a SavedModel directory; {path} is not one")
        try:
          loaded = tf.saved_model.load(local)
        except (tf.errors.OpError, IndexError, OSError, ValueError) as e:
          raise ValueError(f'cannot load film_net model from {path}: {_unreadable(e)}') from e
        if flip_average and flip_weights != 'equal':  # said at load, not at the first frame
          _check_warped_outputs(_signature_outputs(loaded), flip_weights, path)
        fp = weights_lib.fingerprint_saved_model(loaded)
        return cls(saved_model=loaded, align=align, fingerprint=fp, source=str(path),
                   flip_average=flip_average, padding=padding, flip_weights=flip_weights,
                   tile=tile, tile_overlap=tile_overlap,
                   options=options or weights_lib.saved_model_options(loaded))
      try:
        if not (is_saved_model or os.path.isfile(local)):  # (a file: an .npz, whatever its name)
          if os.path.isfile(os.path.join(local, 'latest.npz')):
            raise ValueError('this is a training run\'s folder; its weights are '
                             f'{str(path).rstrip("/")}/latest.npz')
          raise ValueError('expected a SavedModel directory (with saved_model.pb) or a .npz file')
        weights, file_options = weights_lib.read_weights(local)
      except zipfile.BadZipFile as e:  # A truncated download, or not an .npz at all.
        raise ValueError(f'cannot load film_net model from {path}: not a readable .npz weight '
                         f'file ({e})') from e
      except (ValueError, OSError, KeyError) as e:
        # (TensorFlow's own OSErrors, a SavedModel's variables/ gone: in one line, as the
        # savedmodel engine says it)
        why = str(e).strip().splitlines()[0] if isinstance(e, OSError) and str(e).strip() else e
        raise ValueError(f'cannot load film_net model from {path}: {why}') from e
      except (tf.errors.OpError, IndexError) as e:  # a SavedModel's files gone or cut short
        raise ValueError(f'cannot load film_net model from {path}: {_unreadable(e)}') from e
    if options is not None and file_options is not None and options != file_options:
      given, recorded = dataclasses.asdict(options), dataclasses.asdict(file_options)
      _log.warning('%s: running with the options given, not those it records (%s)', path,
                   ', '.join(f'{name} {given[name]}, the file\'s {recorded[name]}'
                             for name in given if given[name] != recorded.get(name)))
    try:
      options = options or file_options or weights_lib.infer_options(weights)
      return cls.from_weights(weights, options, align=align, source=str(path),
                              flip_average=flip_average, padding=padding, precision=precision,
                              flip_weights=flip_weights, tile=tile, tile_overlap=tile_overlap)
    except TileTooSmall:
      raise
    except (ValueError, KeyError) as e:
      raise ValueError(f'cannot load film_net model from {path}: {e}') from e

  def save(self, path: str) -> None:
    """Writes our weight file (released names, options, and how this Interpolator runs: flip
    averaging, its weights, padding) that `from_path` reloads as the same model run the same
    way. Settings of the machine it runs on are not the model's and are not recorded: `align`,
    `tile`, `tile_overlap` and `precision` are `from_path`'s to give again."""
    self._need_native('save')
    weights_lib.save(path, self.net.released_weights(), self.options,
                     meta={'inference': self._inference()})

  def export_saved_model(self, path: str) -> None:
    """Writes a SavedModel of FILM's released calling convention (`film_net.export`) that
    records how this Interpolator runs too (as `save` does), so that `from_path` runs it the
    same way."""
    self._need_native('export_saved_model')
    from film_net.export import export_saved_model  # pylint: disable=import-outside-toplevel
    export_saved_model(self.net.released_weights(), self.options, path, self._inference())

  def _inference(self) -> dict:
    return {'flip_average': self.flip_average, 'padding': self.padding,
            'flip_weights': self.flip_weights}

  def _need_native(self, what: str) -> None:
    if self.net is None:
      raise ValueError(f"{what} needs engine='native'")

  # -- padding ---------------------------------------------------------------------------------

  def _pad(self, x: np.ndarray) -> tf.Tensor:
    top, left, height, width = _pad_box(x.shape[-3], x.shape[-2], self.align)
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
      x = x[None]
    if (height, width) == x.shape[1:3]:
      return tf.convert_to_tensor(x)
    if self.padding == 'mirror':  # np.pad repeats the reflection where the pad outgrows the frame
      box = ((0, 0), (top, height - x.shape[1] - top), (left, width - x.shape[2] - left), (0, 0))
      return tf.convert_to_tensor(np.pad(x, box, mode='symmetric'))
    return tf.image.pad_to_bounding_box(x, top, left, height, width)

  def _crop(self, y: tf.Tensor, height: int, width: int) -> np.ndarray:
    """The model's padded output cropped back to the frames' size; every mid frame comes out
    here. NaN or infinite values in it are an error, not a frame (the inputs' are refused by
    `check_frames`, so the model made them): written, they would be black or white pixels."""
    top, left, _, _ = _pad_box(height, width, self.align)
    mid = y.numpy()[:, top:top + height, left:left + width]
    broken = mid.size - np.count_nonzero(np.isfinite(mid))
    if broken:
      raise ValueError(f'the model gave {broken} NaN or infinite values of {mid.size} in a mid '
                       f'frame ({self.source or "its weights"})')
    return mid

  def check_size(self, height: int, width: int, batch: int = 1) -> None:
    """The frame, as padded, must be at least `Options.min_size` on each side, and on CPU the
    model call on `batch` such pairs must fit in the machine's memory (`memory.FrameTooLarge`
    otherwise)."""
    if self.options is None:
      return
    smallest = self.options.min_size
    _, _, padded_height, padded_width = _pad_box(height, width, self.align)
    if min(padded_height, padded_width) < smallest:
      padded = (f' (padded to {padded_width}x{padded_height} by align={self.align})'
                if self.align else ' without padding')
      raise ValueError(f'frames of {width}x{height}{padded} are too small for this model: it '
                       f'needs >= {smallest} px on each side; pad them: align '
                       f'{max(64, smallest)} (--align {max(64, smallest)})')
    self._check_memory(height, width, batch)

  def _check_memory(self, height: int, width: int, batch: int) -> None:
    """Refuses a frame whose model call could never fit in this machine's memory on CPU, where
    the operating system would end the process for it (`film_net.memory`)."""
    available = memory.machine_bytes()
    if not available or _on_gpu():
      return
    tiled = self._tiled(height, width)
    run_height, run_width = (min(height, self.tile), min(width, self.tile)) if tiled else (
        height, width)
    _, _, padded_height, padded_width = _pad_box(run_height, run_width, self.align)
    need = memory.frame_bytes(self.options, padded_height, padded_width, self.flip_average,
                              batch)
    whole_frames = memory.TILED_FRAME_BYTES_PER_PIXEL * height * width * batch if tiled else 0
    if need + whole_frames <= available:  # (tiled: the frames, mid frame, blend weights too)
      return
    frames = (f'a {width}x{height} frame' if batch == 1 else
              f'a batch of {batch} {width}x{height} frames')
    what = (f'its tiles of up to {run_width}x{run_height} (tile={self.tile})' if tiled else
            'it')
    # Smaller tiles help where the tiles' part is more than what the whole frames take.
    smaller = tiled and need - memory.BASE_BYTES > whole_frames and self.tile > MIN_TILE
    remedy = ('run it as smaller tiles (--tile), or ' if smaller else
              '' if tiled else 'run it as tiles (--tile), or ')
    raise memory.FrameTooLarge(
        f'{frames} is too large for this machine: {what} would need about '
        f'{(need + whole_frames) / 2**30:.1f} GB of memory for this model on CPU (estimated), '
        f'more than the {available / 2**30:.1f} GB it has in all, and the operating system '
        f'would end the process; {remedy}where there is more memory')

  # -- inference -------------------------------------------------------------------------------

  def __call__(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """The mid frame for each pair: (B,H,W,3) float32 in [0,1] -> (B,H,W,3), not clipped."""
    check_frames(x0, x1, what='x0 and x1')
    x0, x1 = np.asarray(x0, np.float32), np.asarray(x1, np.float32)
    if x0.ndim == 3:
      return self(x0[None], x1[None])[0]
    if x0.shape[0] != x1.shape[0]:
      raise ValueError(f'x0 and x1 batch sizes differ: {x0.shape[0]} vs {x1.shape[0]}')
    height, width = x0.shape[1:3]
    self.check_size(height, width, x0.shape[0])
    with self._one_at_a_time:  # counted under the lock: threads may share this Interpolator
      self.model_calls += x0.shape[0]
    return self._whole_or_tiled_mid(x0, x1)

  def _whole_or_tiled_mid(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """The mid frames of (B,H,W,3) inputs: the model on the whole frames, or on `tile`s."""
    height, width = x0.shape[1:3]
    if not self._tiled(height, width):
      return self._crop(self._pair_mid(self._pad(x0), self._pad(x1)), height, width)
    mid = np.zeros(x0.shape, np.float32)
    total = np.zeros((height, width, 1), np.float32)
    # A tile at least the model's least side pads to at least that too, whatever `align`
    # (an align below it, 8, left 56 px tiles the model cannot run).
    shortest = 1 if self.options is None else self.options.min_size
    rows, columns = (tile_spans(n, self.tile, self.tile_overlap, self.align or 1, shortest)
                     for n in (height, width))
    column_ramps = tile_ramps(columns)
    for (top, bottom), row_ramp in zip(rows, tile_ramps(rows)):
      for (left, right), column_ramp in zip(columns, column_ramps):
        box = np.s_[:, top:bottom, left:right]
        part = self._crop(self._pair_mid(self._pad(x0[box]), self._pad(x1[box])),
                          bottom - top, right - left)
        weight = np.outer(row_ramp, column_ramp)[..., None]
        mid[box] += weight * part
        total[top:bottom, left:right] += weight
    return mid / total

  def _tiled(self, height: int, width: int) -> bool:
    return bool(self.tile) and max(height, width) > self.tile

  def _pair_mid(self, p0: tf.Tensor, p1: tf.Tensor) -> tf.Tensor:
    """The padded mid frame of padded inputs, features extracted for this call only."""
    if self.engine == 'savedmodel':
      return self._saved_model_pair(p0, p1)
    return self._mid_from_features(self._extract(p0), self._extract(p1))

  def _saved_model_pair(self, p0: tf.Tensor, p1: tf.Tensor) -> tf.Tensor:
    """The padded mid frame from padded inputs, flip-averaged if asked, with whole-model calls."""
    with self._one_at_a_time:
      plain = self._saved_model_mid(p0, p1)
      if not self.flip_average:
        return plain[0]
      return self._mix(plain, self._saved_model_mid(_flip(p0), _flip(p1)), p0, p1)

  def _saved_model_mid(self, p0: tf.Tensor, p1: tf.Tensor):
    """(mid frame, disagreement of the warped inputs or None if not needed)."""
    time = tf.fill([p0.shape[0], 1], 0.5)
    outputs = self._saved_model({'x0': p0, 'x1': p1, 'time': time}, training=False)
    if not self._by_agreement:
      return outputs['image'], None
    _check_warped_outputs(set(outputs), self.flip_weights, self.source)
    return _mid_and_disagreement(outputs)

  def _extract(self, padded: tf.Tensor):
    """The frame's (image pyramid, features); with flip_average, of the flipped frame too."""
    with self._one_at_a_time:
      self.feature_calls += int(padded.shape[0]) * (2 if self.flip_average else 1)
      features = self._features(padded)
      return (features, self._features(_flip(padded))) if self.flip_average else features

  def _mid_from_features(self, state0, state1) -> tf.Tensor:
    with self._one_at_a_time:
      return self._mid_from_features_now(state0, state1)

  def _mid_from_features_now(self, state0, state1) -> tf.Tensor:
    if not self.flip_average:
      return self._mid(*state0, *state1)
    (plain0, flipped0), (plain1, flipped1) = state0, state1
    if self._by_agreement:
      run = self._mid_and_disagreement
    else:
      run = lambda *state: (self._mid(*state), None)
    # An image pyramid's first level is the padded frame itself.
    return self._mix(run(*plain0, *plain1), run(*flipped0, *flipped1),
                     plain0[0][0], plain1[0][0])

  def _mix(self, plain, flipped, p0: tf.Tensor, p1: tf.Tensor) -> tf.Tensor:
    """The flip-averaged mid frame from each run's (mid, disagreement) and the padded inputs;
    see `flip_weights`."""
    (mid, disagreement), (mid_f, disagreement_f) = plain, flipped
    if not self._by_agreement:
      return 0.5 * (mid + _flip(mid_f))
    candidates = [(mid, disagreement), (_flip(mid_f), _flip(disagreement_f))]
    if self._with_average:
      candidates.append(input_average(p0, p1))
    return self._mix_by_agreement(candidates)

  def exclusively(self):
    """A context manager: the model is this thread's alone until the block ends. For a whole
    recursion (`iter_recursive`): between its calls each frame's features wait in memory (for
    the built-in model ~0.7 GB per 1080p frame, flip-averaged), so threads taking turns call by
    call would each hold theirs at once."""
    return self._one_at_a_time

  def recursive(self, frames: Sequence[np.ndarray], times_to_interpolate: int) -> list[np.ndarray]:
    """(N-1) * 2**n + 1 frames in temporal order: the inputs with 2**n - 1 frames between each
    consecutive pair, made by recursive halving as FILM's tools do."""
    return list(self.iter_recursive(frames, times_to_interpolate))

  def iter_recursive(self, frames: Iterable[np.ndarray],
                     times_to_interpolate: int) -> Iterator[np.ndarray]:
    """`recursive` as a generator holding only the current pair's state: for long clips."""
    for _, position, frame in self._iter_positions(frames, times_to_interpolate, None):
      # (an input as given, a float32 array, was handed back: clipping an output in place
      # changed the caller's frame)
      yield frame.copy() if position == 0 else frame

  def iter_in_betweens(self, frames: Iterable[np.ndarray], times_to_interpolate: int,
                       wanted: Callable[[int], Iterable[int]] | None = None
                       ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(pair, position, frame) for the in-betweens of each consecutive pair of `frames`, in
    time order: `position` p of 2**n is the frame p / 2**n of the way from the pair's first
    frame to its second. `wanted(pair)` names the positions to make (default: all, 1 .. 2**n -
    1; `recursive`'s in-betweens): only the mid frames on their halving paths are computed, and
    a frame's features only once a call takes it. For retiming, where each output frame takes
    the in-between nearest its time and most positions go unused."""
    for pair, position, frame in self._iter_positions(frames, times_to_interpolate, wanted):
      if position:
        yield pair, position, frame

  def _iter_positions(self, frames, times_to_interpolate: int, wanted):
    """(pair, position, frame) of the inputs (position 0, pair = the frame's index) and the
    in-betweens `wanted` names (all when None), in time order."""
    if not is_whole_number(times_to_interpolate) or times_to_interpolate < 0:
      raise ValueError(f'times_to_interpolate must be a whole number >= 0, got '
                       f'{times_to_interpolate!r}')
    step = 2 ** times_to_interpolate
    previous = None
    for index, frame in enumerate(frames):
      # One check per frame, with the previous one: their sizes must match.
      check_frames(*((previous.frame,) if previous else ()), frame, single=True)
      current = _LazyState(np.asarray(frame, np.float32), self._frame_state)
      if previous is None:
        self.check_size(*current.frame.shape[:2])
      else:
        positions = range(1, step) if wanted is None else _wanted_positions(
            wanted, index - 1, step, times_to_interpolate)
        for position, mid in self._recurse(previous, current, 0, step, positions):
          yield index - 1, position, mid
      yield index, 0, current.frame
      previous = current

  def _frame_state(self, frame: np.ndarray):
    """(frame, padded, features): what every call that takes this frame needs."""
    if self._tiled(*frame.shape[:2]):  # each call pads and extracts its tiles itself
      return frame, None, None
    padded = self._pad(frame)
    if self.net is None:  # savedmodel engine: whole-model calls, no features to keep
      return frame, padded, None
    return frame, padded, self._extract(padded)

  def _recurse(self, a, b, low: int, high: int, positions) -> list[tuple[int, np.ndarray]]:
    """[(position, frame)] of `positions` (sorted, all strictly between `low` and `high`, the
    positions of `a` and `b`), made by halving: the mid frame of a and b, then each half that
    holds a wanted position."""
    if not positions:
      return []
    height, width = a.frame.shape[:2]
    # Mid frames are fed back unchecked: the model's output is not clipped (the released tools
    # recurse on it as it is), and frames checked once stay checked.
    if self._tiled(height, width):
      mid = self._whole_or_tiled_mid(a.frame[None], b.frame[None])[0]
    elif self.engine == 'savedmodel':
      mid = self._crop(self._saved_model_pair(a.state[1], b.state[1]), height, width)[0]
    else:
      mid = self._crop(self._mid_from_features(a.state[2], b.state[2]), height, width)[0]
    with self._one_at_a_time:
      self.model_calls += 1
    middle = (low + high) // 2
    # As the released tools do, the cropped mid frame is padded afresh for the next level.
    m = _LazyState(mid, self._frame_state)
    return (self._recurse(a, m, low, middle, [p for p in positions if p < middle])
            + [(middle, mid)] * (middle in positions)
            + self._recurse(m, b, middle, high, [p for p in positions if p > middle]))


def _on_gpu() -> bool:
  """Whether TensorFlow computes on a GPU here (one it may use: `set_visible_devices` can hide
  them from this process)."""
  return bool(tf.config.get_visible_devices('GPU'))


class _LazyState:
  """A frame and, made on its first use, what every model call that takes it needs
  (`Interpolator._frame_state`): a frame no call takes costs no features."""

  def __init__(self, frame: np.ndarray, make):
    self.frame = frame
    self._make = make
    self._state = None

  @property
  def state(self):
    if self._state is None:
      self._state = self._make(self.frame)
    return self._state


def _signature_outputs(loaded) -> set[str] | None:
  """The output names of a SavedModel's serving signature (None where it has none)."""
  signature = getattr(loaded, 'signatures', {}).get('serving_default')
  outputs = getattr(signature, 'structured_outputs', None)
  return set(outputs) if isinstance(outputs, dict) else None


def _check_warped_outputs(outputs: set[str] | None, flip_weights: str, source) -> None:
  """Mixing by agreement needs a SavedModel's warped inputs (outputs None: not known yet)."""
  missing = {'x0_warped', 'x1_warped'} - outputs if outputs is not None else ()
  if missing:
    raise ValueError(f"flip_weights={flip_weights!r} needs the SavedModel's "
                     f"{sorted(missing)} outputs, which {source or 'it'} lacks; use "
                     "flip_weights='equal'")


def _mid_and_disagreement(outputs: dict):
  """The mid frame and, per pixel, how far apart the two inputs land once warped to it."""
  return outputs['image'], _disagreement(outputs['x0_warped'], outputs['x1_warped'])


def input_average(x0: tf.Tensor, x1: tf.Tensor):
  """The no-motion candidate: the inputs' mean, and their disagreement plus `AVERAGE_MARGIN`."""
  return 0.5 * (x0 + x1), _disagreement(x0, x1) + AVERAGE_MARGIN


class AnySizeFunction:
  """`tf.function(fn)` traced once, at its first call, for (B, H, W, C) tensors of any batch and
  frame size.

  Traced for exact shapes, each new frame size traces the model again, layer by layer in
  Python (~5 s for the built-in model on 2 CPU cores); with flip averaging, every frame that is
  not square brings two sizes, itself and its transpose. Traced once for any size, a run's first
  16:9 frame is that much sooner and later sizes cost only their kernels' set-up; steady speed is
  the same (`docs/benchmarks.md`, "Start-up").
  """

  def __init__(self, fn):
    # No AutoGraph (here and in the model's other functions): their Python loops run over
    # layers and levels, never tensors, and converting them cost ~4 s of a process's first frame.
    self._function = tf.function(fn, reduce_retracing=True, autograph=False)
    self._traced = False

  def __call__(self, *args):
    if not self._traced:
      self._function.get_concrete_function(*tf.nest.map_structure(_any_size, args))
      self._traced = True
    return self._function(*args)

  def tracing_count(self) -> int:
    return self._function.experimental_get_tracing_count()


def _any_size(tensor: tf.Tensor) -> tf.TensorSpec:
  return tf.TensorSpec([None, None, None, *tensor.shape[3:]], tensor.dtype)


def _disagreement(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """Per pixel, how far apart two frames are: |a - b| averaged over RGB, (B,H,W,1)."""
  return tf.reduce_mean(tf.abs(a - b), axis=-1, keepdims=True)


def mix_by_agreement(candidates) -> tf.Tensor:
  """Per-pixel weighted mean of candidate mid frames [(mid (B,H,W,3), disagreement (B,H,W,1))],
  each weighted by how well its own warped inputs agree: softmax over candidates of
  -blurred disagreement / `AGREEMENT_SCALE` (for two, the better one gets sigmoid(difference /
  scale)); see `flip_weights` in `Interpolator`."""
  scores = tf.stack([-_gaussian_blur(d, AGREEMENT_SIGMA) / AGREEMENT_SCALE
                     for _, d in candidates])
  weights = tf.nn.softmax(scores, axis=0)
  return tf.add_n([weights[i] * mid for i, (mid, _) in enumerate(candidates)])


# One XLA kernel per frame size, as `warp.fused_warp`; at 1080p on 2 AVX2 cores two runs' mix
# took 0.03 s instead of 0.31 s unfused (1.66 s with the blur as a one-channel convolution).
_fused_mix_by_agreement = tf.function(mix_by_agreement, jit_compile=True, autograph=False)


def _gaussian_blur(x: tf.Tensor, sigma: float) -> tf.Tensor:
  """Separable Gaussian blur of (B,H,W,1), normalised by the kernel mass inside the frame, so
  borders are not darkened and frames smaller than the kernel work. Written as sums of shifted
  slices, which XLA fuses into one pass: a convolution with one channel ran ~100x slower."""
  radius = int(3 * sigma)
  taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
  taps /= taps.sum()

  def along(image, axis):  # zero padded, as a 'SAME' convolution
    size = image.shape[axis]
    box = [[0, 0]] * 4
    box[axis] = [radius, radius]
    padded = tf.pad(image, box)
    shifted = (padded[:, i:i + size] if axis == 1 else padded[:, :, i:i + size]
               for i in range(len(taps)))
    return tf.add_n([float(tap) * part for tap, part in zip(taps, shifted)])

  mass = along(tf.ones_like(x[:1, :, :1]), 1) * along(tf.ones_like(x[:1, :1, :]), 2)
  return along(along(x, 1), 2) / mass


def _flip(x: tf.Tensor) -> tf.Tensor:
  """A (B, H, W, C) tensor flipped about its main diagonal, (B, W, H, C); its own inverse.
  Flipping a whole padded frame, and its result back, keeps every pixel where it was; and since
  `_pad_box` centres the frame the same way on both axes, the flipped padded frame is also the
  flipped frame padded."""
  return tf.transpose(x, [0, 2, 1, 3])
