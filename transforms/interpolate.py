"""The interpolation step: one work unit in, its frames and markers written, records out.

The model is loaded lazily in `setup`, once per worker process, and shared by the process's
threads through `apache_beam.utils.shared.Shared`. We chose that over `RunInference` with a
ModelHandler of ours because RunInference batches independent examples, while a unit is one
sequential recursion (`Interpolator.iter_in_betweens`) in which every mid frame feeds the next
call and each frame's features are computed once for both pairs that share it; splitting a unit
into independent pair examples recomputes those features. bench/bench_pipeline.py measures this:
per-pair calls vs one recursion over the unit (numbers in the report/docs/benchmarks.md).
A pair of one image twice (a freeze, a title card, a frame a transfer repeated) gets no model
call: its in-betweens are that image, exactly. With scene-cut detection on (`--scene_cuts`), so
does a pair that is an edit's cut (`scene_cuts`): its in-betweens hold the nearer original.
Retimed (`--output_fps`, `retime`), a pair writes only the output frames whose nearest dense
frames lie in its span, and the model makes only the in-betweens they take.

A pair is done when its marker `<output>/_markers/<clip>/pair_<pos>-<lo>-<hi>-<key>.done` exists;
the key hashes the model fingerprint, the options that change pixels and the pair's input files
(where the path leads, size, mtime: the same archive named relative or absolute or through a link
is the same input), and the marker is written only after all of the pair's frames. So a re-run
skips exactly the finished pairs and redoes anything new, changed or interrupted (`--reprocess`
forces). `lo..hi` are the output indices the pair writes: before a pair writes, every other
marker of the clip whose indices meet them is deleted (its frames are about to change; the
clip's markers are listed once per process and job, `EarlierMarkers`), so going back to earlier
options or inputs redoes those pairs instead of skipping them over frames that another version
wrote. A unit finds its markers by listing, and reads only those that may be
this job's (`_marks`): on GCS a nightly run over an unchanged archive costs a request per unit.
"""

import bisect
import collections
import concurrent.futures
import contextlib
import hashlib
import json
import posixpath
import re
import threading
import time
import uuid

import apache_beam as beam
from apache_beam.utils import shared

from transforms import dpx
from transforms import files
from transforms import images
from transforms import records
from transforms import retime
from transforms import scene_cuts

# Bump when the pixels written for the same model and inputs change (it invalidates markers).
OUTPUT_FORMAT_VERSION = 1
# The same for DPX inputs alone: 2 since 10-bit luma is read from a word's low end (pairs made
# from DPX before were made again once; a key of other inputs is unchanged).
DPX_READ_VERSION = 2
_WRITE_THREADS = 4
# Seconds by which a marker must predate the job's start to be taken for an earlier job's
# without reading it: more than the storage's time resolution (a second on some filesystems).
CLOCK_STEP_SECONDS = 2
# What TensorFlow (GPU or CPU allocator) and Python raise when the model's activations do not fit.
_OUT_OF_MEMORY = ('ResourceExhaustedError', 'MemoryError')
# How often a unit notes its progress while its pairs come out of the model (a local file).
PROGRESS_NOTE_SECONDS = 1.0


class ModelError(RuntimeError):
  """The model could not be loaded; the message says which and why."""


# Models this process loaded, by what they compute and how they run, the most recent last. A
# process that runs several jobs (a notebook, a scheduler's Python, an evaluation after a run)
# traces a model once, not once per job (seconds each); the file is read again every time, so
# one replaced under its name is a new entry, never the old model.
_LOADED_MODELS = collections.OrderedDict()
_LOADED_MODELS_KEPT = 2
_loaded_models_lock = threading.Lock()


def load_model(model_path, align, flip_average=None, precision='float32', tile=None):
  """Loads `model_path` (None: the built-in model) or raises ModelError with a clear message.

  `flip_average` None: as the weight file says (`Interpolator.from_path`); `tile`: None (whole
  frames) or (tile, tile_overlap) in pixels. A model this process loaded before, with the same
  weights and settings, is given again (`_LOADED_MODELS`)."""
  try:
    from film_net import Interpolator  # pylint: disable=import-outside-toplevel
    size, overlap = tile or (None, None)
    model = Interpolator.from_path(model_path or None, align=align, flip_average=flip_average,
                                   precision=precision, tile=size, tile_overlap=overlap)
    return _loaded_before(model_path, model)
  except Exception as e:  # pylint: disable=broad-except
    if type(e).__name__ == 'TileTooSmall':  # (the flag's fault, not the file's)
      raise ModelError(f'--tile {size}: {e}') from e
    where = model_path or 'the built-in default model (film_net/default_model/)'
    from film_net.flags import NO_TENSORFLOW  # pylint: disable=import-outside-toplevel
    from film_net.weights import DEFAULT_MODEL  # pylint: disable=import-outside-toplevel
    said = f'cannot load film_net model from {model_path or DEFAULT_MODEL}: '
    why = str(e)[len(said):] if str(e).startswith(said) else f'{type(e).__name__}: {e}'
    if isinstance(e, ModuleNotFoundError) and e.name == 'tensorflow':
      why = NO_TENSORFLOW
    why = files.storage_failure(e) or why  # (exit status 1, not 2: `launch.run_command`)
    raise ModelError(f'cannot load the film_net model from {where}: {why}') from e  # once


def _loaded_before(model_path, model):
  """The model this process loaded before that is `model` (the same weights, path and way of
  running), else `model`, kept for the next load."""
  key = (model_path, model.fingerprint, model.align, model.flip_average, model.flip_weights,
         model.padding, model.precision, model.tile, model.tile_overlap)
  with _loaded_models_lock:
    model = _LOADED_MODELS.pop(key, model)
    _LOADED_MODELS[key] = model
    while len(_LOADED_MODELS) > _LOADED_MODELS_KEPT:
      _LOADED_MODELS.popitem(last=False)
  return model


def acquire_model(handle, run_id, model_path, align, flip_average=None, precision='float32',
                  tile=None):
  """`load_model`'s model through `handle` (Beam's `Shared`): one load per process per run,
  the launcher's included, while anyone holds it (a later run's load reads the file again and
  gets the same model back, traced, where nothing changed)."""
  return handle.acquire(
      lambda: load_model(model_path, align, flip_average, precision, tile),
      tag=f'{model_path}|{align}|{flip_average}|{precision}|{tile}|{run_id}')


def tile_setting(known):
  """`load_model`'s `tile` from parsed `--tile` / `--tile_overlap` flags."""
  return (known.tile, known.tile_overlap) if known.tile else None


def frame_name(index, output_format='png'):
  return f'frame_{index:06d}.{output_format}'


FRAME_NAME = re.compile(r'frame_(\d{6,})\.(png|dpx)$')
_MARKER_NAME = re.compile(r'/(?:pair|frame)_\d+-(\d+)-(\d+)-[0-9a-f]+\.done$')


def _marker_folder(output, clip):
  return files.join(output, files.MARKERS_DIR, clip)


def _marker_stem(name):
  """A done marker's name less its key: `pair_<position>-<first index>-<last index>`."""
  return name.rsplit('-', 1)[0]


def _marker_position(path):
  """Which pair (`pair_<position>`) or lone frame a done marker is of."""
  return posixpath.basename(path).split('-', 1)[0]


def listed_markers(output, clip):
  """[(path, lo, hi)] of the clip's done markers (lo, hi None: the naming before index ranges,
  which cannot say). A folder not there yet lists as empty; a listing that fails raises (the
  bundle is retried): taken for empty, stale markers would stay and vouch for frames about to
  change."""
  listed = []
  for m in files.match(_marker_folder(output, clip), '*.done'):
    found = _MARKER_NAME.search(m.path)
    listed.append((m.path, *(map(int, found.groups()) if found else (None, None))))
  return listed


def delete_markers(output, clip, overlapping, keep=(), listed=None, positions=()):
  """Deletes the clip's done markers whose output indices meet any (lo, hi) in `overlapping`,
  or that are of a pair in `positions` (`_marker_position`s: pairs being made again, whose
  earlier markers are outdated wherever they point), but those in `keep`, and markers of the
  naming before index ranges. A marker vouches for frames; once they are rewritten or removed,
  it must go first. `listed`: the markers to choose from (`listed_markers`; listed now when not
  given). Returns the paths deleted."""
  keep, positions = set(keep), set(positions)
  stale = [path for path, lo, hi in (listed_markers(output, clip) if listed is None else listed)
           if path not in keep
           and (lo is None or any(lo <= b and a <= hi for a, b in overlapping)
                or _marker_position(path) in positions)]
  if stale:
    files.delete_files(stale)
  return stale


class EarlierMarkers:
  """Each clip's done markers, listed once per process and job for the units that have work.
  Every marker such a unit must delete is in that listing: the job's own markers never meet
  another pair's output indices (pairs write disjoint frames; a unit keeps its own pairs'), so
  only earlier jobs' markers can be stale, and those are all there from the job's start, or
  gone since (deleting one again is no error). A fresh listing per unit made a clip of P pairs
  list ~P^2 / (2 * pairs_per_unit) markers in its first run. Kept for the most recently used
  clips, up to `max_markers` in all, each clip counting `CLIP_WEIGHT` more (an archive of
  short shots has many clips of few markers)."""
  CLIP_WEIGHT = 64

  def __init__(self, max_markers=250_000):
    self._lock = threading.Lock()
    self._clips = collections.OrderedDict()  # (job token, output, clip) -> _ClipMarkers
    self._max_markers = max_markers
    self._weight = 0

  def meeting(self, job, output, clip, spans, positions=()):
    """[(path, lo, hi)] of the clip's markers, as first listed, that may meet the (lo, hi)
    `spans` (all of those that do) or are of a pair in `positions`, less those `drop`ped
    since."""
    key = (job, output, clip)
    with self._lock:
      found = self._clips.get(key)
      if found is not None:
        self._clips.move_to_end(key)
    if found is None:
      found = _ClipMarkers(listed_markers(output, clip))  # unlocked: other clips go on
      with self._lock:
        if key not in self._clips:  # (another unit of the clip may have listed it meanwhile)
          self._clips[key] = found
          self._weight += len(found) + self.CLIP_WEIGHT
        found = self._clips[key]
        while len(self._clips) > 1 and self._weight > self._max_markers:
          _, evicted = self._clips.popitem(last=False)
          self._weight -= len(evicted) + self.CLIP_WEIGHT
    return found.meeting(spans, positions)

  def drop(self, job, output, clip, deleted):
    """Forgets `deleted` markers, so that the clip's other units do not delete them again."""
    with self._lock:
      found = self._clips.get((job, output, clip))
      if found is not None:
        found.gone.update(deleted)


class _ClipMarkers:
  """One clip's listed markers, ordered by their first output index, to find those that meet
  a unit's spans without going through them all (a long clip has ~ a marker per pair)."""

  def __init__(self, listed):
    self.unranged = [m for m in listed if m[1] is None]
    self.ranged = sorted((m for m in listed if m[1] is not None), key=lambda m: m[1])
    self.firsts = [lo for _, lo, _ in self.ranged]
    self.widest = max([0] + [hi - lo for _, lo, hi in self.ranged])
    self.by_position = collections.defaultdict(list)
    for m in listed:
      self.by_position[_marker_position(m[0])].append(m)
    self.gone = set()

  def __len__(self):
    return len(self.ranged) + len(self.unranged)

  def meeting(self, spans, positions=()):
    # A marker (lo, hi) meets (a, b) when lo <= b and a <= hi, so a - widest <= lo <= b.
    found = {m[0]: m for m in self.unranged}
    for a, b in spans:
      first, last = (bisect.bisect_left(self.firsts, a - self.widest),
                     bisect.bisect_right(self.firsts, b))
      found.update((m[0], m) for m in self.ranged[first:last])
    for position in positions:
      found.update((m[0], m) for m in self.by_position.get(position, ()))
    return [m for path, m in found.items() if path not in self.gone]


_EARLIER_MARKERS = EarlierMarkers()


def output_frames(output, clip, sizes=False):
  """[(path, output index, format)] of the frames in `<output>/<clip>/` (not in subfolders:
  another clip's), [] before there is output; `sizes`: (path, index, format, bytes)."""
  folder = files.join(output, clip)
  listing = files.match(folder, 'frame_*')  # as in `delete_markers`: a failure raises
  return [(m.path, int(found.group(1)), found.group(2), *([m.size_in_bytes] if sizes else []))
          for m in listing if (found := FRAME_NAME.search(m.path))
          and m.path.rsplit('/', 1)[0].rstrip('/') == folder.rstrip('/')]


def tidy_clip_output(output, clip, last_index, output_format='png'):
  """Deletes `<output>/<clip>/frame_N.<output_format>` for N > last_index: what an earlier run
  wrote for a longer version of the clip, which would otherwise trail its new sequence; and
  every frame of the other output format (a clip's folder holds one). First the markers that
  vouch for such frames (all of the clip's, when the format changed), so that a clip grown back
  or a format switched back redoes them. Returns the frame count.

  So do the markers of frames up to `last_index` that are missing or empty (deleted or emptied
  since their run: a restore cut short, a clip's output folder removed to have it made again),
  and markers that vouch for the same frames as another (two runs with other options, N or
  rates, overlapped: each deleted the other's markers it had listed, not those written since,
  and the frames are either's); their pairs are made again."""
  frames = output_frames(output, clip, sizes=True)
  other_format = [path for path, _, fmt, _ in frames if fmt != output_format]
  whole = {index for _, index, fmt, size in frames if fmt == output_format and size}
  lost = _runs([k for k in range(last_index + 1) if k not in whole])
  listed = listed_markers(output, clip)
  gone = set(delete_markers(output, clip, [(0 if other_format else last_index + 1,
                                            float('inf'))], listed=listed))
  # Lost or shared frames concern only markers that vouch for some: one of a retimed pair that
  # writes nothing sits between frames, and would go with theirs every night. (A marker shares
  # frames with one just deleted too: past the end, N=2's 5-8 over N=1's 5-6.)
  vouching = [m for m in listed if m[1] is not None and m[1] <= m[2]]
  delete_markers(output, clip, lost + _tangled(vouching),
                 listed=[m for m in vouching if m[0] not in gone])
  stale = other_format + [path for path, index, fmt, _ in frames
                          if fmt == output_format and index > last_index]
  if stale:
    files.delete_files(stale)
  return len(stale)


class InterpolateUnits(beam.DoFn):
  """Unit -> pair records (main output), error records ('errors'), lone-frame counts ('frames')."""

  def __init__(self, output, run_id, model_path, fingerprint, times_to_interpolate, align,
               max_pixels, reprocess, progress_dir=None, shared_handle=None, flip_average=None,
               precision='float32', tile=None, scene_cut_threshold=None, timing=None,
               output_format='png', png_compression=images.DEFAULT_PNG_COMPRESSION):
    self._output = output
    self._run_id = run_id
    self._model_path = model_path
    self._fingerprint = fingerprint
    self._n = times_to_interpolate
    self._align = align
    self._flip_average = flip_average
    self._precision = precision
    self._tile = tile
    # None: every pair goes to the model. Without in-betweens a cut has nothing to hold: not
    # scored, not counted, and its markers do not depend on the threshold.
    self._scene_cut = scene_cut_threshold if times_to_interpolate else None
    self._timing = timing or retime.Dense()
    self._format = output_format
    self._png_compression = png_compression  # bytes, not pixels: not in the markers' keys
    self._max_pixels = max_pixels
    self._reprocess = reprocess
    self._progress_dir = progress_dir
    self._shared = shared_handle or shared.Shared()
    self._model = None
    self._pool = None
    self._tmp = files.join(output, files.TMP_DIR, run_id)
    # Made once, where the job is built, and carried to every worker in the pickled DoFn: a
    # marker with it was written by this job (an earlier attempt at a retried bundle), one
    # without by another job, even under the same --run_id.
    self._job_token = uuid.uuid4().hex
    self._job_started = None  # when the job began, in the output storage's clock (`setup`)

  def setup(self):
    self._job_started = records.job_started(self._output, self._run_id)
    self._model = acquire_model(self._shared, self._run_id, self._model_path, self._align,
                                self._flip_average, self._precision, self._tile)
    if self._model.fingerprint != self._fingerprint:
      raise ModelError(f'model at {self._model_path} changed during the run: fingerprint '
                       f'{self._model.fingerprint} != {self._fingerprint}')
    self._pool = concurrent.futures.ThreadPoolExecutor(_WRITE_THREADS)

  def teardown(self):
    if self._pool:
      self._pool.shutdown(wait=True)

  # -- helpers -------------------------------------------------------------------------------

  def _dense_span(self, unit, i):
    """(lo, hi): the dense indices (`retime`) pair i covers: its in-betweens and frame i + 1,
    and frame i itself when it is the unit's first frame and the unit owns it."""
    start = unit.first_index + i * 2 ** self._n
    return start + (0 if i == 0 and unit.owns_first else 1), start + 2 ** self._n

  def _timing_of(self, unit):
    """The job's timing for the unit's clip: with its lost frames, when retimed."""
    return self._timing.along(unit.long_pairs)

  def _written(self, unit, i):
    """(lo, hi): the output indices pair i writes (hi = lo - 1: none, when retiming drops it)."""
    return self._timing_of(unit).span(*self._dense_span(unit, i))

  def _outputs(self, unit, i):
    """[(output index, position of 2^N)] of the frames pair i writes: position 0 is frame i,
    2^N frame i + 1, the rest in-betweens."""
    start = unit.first_index + i * 2 ** self._n
    return [(k, d - start) for k, d in self._timing_of(unit).outputs(*self._dense_span(unit, i))]

  def _marker(self, unit, i):
    (u0, v0), (u1, v1) = unit.frames[i], unit.frames[i + 1]
    # With no in-betweens (N=0) the frames are the originals whatever the model or its padding:
    # neither goes in the key, so changing them redoes nothing.
    model, align = (self._fingerprint, self._align) if self._n else (None, None)
    settings = [OUTPUT_FORMAT_VERSION, model, self._n, align,
                files.real_path(u0), v0, files.real_path(u1), v1,
                unit.first_index + i * 2 ** self._n]
    if self._scene_cut is not None:  # (without it, keys are those from before cut detection)
      settings += [self._scene_cut, scene_cuts.SCORE_VERSION]
    timing = self._timing_of(unit)  # (nothing without retiming: keys as before it)
    settings += timing.key() + timing.pair_key(unit.first_position + i)
    settings += self._format_key() + _read_key([u0, u1])
    key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:20]
    lo, hi = self._written(unit, i)
    name = f'pair_{unit.first_position + i:06d}-{lo:09d}-{hi:09d}-{key}.done'
    return files.join(_marker_folder(self._output, unit.clip), name)

  def _lone_marker(self, unit):
    """The marker of a frame in no pair (a one-frame clip): it is copied, not interpolated, so
    the key is the input file and the output index, not the model or its options."""
    (uri, version), = unit.frames
    timing = self._timing_of(unit)
    key = hashlib.sha256(json.dumps(
        [OUTPUT_FORMAT_VERSION, 'lone', files.real_path(uri), version, unit.first_index,
         *timing.key(), *self._format_key(), *_read_key([uri])]).encode()).hexdigest()[:20]
    lo, hi = timing.span(unit.first_index, unit.first_index)
    name = f'frame_{unit.first_position:06d}-{lo:09d}-{hi:09d}-{key}.done'
    return files.join(_marker_folder(self._output, unit.clip), name)

  def _marks(self, unit, markers):
    """The content of each of `markers` (None: absent). Which exist is found by listing (on
    GCS one request per hundred pair positions, where reading each was two per pair, every
    night over an unchanged archive); one older than the job (by more than the clock step) is
    another job's, and that is all the unit needs of it ({}, unread: so a marker that other
    tools damaged still counts). The rest may be this job's (a retried bundle's first attempt
    wrote them): read. Where the listing fails, every marker is read.

    A marker with a rival, another key for the same pair and output indices, is taken as
    absent: two jobs overlapped on the pair while its input changed (each deletes the markers
    it will outdate before its model runs, not after), and the frames may be either's, so the
    pair is made again."""
    names = [posixpath.basename(m) for m in markers]
    try:
      updated = files.updated_times(_marker_folder(self._output, unit.clip), names,
                                    like=_marker_stem)
    except Exception:  # pylint: disable=broad-except
      return [_marker_content(m) for m in markers]
    contested = {_marker_stem(name) for name in updated.keys() - set(names)
                 if name.endswith('.done')}
    before = self._job_started - CLOCK_STEP_SECONDS if self._job_started else float('-inf')
    return [None if name not in updated or _marker_stem(name) in contested else
            {} if updated[name] < before else
            _marker_content(marker) for name, marker in zip(names, markers)]

  def _no_seconds(self):
    """The seconds of a pair that took none here (skipped, made by an earlier attempt, failed
    before any work): zeros (`records.pair_record`), with the scene-cut scoring's too where the
    run scores, as a made pair's record has it."""
    return {} if self._scene_cut is None else {'scene_cut': 0}

  def _format_key(self):
    """What done markers' keys add for the output format: nothing for PNG (keys as before)."""
    return [] if self._format == 'png' else [self._format]

  def _frame_path(self, unit, index):
    return files.join(self._output, unit.clip, frame_name(index, self._format))

  def _write(self, path, data_fn):
    def task():
      t = time.perf_counter()
      files.write_atomic(path, data_fn(), self._tmp)
      return time.perf_counter() - t
    return self._pool.submit(task)

  def _error(self, uris, stage, error, message):
    return beam.pvalue.TaggedOutput('errors', records.error_record(
        self._run_id, uris, stage, error, message))

  # -- the unit ------------------------------------------------------------------------------

  def process(self, unit):
    if unit.num_pairs == 0:
      yield from self._lone_frame(unit)
      return
    step = 2 ** self._n
    npairs = unit.num_pairs
    uris = [u for u, _ in unit.frames]
    markers = [self._marker(unit, i) for i in range(npairs)]
    outputs = [self._outputs(unit, i) for i in range(npairs)]
    in_betweens = [sorted({p for _, p in out if 0 < p < step}) for out in outputs]
    marked = [None] * npairs if self._reprocess else self._marks(unit, markers)
    made_by = [None if m is None else m.get('job', '') for m in marked]
    # This job's markers: its earlier attempt at the bundle died after writing them, perhaps
    # before it checked their frames; any whose frames are gone is withdrawn, and made again.
    own = [i for i in range(npairs) if made_by[i] == self._job_token]
    for i in self._unmark_gone(unit, markers, own, {(i, k) for i in own for k, _ in outputs[i]}):
      made_by[i] = None
    todo = [i for i in range(npairs) if made_by[i] is None]
    todo_set = set(todo)
    for i in range(npairs):
      if i in todo_set:
        continue
      if made_by[i] != self._job_token:
        yield records.pair_record(self._run_id, unit.clip, unit.first_position + i,
                                  uris[i:i + 2], None, 0, 'skipped', self._no_seconds())
        continue
      # Made by this job, in an earlier attempt at this unit: Beam retries a bundle whose worker
      # failed and drops that attempt's records, so the pair is counted as made here, with the
      # frames and model calls it took (its output frames, and their halving paths' calls).
      frames = len(outputs[i])
      held = marked[i].get('scene_cut') or marked[i].get('identical')
      size = marked[i].get('size')  # (as that attempt decoded it; its marker says)
      rec = records.pair_record(self._run_id, unit.clip, unit.first_position + i, uris[i:i + 2],
                                tuple(size) if size else None, frames, 'ok', self._no_seconds(),
                                cut_score=marked[i].get('cut_score'),
                                scene_cut=marked[i].get('scene_cut'),
                                identical=marked[i].get('identical'),
                                model_calls=0 if held else len(retime.halving_path(
                                    in_betweens[i], self._n)))
      records.counter('frames_written').inc(frames)
      records.counter('model_calls').inc(rec['model_calls'])
      yield rec
    if todo:  # Markers of earlier versions of the frames about to be written go first, and
      # of these pairs: retimed, one that shows no frame meets no span, and its marker of an
      # earlier input or rate stayed, the pair taken for contested and made every night.
      spans = [self._written(unit, i) for i in todo]
      positions = [_marker_position(markers[i]) for i in todo]
      try:
        _EARLIER_MARKERS.drop(self._job_token, self._output, unit.clip, delete_markers(
            self._output, unit.clip, spans, keep=markers, positions=positions,
            listed=_EARLIER_MARKERS.meeting(self._job_token, self._output, unit.clip, spans,
                                            positions)))
      except Exception as e:  # pylint: disable=broad-except
        # (a read-only marker folder: it stopped the whole job, with no records of the run)
        message = (f'cannot delete the earlier done markers of {unit.clip}\'s frames about to be '
                   f'written: {e}; its pairs are not made')
        yield self._error(uris, 'write', e, message)
        for i in todo:
          yield records.pair_record(self._run_id, unit.clip, unit.first_position + i,
                                    uris[i:i + 2], None, 0, 'failed', self._no_seconds(),
                                    message)
        self._finish(unit, len(todo), 0)
        return
    # Each write is keyed (pair, output index): the pair that writes it counts it and fails
    # with it. Frame i + 1 is written by pair i, frame 0 by pair 0 when this unit owns it.
    originals = {}  # frame -> [(pair, output index)] it is written to
    for i in todo:
      for k, p in outputs[i]:
        if p in (0, step):
          originals.setdefault(i + p // step, []).append((i, k))
    sources = {}  # (pair, output index) -> the frame it is made from, for error records
    # Retimed, a pair may show no in-between (or no frame at all): it reads only the originals
    # it shows, and is neither checked nor scored. A dense sequence shows every frame, so even
    # without in-betweens (N=0) a pair reads both and is checked: one size for the whole clip.
    dense = isinstance(self._timing_of(unit), retime.Dense)
    reads = {i: {i, i + 1} if in_betweens[i] or dense else {i + p // step for _, p in outputs[i]}
             for i in todo}
    active = {i for i in todo if in_betweens[i]}
    needed = sorted(set().union(*reads.values()))
    if not todo:
      self._finish(unit, 0, 0)
      return
    # The unit whose pair reads a frame reports it, once: a unit's first frame is the earlier
    # unit's to report, unless that unit's last pair shows no frame and so never reads it.
    step_before = (unit.first_index - step + 1, unit.first_index)
    reports_first = unit.owns_first or not self._timing_of(unit).outputs(*step_before)

    t_read = time.perf_counter()
    decoded, bad, templates = {}, {}, {}
    # A frame the model could never run on in this machine's memory is refused from its header:
    # decoding it and writing it as an original would be spent on pairs that fail anyway, at
    # every frame of such a reel and every re-run. (Retimed, a pair that shows it alone reads it.)
    model_frames = {j for i in active for j in (i, i + 1)}
    shown_alone = {j for i in todo if i not in active for j in reads[i]}
    too_large = {}  # frame -> (its size, why the model refuses it)
    futures = {}  # (pair, output index) -> future of its write
    for i in needed:
      try:
        data = files.read_bytes(uris[i])
        refused = self._too_large(data) if i in model_frames else None
        if refused:
          too_large[i] = refused
          if i > 0 or reports_first:
            yield self._error([uris[i]], 'model', MemoryError(refused[1]),
                              f'cannot run the model on {uris[i]}: {refused[1]}')
          if i not in shown_alone:
            continue
        frame = images.decode(data, uris[i], self._max_pixels)
      except Exception as e:  # pylint: disable=broad-except
        stage = 'decode' if isinstance(e, images.BadImage) else 'read'
        bad[i] = f'{uris[i]}: {files.reason(e)}'
        if i > 0 or reports_first:
          yield self._error([uris[i]], stage, e, f'cannot use frame {bad[i]}')
        continue
      decoded[i] = frame
      if self._format == 'dpx':  # in-betweens follow a DPX original's header
        templates[i] = data if dpx.is_dpx(data) else b''
      for key in originals.get(i, ()):
        if key[0] in active and {key[0], key[0] + 1} & too_large.keys():
          continue  # (its pair fails)
        sources[key] = i
        futures[key] = self._write(
            self._frame_path(unit, key[1]),
            lambda d=data, f=frame, k=key[1]: images.original_bytes(
                d, f, self._format, frame_name(k, self._format), self._png_compression))
    # One size for the clip's output: each frame read is checked against the one read before
    # it, failing the pairs between them. Retimed, a unit reads only the frames it shows (and
    # both of a pair it interpolates), so it also reads, for its size alone, the last frame
    # shown before its own (the earlier unit's to report where unreadable): that chains the
    # check across units, and a frame no output shows is never checked.
    frame_sizes = {j: (f.width, f.height) for j, f in decoded.items()}
    frame_sizes.update((j, size) for j, (size, _) in too_large.items())
    sizes = dict(frame_sizes)
    named = dict(enumerate(uris))
    if not dense and needed and unit.size_anchor:
      position, uri = unit.size_anchor
      j = position - unit.first_position  # 0 or before the unit's frames
      named[j] = uri
      if j not in sizes:
        size = _size_or_none(uri, self._max_pixels)
        if size:
          sizes[j] = size
    read_seconds = time.perf_counter() - t_read

    failed = {i: bad[min(reads[i] & bad.keys())] for i in todo if reads[i] & bad.keys()}
    for i in sorted(active - failed.keys()):
      refused = sorted({i, i + 1} & too_large.keys())
      if refused:
        failed[i] = f'cannot run the model on {uris[refused[0]]}: {too_large[refused[0]][1]}'
    known = sorted(sizes)
    for j, k in zip(known, known[1:]):
      # The pair that writes frame k fails (whichever unit holds the frames before it); one
      # that interpolates k unshown reads both its frames, so it is the one pair from j to k.
      writers = [pair for pair, _ in originals.get(k, ())] or range(j, k)
      between = [i for i in writers if i in todo and i not in failed]
      if sizes[j] != sizes[k] and between:
        message = (f'frames differ in size: {named[j]} is {sizes[j][0]}x{sizes[j][1]}, '
                   f'{named[k]} is {sizes[k][0]}x{sizes[k][1]}')
        failed.update((i, message) for i in between)
        yield self._error([named[j], named[k]], 'pair', ValueError('size mismatch'), message)

    scores, identical = {}, {}  # pair -> its cut score; pair -> whether it is one image twice
    thumbnails = {}  # frame -> its thumbnail, made once for both pairs that share the frame
    t_score = time.perf_counter()
    for i in sorted(active) if self._n else ():  # (without in-betweens there is nothing to hold)
      if i in failed:
        continue
      f0, f1 = decoded[i], decoded[i + 1]
      identical[i] = images.same_picture(f0, f1)
      if self._scene_cut is not None:
        if identical[i]:
          scores[i] = 0.0
          continue
        for j in (i, i + 1):
          if j not in thumbnails:
            thumbnails[j] = scene_cuts.frame_thumbnail(decoded[j])
        scores[i] = scene_cuts.thumbnail_score(thumbnails[i], thumbnails[i + 1])
    cuts = {i for i, score in scores.items() if score > self._scene_cut}
    score_seconds = time.perf_counter() - t_score
    # Two shots, or one image twice (a freeze, a title card, a frame a transfer repeated): each
    # in-between holds the nearer original, with no model call.
    held_pairs = cuts | {i for i, same in identical.items() if same}
    for i in held_pairs:
      for k, p in outputs[i]:
        if p in (0, step):
          continue
        held = scene_cuts.held_frame(p, step)
        sources[(i, k)] = i
        futures[(i, k)] = self._write(
            self._frame_path(unit, k),
            lambda i=i, held=held, k=k: images.encode(
                images.inbetween_pixels(decoded[i + held].rgb(), decoded[i], decoded[i + 1],
                                        float(held)), self._format,
                images.held_color_chunks(decoded[i + held], decoded[i], decoded[i + 1]),
                _templates(templates, i + held, i + 1 - held), frame_name(k, self._format),
                self._png_compression))

    model_seconds, calls = 0.0, {}  # pair -> model calls made for it
    runs = _runs([i for i in todo if i not in failed and i not in held_pairs and in_betweens[i]])
    model_errors = []
    # Pairs through so far for the progress note: those the model has no work in, then each
    # whose in-betweens are out.
    through = len(todo) - sum(last - first + 1 for first, last in runs)
    noted = time.monotonic()
    # The unit's recursions hold the model (other threads meanwhile read, score and write): a
    # recursion's frame features wait in memory between calls, and would for every thread at
    # once if they took turns call by call. (A unit with nothing to compute does not wait.)
    with self._model.exclusively() if runs else contextlib.nullcontext():
      while runs:
        first, last = runs.pop(0)  # pairs first..last, frames first..last+1
        made_positions = {}  # pair -> its in-betweens out so far
        t_model = time.perf_counter()
        # Holding the model, this thread alone moves its call count: the calls since the last
        # frame out were made for the next one (its halving path), so for its pair.
        counted = self._model.model_calls
        try:
          frames = (decoded[j].rgb() for j in range(first, last + 2))
          made = self._model.iter_in_betweens(frames, self._n,
                                              lambda pair, f=first: in_betweens[f + pair])
          for pair, p, out in made:
            i = first + pair
            calls[i] = calls.get(i, 0) + self._model.model_calls - counted
            counted = self._model.model_calls
            for k in (k for k, q in outputs[i] if q == p):
              sources[(i, k)] = i
              futures[(i, k)] = self._write(
                  self._frame_path(unit, k),
                  lambda o=out, i=i, t=p / step, k=k: images.encode(
                      images.inbetween_pixels(o, decoded[i], decoded[i + 1], t), self._format,
                      images.inbetween_color_chunks(decoded[i], decoded[i + 1]),
                      _templates(templates, i, i + 1), frame_name(k, self._format),
                      self._png_compression))
            made_positions.setdefault(i, set()).add(p)
            if made_positions[i] == set(in_betweens[i]):
              through += 1
              if self._progress_dir and time.monotonic() - noted >= PROGRESS_NOTE_SECONDS:
                noted = time.monotonic()
                self._note_progress(unit, unit.num_pairs - len(todo) + through, through, sum(
                    1 for f in futures.values() if f.done() and not f.exception()))
        except Exception as e:  # pylint: disable=broad-except
          # A pair's in-betweens come out together once its recursion is through, so the
          # failure is the first pair short of them; the pairs before it are whole, and the
          # rest of the run is tried afresh: one pair the model fails on fails alone.
          i = next((j for j in range(first, last + 1)
                    if made_positions.get(j, set()) != set(in_betweens[j])), last)
          calls[i] = calls.get(i, 0) + self._model.model_calls - counted
          hint = ''
          if type(e).__name__ in _OUT_OF_MEMORY and not self._tile:
            hint = ' (out of memory: --tile runs frames as tiles, e.g. --tile 1024)'
          failed[i] = f'model failed: {type(e).__name__}: {e}{hint}'
          model_errors.append(self._error(
              uris[i:i + 2], 'model', e, f'model failed on {uris[i]} .. {uris[i + 1]}: {e}{hint}'))
          if i < last:
            runs.insert(0, (i + 1, last))
        model_seconds += time.perf_counter() - t_model
    yield from model_errors

    written, write_seconds, write_errors = {}, 0.0, {}
    for key, fut in futures.items():
      try:
        write_seconds += fut.result()
        written[key] = True
      except Exception as e:  # pylint: disable=broad-except
        write_errors[key] = e
    for key, e in write_errors.items():
      pos, path = sources[key], self._frame_path(unit, key[1])
      yield self._error([uris[pos], path], 'write', e,
                        f'cannot write {path} (output for {uris[pos]}): {files.reason(e)}')
      # The pair that writes a frame fails with it, so that its marker is not written and a
      # re-run writes the frame again.
      failed.setdefault(key[0], f'write failed: {path}: {files.reason(e)}')
    # What earlier runs wrote there is of other inputs, options or times: not kept. But a pair
    # that another attempt of this job has marked done since (Dataflow ran the unit twice, and
    # keeps that attempt's records) has its frames there, the bytes this one would write: they
    # stay, with its marker.
    undone = [i for i in failed if _made_by(markers[i]) != self._job_token]
    if undone:
      yield from self._remove_unwritten(unit, [self._written(unit, i) for i in undone],
                                        {k for _, k in written})

    # Reads and writes are the unit's, shared evenly; the model's time goes by model calls, which
    # cost alike (a held or identical pair made none, and took none of it).
    share = 1.0 / max(len(todo), 1)
    all_calls = sum(calls.values())
    frames_total = 0
    outcome = {}  # pair -> (size, frames written, seconds, cut)
    unmarked = {}  # pair -> why it has no done marker: its write failed, or it was withdrawn
    for i in todo:
      n_written = sum(1 for key in written if key[0] == i)
      frames_total += n_written
      seconds = {'read': read_seconds * share,
                 'model': model_seconds * calls.get(i, 0) / all_calls if all_calls else 0.0,
                 'write': write_seconds * share}
      if self._scene_cut is not None:
        seconds['scene_cut'] = score_seconds * share
      # (retimed, a pair may read its second frame alone)
      size = next((frame_sizes[j] for j in (i, i + 1) if j in frame_sizes), None)
      cut = {'cut_score': scores.get(i), 'scene_cut': (i in cuts) if i in scores else None,
             'identical': identical.get(i)}
      outcome[i] = size, n_written, seconds, cut
      if i in failed:
        continue
      try:
        files.write_atomic(markers[i], json.dumps({
            'run_id': self._run_id, 'job': self._job_token, 'fingerprint': self._fingerprint,
            'inputs': uris[i:i + 2], 'times_to_interpolate': self._n, 'align': self._align,
            'size': size, **cut}).encode(), self._tmp)
      except Exception as e:  # pylint: disable=broad-except
        unmarked[i] = e, f'cannot write the done marker {markers[i]}: {files.reason(e)}'
    marked = [i for i in todo if i not in failed and i not in unmarked]
    unmarked.update(self._unmark_gone(unit, markers, marked, written))
    for i in todo:
      size, n_written, seconds, cut = outcome[i]
      message = failed.get(i)
      if i in unmarked:
        e, message = unmarked[i]
        yield self._error(uris[i:i + 2], 'write', e, message)
      yield records.pair_record(
          self._run_id, unit.clip, unit.first_position + i, uris[i:i + 2], size, n_written,
          'failed' if message else 'ok', seconds, message, **cut,
          model_calls=calls.get(i, 0))  # the model's work, as the metric counts it
    records.counter('model_calls').inc(sum(calls.values()))
    records.counter('frames_written').inc(frames_total)
    records.distribution('read_ms').update(int(read_seconds * 1000))
    records.distribution('model_ms').update(int(model_seconds * 1000))
    records.distribution('write_ms').update(int(write_seconds * 1000))
    if self._scene_cut is not None:
      records.distribution('scene_cut_ms').update(int(score_seconds * 1000))
    self._finish(unit, len(todo), frames_total)

  def _too_large(self, data):
    """((width, height), why) where frames of `data`'s size could never fit in this machine's
    memory for the model (`Interpolator.check_size`, on CPU), else None: decoding says what is
    wrong with a frame whose header cannot be read, or that --max_pixels refuses."""
    try:
      size = images.data_size(data)
    except Exception:  # pylint: disable=broad-except
      return None
    if size is None or (self._max_pixels and size[0] * size[1] > self._max_pixels):
      return None
    try:
      self._model.check_size(size[1], size[0])
    except MemoryError as e:  # (memory.FrameTooLarge)
      return size, str(e)
    except ValueError:  # too small: the model call says so, as for every model
      return None
    return None

  def _unmark_gone(self, unit, markers, pairs, written):
    """Checks that the frames `pairs` wrote are all still there now that they are marked done
    (on GCS one listing per hundred output indices, not a request per frame). A run overlapping
    this one that failed such a pair removes its frames: the pair's marker must go, or it would
    vouch for missing frames. Returns {pair: (error, message)} for the pairs whose marker went,
    or had to and could not (cloud storage failing: the next run's planning checks the frames
    a marker vouches for before it trusts it, `tidy_clip_output`)."""
    if not pairs:
      return {}
    folder = files.join(self._output, unit.clip)
    frames = {i: [frame_name(k, self._format) for pair, k in written if pair == i] for i in pairs}
    try:
      present = set(files.updated_times(folder, [n for names in frames.values() for n in names]))
    except Exception as e:  # pylint: disable=broad-except
      gone = {i: e for i in pairs}  # unchecked, the markers must not stay
    else:
      gone = {i: FileNotFoundError(
          f'{", ".join(files.join(folder, n) for n in names if n not in present)} deleted while '
          f'the pair was marked done (a run overlapping this one on the output failed it); the '
          f'next run makes it again')
              for i, names in frames.items() if not set(names) <= present}
    if not gone:
      return {}
    try:
      files.delete_files([markers[i] for i in gone])
    except Exception as e:  # pylint: disable=broad-except
      return {i: (why, f'done marker {markers[i]} not withdrawn ({files.reason(e)}) though it '
                       f'had to be: {files.reason(why)}; the next run checks the pair\'s frames '
                       f'and makes it again if they are not whole') for i, why in gone.items()}
    return {i: (why, f'done marker {markers[i]} withdrawn: {files.reason(why)}')
            for i, why in gone.items()}

  def _remove_unwritten(self, unit, spans, written):
    """Deletes the clip's output frames in the (lo, hi) `spans` that this unit did not write,
    then every marker that vouches for frames there: also one with this run's key, which an
    earlier run (before `--reprocess`) or an overlapping one wrote for frames now gone. Yields
    an error record where that cannot be done (a read-only folder or frame: it stopped the whole
    job); the pairs have failed already, and a re-run makes them again."""
    try:
      stale = [path for path, k, fmt in output_frames(self._output, unit.clip)
               if fmt == self._format and k not in written
               and any(lo <= k <= hi for lo, hi in spans)]
      if stale:
        files.delete_files(stale)
      delete_markers(self._output, unit.clip, spans)
    except Exception as e:  # pylint: disable=broad-except
      yield self._error([u for u, _ in unit.frames], 'write', e,
                        f'cannot delete what earlier runs wrote where pairs of {unit.clip} '
                        f'failed: {e}')

  def _lone_frame(self, unit):
    """A frame in no pair (a one-frame clip) is copied to its index, then marked done, so a
    re-run leaves it alone like a finished pair (one made by this job's earlier attempt at the
    bundle counts as written). Where it cannot be, what earlier runs wrote at its index goes,
    as for a failed pair: it is a copy of an input that is no more."""
    (uri, _), = unit.frames
    marker = self._lone_marker(unit)
    made_by = None if self._reprocess else _made_by(marker)
    timing = self._timing_of(unit)
    span = timing.span(unit.first_index, unit.first_index)
    indices = [k for k, _ in timing.outputs(unit.first_index, unit.first_index)]
    written = 0
    if made_by is None:
      stage, done = 'write', set()
      try:
        delete_markers(self._output, unit.clip, [span], keep=[marker])
        stage = 'read'
        data = files.read_bytes(uri)
        stage = 'decode'
        frame = images.decode(data, uri, self._max_pixels)
        stage = 'write'
        for k in indices:
          files.write_atomic(self._frame_path(unit, k), images.original_bytes(
              data, frame, self._format, frame_name(k, self._format), self._png_compression),
                             self._tmp)
          done.add(k)
        files.write_atomic(marker, json.dumps({'run_id': self._run_id, 'job': self._job_token,
                                               'inputs': [uri]}).encode(), self._tmp)
        written = len(indices)
      except Exception as e:  # pylint: disable=broad-except
        what = 'cannot write output for' if stage == 'write' else 'cannot use frame'
        yield self._error([uri], stage, e, f'{what} {uri}: {files.reason(e)}')
        yield from self._remove_unwritten(unit, [span], done)
    elif made_by == self._job_token:
      written = len(indices)
    if written:
      records.counter('frames_written').inc(written)
      yield beam.pvalue.TaggedOutput('frames', {'clip': unit.clip, 'frames_written': written})
    self._finish(unit, 0, written)

  def _finish(self, unit, pairs_done, frames):
    """Counts the unit and, on local runners, leaves its progress note for the launcher."""
    records.counter('units').inc()
    records.counter('model_calls').inc(0)  # (so that a run with nothing new shows it, at 0)
    self._note_progress(unit, unit.num_pairs, pairs_done, frames)

  def _note_progress(self, unit, pairs, processed, frames):
    """On local runners, the unit's progress note: its pairs through (skipped ones too), those
    made, frames written. Replaced as its pairs come out of the model (a unit of 16 pairs of
    1080p takes minutes), then by its final counts."""
    if self._progress_dir:
      # Named by the unit: a bundle Beam retries replaces its note, not adds a second.
      unit_id = hashlib.sha1(f'{unit.clip}/{unit.first_position}'.encode()).hexdigest()
      records.progress_note(self._progress_dir, f'unit-{unit_id}.json', {
          'pairs': pairs, 'processed': processed, 'frames': frames})


def _size_or_none(uri, max_pixels):
  """(width, height) of the frame at `uri` as decoded (from its header where it can), or None
  where it cannot be read."""
  try:
    size = images.header_size(uri)
    if size is None:
      frame = images.decode(files.read_bytes(uri), uri, max_pixels)
      size = frame.width, frame.height
  except Exception:  # pylint: disable=broad-except
    return None
  return size


def _read_key(uris):
  """What done markers' keys add for how the inputs are read: DPX's reader version."""
  return [['dpx', DPX_READ_VERSION]] if any(u.lower().endswith('.dpx') for u in uris) else []


def _marker_content(marker):
  """A done marker's record (its 'job' token names the job that wrote it; older markers have
  none); None where there is no marker (or it cannot be read: the pair is then made again, which
  is safe)."""
  try:
    content = json.loads(files.read_bytes(marker))
    return content if isinstance(content, dict) else None
  except Exception:  # pylint: disable=broad-except
    return None


def _made_by(marker):
  """The job token a done marker names ('' for markers older than tokens), or None."""
  content = _marker_content(marker)
  return None if content is None else content.get('job', '')


def _templates(templates, *frames):
  """The bytes of those of `frames` that are DPX originals, in that order: the headers a DPX
  in-between may follow (`dpx.encode` takes the first that fits it)."""
  return tuple(templates[j] for j in frames if templates.get(j))


def _tangled(listed):
  """[(lo, hi)] of the `listed_markers` whose output indices meet another's: markers of one run
  never do (its pairs write disjoint frames), and a run deletes the earlier markers its pairs'
  frames meet before it writes them."""
  tangled, reach = [], None  # reach: the marker reaching furthest so far
  for lo, hi in sorted((lo, hi) for _, lo, hi in listed if lo is not None and lo <= hi):
    if reach and lo <= reach[1]:
      tangled += [reach, (lo, hi)]
    if not reach or hi > reach[1]:
      reach = (lo, hi)
  return tangled


def _runs(pairs):
  """[(first, last)] of maximal runs of consecutive numbers (pairs, frames) in sorted `pairs`."""
  out = []
  for i in pairs:
    if out and out[-1][1] == i - 1:
      out[-1][1] = i
    else:
      out.append([i, i])
  return [tuple(r) for r in out]
