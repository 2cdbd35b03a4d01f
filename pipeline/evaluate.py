"""Quality evaluation: PSNR/SSIM of the model's middle frames and of classical baselines.

    python -m pipeline.evaluate --input DIR_OR_MANIFEST --output OUT [--model_path P]
        [--baselines repeat,average,minterpolate,dis] [--no_model] [--align 64]
        [--precision float32|bfloat16] [--flip_average | --no_flip_average]
        [--tile PX [--tile_overlap PX]] [--no_png] [beam flags]
        [--leave_one_out [--stride K] [--scene_cuts [--scene_cut_threshold X]]]

Input, one of:
* a folder of triplet folders (or one triplet folder), each holding `frame10.png`,
  `frame10i11.png` (the truth) and `frame11.png`, as Middlebury's;
* a manifest, .csv (with a header) or .jsonl, with columns frame0, truth, frame1 and optionally
  key; relative paths are relative to the manifest's folder;
* with --leave_one_out, any footage: a folder or glob of clips, found and named as pipeline.run
  finds and names them (as its output folders; the folder itself and every folder under it
  that holds frames; hidden folders, the pipeline's `_runs`, `_markers`, `_tmp`, --output
  and an earlier evaluation's comparisons/ are passed over). Frames i and i + 2 are
  interpolated and compared with frame i + 1, for every i that is a multiple of --stride; the
  report then also gives each clip's mean. A triplet whose frame numbers are unevenly spaced (a
  frame lost on one side: `reel_0011`, `reel_0012`, `reel_0014`) is left out and listed under
  `left_out` with the reason, and with --scene_cuts so is one whose middle frame is not the
  midpoint in time for what it shows: across a scene cut (transforms/scene_cuts) or repeating a
  frame.

Metrics are FILM's (see transforms/quality.py). FILM's own evaluation runs the model on full-size
frames without padding; here the model sees frames padded to a multiple of --align (64, as
FILM's interpolation tools do; mirrored for the built-in model, zeros for others), because
film_net needs sizes that pool cleanly through its pyramid. --align 0 runs without padding,
as FILM's evaluation does, for sizes that allow it.

Output under --output (any Beam filesystem): results.json (settings, means, per-clip means,
per-triplet rows, errors), results.csv (a row per triplet and method, then `mean` rows, then
error rows; each triplet's rows name the frame it predicts, `truth`: with --leave_one_out a key
is the clip's and the triplet's place in it, `reel_000003` its fourth, not frame 3), and
unless --no_png, comparisons/<key>.png: frame 0 | truth | frame 1, then per method its
prediction, error heat map and scores (the report's triplets' only: other PNGs
there, an earlier run's, are removed once the report is written). A triplet that cannot be
read, whose frames differ in size or are smaller than SSIM's 11x11 window, and a method that
fails on one (ffmpeg needs 32 px) become error rows naming the file and the reason; the rest is
scored, and the command exits with status 1. What stops the whole evaluation (an input that
is missing or unreadable, a malformed manifest, no triplets, an unknown baseline, nothing to
score, a model that does not load, an --output it cannot write) is found before any work, as
pipeline.run does: a one-line error, exit status 2, nothing written. A
prediction equal to its truth has infinite PSNR, written as null in the JSON, which has no
infinity: the PSNR means leave out the triplets any method predicts exactly, so all are over the
same triplets (`psnr_count` says how many). Where frames 0 and 1 are one picture the model's
prediction is that picture, as the tool holds a repeated frame with no model call. With
--leave_one_out, clips of fewer than 3 frames are listed as `clips_too_short`.

Beam: triplets are listed up front, spread with Reshuffle, evaluated in a DoFn that loads the
model once per worker, and gathered into one report. Local runs use the same FnApiRunner as
pipeline.run (`launch.LocalRunner`: no Prism download).
"""

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import csv
import hashlib
import io
import json
import logging
import math
import os
import posixpath
import re
import shutil
import sys
import time
import uuid

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import TestOptions
from apache_beam.utils import shared

from film_net import flags
from film_net import specs
from film_net.render import TRIPLET_NAMES
from pipeline import options as pipeline_flags
from pipeline import progress
from pipeline.launch import LocalRunner
from pipeline.launch import UsageError
from pipeline.launch import check_reachable
from pipeline.launch import dry_run_job
from pipeline.launch import interrupt_status
from pipeline.launch import is_local_runner
from pipeline.launch import job_options
from pipeline.launch import prepare_remote_launch
from pipeline.launch import quiet_beam_logs
from pipeline.launch import run_and_wait
from pipeline.launch import run_command
from pipeline.launch import runner_name
from pipeline.launch import terminate_as_interrupt
from pipeline.launch import truthy
from transforms import clips
from transforms import files
from transforms import images
from transforms import interpolate
from transforms import quality
from transforms import records
from transforms import scene_cuts
from transforms import stopping

_log = logging.getLogger(__name__)

MODEL = 'model'
# Under --output: the report and table, the mark written before any comparison PNG (a killed
# evaluation's comparisons/, no report beside it yet, are still known for what they are) and
# those PNGs; no listing of footage takes them as frames (`clips.list_clip_folders`).
REPORT, TABLE, STARTED, COMPARISONS = (files.EVALUATION_REPORT, files.EVALUATION_TABLE,
                                       files.EVALUATION_STARTED, files.EVALUATION_COMPARISONS)
# `count` and `psnr_count` (how many rows a mean averages; PSNR leaves out the triplets a method
# predicts exactly) are filled on the `mean` rows.
CSV_FIELDS = ('key', 'clip', 'truth', 'method', 'psnr', 'ssim', 'l1', 'l2', 'height', 'width',
              'error', 'count', 'psnr_count')
METRICS = ('psnr', 'ssim', 'l1', 'l2')
MEAN_KEY = 'mean'  # the key of the CSV's mean rows; no triplet's


def parse_known_args(argv):
  parser = flags.command_line('pipeline.evaluate', __doc__.split('\n', 1)[0],
                              epilog=pipeline_flags.BEAM_FLAGS_HELP)
  parser.add_argument('--input', required=True, type=flags.path_value,
                      help='folder of triplet folders, a .csv/.jsonl manifest, or with '
                           '--leave_one_out a folder of clips')
  parser.add_argument('--output', required=True, type=flags.path_value,
                      help='folder for results.json/.csv and PNGs')
  parser.add_argument('--model_path', default=None, type=flags.path_value,
                      help='film_net model to evaluate (default: the built-in model)')
  parser.add_argument('--no_model', action='store_true', help='evaluate the baselines only')
  parser.add_argument('--baselines', default=','.join(quality.BASELINES),
                      help='comma-separated subset of ' + ','.join(quality.BASELINES) +
                           ' (unavailable ones are skipped with a warning); "" for none')
  parser.add_argument('--align', type=flags.align, default=64,
                      help='pad frames to a multiple of this for the model; 0: no padding')
  flags.add_flip_average_flags(parser)
  parser.add_argument('--precision', choices=specs.PRECISIONS, default='float32',
                      help='arithmetic inside the model\'s convolutions (see pipeline.run)')
  flags.add_tile_flags(parser)
  parser.add_argument('--leave_one_out', action='store_true',
                      help='input is footage: interpolate frames i and i+2, compare with i+1')
  parser.add_argument('--stride', type=flags.positive_int, default=1,
                      help='with --leave_one_out: evaluate every stride-th triplet of a clip')
  pipeline_flags.add_scene_cut_flags(
      parser, 'With --leave_one_out: leave out triplets that span a scene cut or repeat a '
              'frame (their middle frame is not the midpoint in time), listed in results.json',
      'Score every triplet')
  parser.add_argument('--no_png', action='store_true', help='write no comparison PNGs')
  pipeline_flags.add_progress_flag(parser)
  known, beam_args = pipeline_flags.parse_with_beam_flags(parser, argv, 'the evaluation')
  flags.check_tile_flags(parser, known)
  pipeline_flags.check_scene_cut_flags(parser, known)
  unread = [flag for flag, given in (('--stride', known.stride != 1),
                                     ('--scene_cuts', known.scene_cuts)) if given]
  if unread and not known.leave_one_out:
    parser.error(f'{" and ".join(unread)} only work{"s" * (len(unread) == 1)} with '
                 f'--leave_one_out (curated triplets are scored whole)')
  return known, beam_args


# --------------------------------------------------------------------------------------------
# Listing the triplets.

# Longest key kept as it is: keys name comparison PNGs (`<key>.png`, `<clip key>_000123.png`),
# which a file name's 255 bytes must hold; a longer one is cut and marked by a hash of it whole.
_KEY_LENGTH = 200


def _key(path, root):
  relative = path[len(root):].strip('/') if path.startswith(root) else path
  key = re.sub(r'[^A-Za-z0-9._-]+', '_', relative) or 'triplet'
  if len(key) > _KEY_LENGTH or key == MEAN_KEY:  # (the CSV's mean rows are keyed 'mean')
    key = f'{key[:_KEY_LENGTH - 9]}-{hashlib.sha1(key.encode()).hexdigest()[:8]}'
  return key


def _distinct(names):
  """{source: name} with a short hash of the source added where sources share a name
  (`Rolle Ä` and `Rolle Ö` both read `Rolle_`): keys name files and group means."""
  sources = {}
  for source, name in names.items():
    sources.setdefault(name, []).append(source)
  return {source: (name if len(sources[name]) == 1 else
                   f'{name}-{hashlib.sha1(source.encode()).hexdigest()[:8]}')
          for source, name in names.items()}


def list_triplets(input_path, leave_one_out=False, stride=1, too_short=None, output=None):
  """[{key, clip, frame0, truth, frame1}] for the input kinds in the module docstring; with
  --leave_one_out the clips of fewer than 3 frames are added to the list `too_short`, and
  `output`'s comparison PNGs (an --output inside the input) are no clip."""
  if leave_one_out:
    root = clips.input_root(input_path)
    # What this evaluation writes as frames is its comparison PNGs: an --output at or above the
    # input holds the clips themselves.
    ours = files.join(output, COMPARISONS) if output else None
    folders, unaddressable, problems = set(), {}, []
    frames_by_clip = clips.clip_frames(input_path, ours, folders, unaddressable, problems)
    # Each clip by its output folder's name in pipeline.run (the results join its output);
    # keys name files, so theirs hold no '/'.
    names = clips.folder_clip_names(root, folders, list(frames_by_clip))
    keys = _distinct({clip: _key(name, '') for clip, name in names.items()})
    if too_short is not None:
      too_short += [names[c] for c, frames in frames_by_clip.items() if len(frames) < 3]
    return [{'key': f'{keys[t.clip]}_{t.index:06d}', 'clip': names[t.clip], 'frame0': t.frame0,
             'truth': t.truth, 'frame1': t.frame1, **({'uneven': t.uneven} if t.uneven else {})}
            for t in clips.clip_triplets(input_path, stride, frames_by_clip)] + [
                _unreadable_frames(folder, paths, root)
                for folder, paths in sorted(unaddressable.items())] + _unlisted(problems, root)
  if input_path.lower().endswith(('.csv', '.jsonl')):
    return _manifest_triplets(input_path)
  root = (clips.literal_folder(input_path) or input_path).rstrip('/')
  folders, problems = set(), []
  for match in files.list_tree(root, problems=problems):  # (linked triplet folders followed)
    relative = match.path[len(root):].lstrip('/')
    if (posixpath.basename(relative) not in TRIPLET_NAMES or relative.count('/') > 1 or
        clips.passed_over(relative)):
      continue  # the input folder or its subfolders hold triplets, not deeper or hidden ones
    # A folder with any of the three is a triplet: one missing (the truth too) is an error row.
    folders.add(match.path.rsplit('/', 1)[0] if '/' in match.path else '.')
  found = [_unreadable_triplet({
      'key': _key(folder, root) if folder != root else _key(clips.folder_name(root), ''),
      'clip': '', 'frame0': files.join(folder, TRIPLET_NAMES[0]),
      'truth': files.join(folder, TRIPLET_NAMES[1]),
      'frame1': files.join(folder, TRIPLET_NAMES[2])}) for folder in folders]
  keys = _distinct({t['truth']: t['key'] for t in found})
  return sorted(({**t, 'key': keys[t['truth']]} for t in found), key=lambda t: t['key']) + (
      _unlisted([(path, reason) for path, reason in problems  # (where triplets can lie)
                 if _triplet_place(path[len(root):].strip('/'))], root))


def _triplet_place(relative):
  """Whether a folder `relative` to a triplet set's folder may hold a triplet: it, or one of the
  folders in it, not hidden nor the system's."""
  return not relative or ('/' not in relative and not clips.passed_over(relative, folder=True))


def _unreadable_triplet(triplet):
  """The triplet, or where a frame's name is one no Beam filesystem can carry (not UTF-8: a
  Latin-1 `café` from an old volume, which stopped the whole evaluation) the triplet named
  printably with the reason, an error row to be."""
  bad = [triplet[k] for k in _FRAMES if files.unaddressable(triplet[k])]
  if not bad:
    return triplet
  return {**triplet, **{k: files.printable(triplet[k]) for k in _FRAMES},
          'unreadable': f'cannot read {files.printable(bad[0])}: {files.unaddressable(bad[0])}'}


def _unreadable_frames(folder, paths, root):
  """The error row to be of a clip folder's frames (`paths`) that --leave_one_out leaves out,
  their names not UTF-8 (its clip was scored without them, or not at all, unsaid)."""
  more = f' and {len(paths) - 1} more frame(s) in {files.printable(folder)}' if paths[1:] else ''
  return _unscorable(folder, root, paths[0], f'cannot read {files.printable(paths[0])}{more}: '
                                             f'{files.unaddressable(paths[0])}')


def _unlisted(problems, root):
  """The error rows to be of folders that could not be listed, (path, reason) (an unreadable
  folder: its triplets or clips were left out of the report unsaid, and the command exited 0);
  where it is the input folder itself, a UsageError, as a missing one is."""
  for path, reason in problems:
    if path.rstrip('/') == root.rstrip('/'):
      raise UsageError(f'--input: cannot list {files.printable(root)}: {reason}')
  return [_unscorable(path, root, path, f'cannot list {files.printable(path)}: {reason}')
          for path, reason in problems]


def _unscorable(folder, root, path, reason):
  """A triplet to be an error row alone: keyed by `folder`, naming `path` (both printable)."""
  return {'key': _key(files.printable(folder), files.printable(root)), 'clip': '',
          **{k: files.printable(path) for k in _FRAMES}, 'unreadable': reason}


_FRAMES = ('frame0', 'truth', 'frame1')


def _manifest_triplets(manifest):
  """The manifest's triplets; a manifest that is missing or malformed is a UsageError naming
  the line: one bad row would otherwise stop the job with a traceback."""
  if not FileSystems.exists(manifest):
    raise UsageError(f'--input {manifest}: the manifest does not exist')
  data = files.read_bytes(manifest)
  try:
    text = data.decode('utf-8-sig')  # Excel's "CSV UTF-8" has a BOM
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b'\n') + 1
    raise UsageError(f'--input {manifest} line {line}: not UTF-8 text ({e.reason} at byte '
                     f'{e.start}); save it as UTF-8 (Excel: "CSV UTF-8")') from e
  rows = []  # (line, row)
  if manifest.lower().endswith('.jsonl'):
    for line, raw in enumerate(text.splitlines(), 1):
      if raw.strip():
        try:
          rows.append((line, json.loads(raw)))
        except ValueError as e:
          raise UsageError(f'--input {manifest} line {line}: not JSON ({e})') from e
  else:
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)  # (', ' as people type)
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
    rows = [(reader.line_num, row) for row in reader]
  base = manifest.rsplit('/', 1)[0] if '/' in manifest else '.'
  triplets = []
  for i, (line, row) in enumerate(rows):
    row = row if isinstance(row, dict) else {}
    if any(str(cell).strip() for cell in row.get(None) or ()):  # cells past the header's
      raise UsageError(f'--input {manifest} line {line} has {len(row) - 1 + len(row[None])} '
                       f'fields, its header {len(row) - 1}: a comma in a path? Quote the path')
    missing = [c for c in ('frame0', 'truth', 'frame1') if not row.get(c)]
    if missing:
      raise UsageError(f'--input {manifest} line {line} lacks {", ".join(missing)} (a manifest '
                       f'has columns frame0, truth, frame1 and optionally key)')
    not_text = [c for c in ('frame0', 'truth', 'frame1') if not isinstance(row[c], str)]
    if not_text:
      raise UsageError(f'--input {manifest} line {line}: {", ".join(not_text)} must be a path '
                       f'(a JSON string), got {json.dumps(row[not_text[0]])}')
    paths = {c: clips.resolve(base, row[c]) for c in ('frame0', 'truth', 'frame1')}
    key = row.get('key')
    triplets.append({'key': _key(f'{i:06d}' if key in (None, '') else str(key), ''), 'clip': '',
                     **paths})
  keys = _distinct({f'{i}:{t["truth"]}': t['key'] for i, t in enumerate(triplets)})
  return [{**t, 'key': keys[f'{i}:{t["truth"]}']} for i, t in enumerate(triplets)]


# --------------------------------------------------------------------------------------------
# Evaluating.

class EvaluateTriplet(beam.DoFn):
  """Triplet -> one row per method; writes the comparison PNG."""

  def __init__(self, baselines, model_path, use_model, align, png_dir, flip_average=None,
               precision='float32', tile=None, scene_cut_threshold=None, progress_dir=None):
    self._baseline_names = baselines
    self._progress_dir = progress_dir  # (local runs: a note per triplet, `progress`)
    self._scene_cut = scene_cut_threshold  # None: every triplet is scored
    self._model_path = model_path
    self._use_model = use_model
    self._align = align
    self._flip_average = flip_average
    self._precision = precision
    self._tile = tile
    self._png_dir = png_dir
    self._methods = None
    # One model per process, shared by its threads; on local runs the launcher's own load.
    self._shared = shared.Shared()
    self._run_id = uuid.uuid4().hex  # its own key of the shared model

  def setup(self):
    # Chosen where the job was launched; a worker without OpenCV or ffmpeg (Dataflow's image has
    # neither) skips those, and the report lists the methods that were scored.
    available = quality.available_baselines()
    for name in self._baseline_names:
      if name not in available:
        _log.warning('Baseline %s is not available on this worker: skipped', name)
    self._methods = {name: available[name] for name in self._baseline_names if name in available}
    if self._use_model:
      model = self.acquire_model()
      self._methods[MODEL] = lambda x0, x1: model(x0[None], x1[None])[0]

  def acquire_model(self):
    """The model, loaded once per process: the launcher's load and its local workers' are one,
    as long as the launcher holds it."""
    return interpolate.acquire_model(self._shared, self._run_id, self._model_path,
                                     self._align or None, self._flip_average, self._precision,
                                     self._tile)

  def process(self, triplet):
    """Rows of the methods that scored (`_rows`); on local runs, then a progress note."""
    yield from self._rows(triplet)
    if self._progress_dir:  # (named by the triplet: a retried bundle's replaces its own)
      key = hashlib.sha1(triplet['key'].encode()).hexdigest()
      records.progress_note(self._progress_dir, f'triplet-{key}.json',
                            {'pairs': 1, 'processed': 1, 'frames': 0})

  def _rows(self, triplet):
    """Rows of the methods that scored; a triplet or method that fails becomes an error row
    (method None for the triplet) and the others go on."""
    if triplet.get('unreadable'):  # known from the names: nothing to read
      yield _error_row(triplet, None, f'{triplet["unreadable"]}; not scored')
      return
    if triplet.get('uneven'):
      yield _row(triplet, None, left_out=triplet['uneven'], cut_score=None)
      return
    decoded = []
    for k in ('frame0', 'truth', 'frame1'):
      try:
        decoded.append(images.decode(files.read_bytes(triplet[k]), triplet[k]))
      except Exception as e:  # pylint: disable=broad-except
        yield _error_row(triplet, None, f'cannot read {triplet[k]}: {files.reason(e)}')
        return
    frames = [frame.rgb() for frame in decoded]
    # A grey picture saved as RGB (R = G = B: a PNG optimiser reduces some frames only) is grey.
    grey = [frame.channels < 3 or _neutral(rgb) for frame, rgb in zip(decoded, frames)]
    if any(grey) and not all(grey):  # a colour prediction against a grey truth scores ~20 dB low
      yield _error_row(triplet, None, 'grey and colour frames mixed: ' + ', '.join(
          f'{triplet[k]} is {"grey" if g else "colour"}'
          for k, g in zip(('frame0', 'truth', 'frame1'), grey)))
      return
    x0, truth, x1 = frames
    if not x0.shape == truth.shape == x1.shape:
      yield _error_row(triplet, None, 'frame sizes differ: ' + ', '.join(
          f'{triplet[k]} is {f.shape[1]}x{f.shape[0]}'
          for k, f in zip(('frame0', 'truth', 'frame1'), frames)))
      return
    if min(x0.shape[:2]) < quality.SSIM_WINDOW:
      yield _error_row(triplet, None, f'{triplet["truth"]} is {x0.shape[1]}x{x0.shape[0]}, '
                                      f'smaller than SSIM\'s {quality.SSIM_WINDOW}x'
                                      f'{quality.SSIM_WINDOW} window: nothing to score')
      return
    if self._scene_cut is not None:  # footage: is the middle frame the midpoint in time?
      reason, score = scene_cuts.not_a_midpoint(x0, truth, x1, self._scene_cut)
      if reason:
        yield _row(triplet, None, left_out=reason,
                   cut_score=None if score is None else round(score, 4))
        return
    # The tool holds a repeated frame with no model call (transforms/interpolate): so does its
    # score, which was the model's near copy (54 dB where the tool writes the frame exactly).
    held = images.same_picture(decoded[0], decoded[2])
    predictions, scores = {}, {}
    for name, method in self._methods.items():
      try:
        prediction = x0 if held and name == MODEL else method(x0, x1)
        broken = prediction.size - np.count_nonzero(np.isfinite(prediction))
        if broken:  # clipping keeps NaN, and the means would leave it out as 'exact'
          raise ValueError(f'{broken} NaN or infinite values of {prediction.size} in its frame')
        predictions[name] = np.clip(prediction, 0.0, 1.0)
        scores[name] = quality.metrics(predictions[name], truth)
      except Exception as e:  # pylint: disable=broad-except
        predictions.pop(name, None)
        yield _error_row(triplet, name, f'{name} failed: {type(e).__name__}: {e}')
        continue
      yield _row(triplet, name, height=x0.shape[0], width=x0.shape[1], **scores[name])
    if self._png_dir and predictions:
      png = quality.comparison_png(x0, x1, truth, predictions, scores)
      path = files.join(self._png_dir, triplet['key'] + '.png')
      try:
        files.write_atomic(path, png, self._png_dir)
      except Exception as e:  # pylint: disable=broad-except
        yield _error_row(triplet, None, f'cannot write the comparison PNG {path}: {e}')


def _neutral(rgb):
  """Whether every pixel of an (H, W, 3) frame is grey."""
  return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def _row(triplet, method, **fields):
  """A report row of `triplet` for `method` (None: the triplet's own), naming what it predicts."""
  return {'key': triplet['key'], 'clip': triplet['clip'], 'truth': triplet['truth'],
          'method': method, **fields}


def _error_row(triplet, method, message):
  stopping.raise_if_requested()  # the error may be the stop's, come out of a library call
  return _row(triplet, method, error=f'{triplet["key"]}: {message}')


def _mean(rows, exact_keys):
  """Mean of each metric over rows. A prediction equal to its truth has infinite PSNR: the
  PSNR means leave out the triplets that any method predicts exactly (`exact_keys`), so every
  method's is over the same triplets (each method leaving out its own exact ones, on footage
  with freezes the repeat baseline's mean left them out and the model's, a near copy, kept
  them); `psnr_count` says how many it averages (`count` the rows)."""
  out = {'count': len(rows)}
  for metric in METRICS:
    values = [r[metric] for r in rows if math.isfinite(r[metric]) and
              (metric != 'psnr' or r['key'] not in exact_keys)]
    out[metric] = float(np.mean(values)) if values else float('nan')
  out['psnr_count'] = sum(r['key'] not in exact_keys for r in rows)  # (the rest are finite)
  return out


def _json_safe(value):
  """The report with NaN and infinities as null: JSON has no such numbers (Python writes bare
  NaN/Infinity, which strict parsers refuse)."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  return value


def summarise(rows, settings):
  """The report as a dict: settings, mean per method, per clip and method, every row, and the
  errors (a triplet or method that could not be scored)."""
  errors = sorted((r for r in rows if 'error' in r), key=lambda r: (r['key'], r['method'] or ''))
  left_out = sorted(({k: r[k] for k in ('key', 'clip', 'truth', 'left_out', 'cut_score')}
                     for r in rows if 'left_out' in r), key=lambda r: r['key'])
  rows = sorted((r for r in rows if 'error' not in r and 'left_out' not in r),
                key=lambda r: (r['clip'], r['key'], _method_order(r['method'])))
  methods = sorted({r['method'] for r in rows}, key=_method_order)
  exact = {r['key'] for r in rows if not math.isfinite(r['psnr'])}
  report = dict(settings)
  report['mean'] = {m: _mean([r for r in rows if r['method'] == m], exact) for m in methods}
  clips = sorted({r['clip'] for r in rows if r['clip']})
  report['clips'] = {c: {m: _mean([r for r in rows if r['clip'] == c and r['method'] == m],
                                  exact) for m in methods} for c in clips}
  report['triplets'] = rows
  report['left_out'] = left_out  # footage whose middle frame is not the midpoint in time
  report['errors'] = errors
  return report


def _method_order(name):
  order = (MODEL,) + quality.BASELINES
  return order.index(name) if name in order else len(order)


def write_reports(rows, output, settings):
  """Writes results.json and results.csv under `output`, then removes the comparison PNGs
  that are not of this report's triplets (an earlier run's into the same folder, or all with
  --no_png); returns the report."""
  report = summarise(rows, {**settings, 'finished_at': records.iso_time(time.time())})
  # Each file atomic (a temporary in `output`, renamed). The pair is not: so an earlier run's
  # results.csv goes first, and a run stopped between the two leaves a JSON without a CSV, never
  # one beside a CSV of other numbers.
  files.delete_files([files.join(output, TABLE)])
  files.write_atomic(files.join(output, REPORT), json.dumps(
      _json_safe(report), indent=1, default=float, allow_nan=False).encode('utf-8'), output)
  text = io.StringIO()
  writer = csv.DictWriter(text, CSV_FIELDS, extrasaction='ignore', lineterminator='\n')
  writer.writeheader()
  writer.writerows(report['triplets'])
  for clip, means in report['clips'].items():
    for method, mean in means.items():
      writer.writerow({'key': MEAN_KEY, 'clip': clip, 'method': method, **mean})
  for method, mean in report['mean'].items():
    writer.writerow({'key': MEAN_KEY, 'clip': '', 'method': method, **mean})
  writer.writerows(report['errors'])
  files.write_atomic(files.join(output, TABLE), text.getvalue().encode('utf-8'), output)
  drawn = {t['key'] + '.png' for t in report['triplets']} if settings['comparison_pngs'] else ()
  files.delete_files([m.path for m in files.match(files.join(output, COMPARISONS), '*.png')
                      if posixpath.basename(m.path) not in drawn])
  return report


# --------------------------------------------------------------------------------------------
# The job.

def _choose_baselines(requested):
  names = [n.strip() for n in requested.split(',') if n.strip()]
  unknown = [n for n in names if n not in quality.BASELINES]
  if unknown:
    raise UsageError(f'--baselines: unknown {", ".join(unknown)}; choose from '
                     f'{", ".join(quality.BASELINES)}')
  available = quality.available_baselines()
  skipped = [n for n in names if n not in available]
  for name in skipped:
    _log.warning('Skipping baseline %s: %s', name,
                 quality.NO_FFMPEG if name == 'minterpolate' else
                 'OpenCV is not installed (pip install opencv-python-headless)')
  return [n for n in names if n in available], skipped


def _scene_cut_setting(known):
  """Curated triplets are scored whole; footage (--leave_one_out) may cross an edit's cuts."""
  return pipeline_flags.scene_cut_setting(known) if known.leave_one_out else None


def _no_triplets(known):
  """Why the input gave no triplet, for the usage error."""
  if clips.is_manifest(known.input) and not known.leave_one_out:
    return 'the manifest has no rows'
  folder = clips.literal_folder(known.input) or known.input  # (escaped as glob.escape does)
  if not files.is_folder(folder) and not files.is_file(known.input):
    if clips.is_glob_in_a_folder(known.input):
      return ('no clip of 3 or more frames matches' if known.leave_one_out else
              'a glob selects clips for --leave_one_out; triplets are a folder of triplet '
              'folders or a manifest')
    return files.unreachable(known.input) or 'no such folder'
  if known.leave_one_out and (clips.is_manifest(known.input) or os.path.isfile(known.input)):
    return '--leave_one_out takes a folder of clips, not a manifest or a file'
  if known.leave_one_out:
    return 'no clip of 3 or more frames'
  return f'no triplet folders (holding {", ".join(TRIPLET_NAMES)})'


def run(argv=None, save_main_session=False, test_pipeline=None):
  """Builds and runs the evaluation; returns the PipelineResult once it finished.

  Raises UsageError (flags, input) or interpolate.ModelError before any work, as pipeline.run
  does: the job would otherwise fail on every triplet."""
  started = time.time()
  known, beam_args = parse_known_args(argv)
  options = job_options(beam_args, save_main_session)
  runner = runner_name(options.view_as(StandardOptions).runner)
  if test_pipeline is None:
    prepare_remote_launch(known, options, runner)
  problem = flags.not_a_folder('--output', known.output)
  if problem:
    raise UsageError(problem)
  check_reachable(known)
  blocker = files.object_in_the_way(known.output)
  if blocker:
    raise UsageError(f'--output {known.output}: {blocker} is a file (an object), not a folder')
  baselines, skipped = _choose_baselines(known.baselines)
  if known.no_model and not baselines:
    raise UsageError('nothing to evaluate: --no_model and no available --baselines' +
                     (f' ({", ".join(skipped)} skipped)' if skipped else ''))
  too_short = []
  triplets = list_triplets(known.input, known.leave_one_out, known.stride, too_short,
                           known.output)
  if not triplets:
    raise UsageError(f'--input {known.input}: {_no_triplets(known)}')
  dry_run = truthy(options.view_as(TestOptions).dry_run)
  # Named now for the workers' notes, made as the run starts (nothing to remove before).
  progress_dir = (progress.new_progress_dir(make=False) if is_local_runner(runner) and not dry_run
                  else None)
  # The model is loaded here to fail fast, and says how it runs (flags or its file's defaults);
  # local runs' workers share this load (it stays referenced until the job is done).
  evaluate = EvaluateTriplet(baselines, known.model_path, not known.no_model, known.align,
                             None if known.no_png else files.join(known.output, COMPARISONS),
                             known.flip_average, known.precision,
                             interpolate.tile_setting(known), _scene_cut_setting(known),
                             progress_dir)
  inference = {'model_fingerprint': None, 'flip_average': None, 'padding': None,
               'flip_weights': None}
  if not known.no_model:
    model = evaluate.acquire_model()
    # (which weights were scored: a training run's latest.npz is another model each time)
    inference = {'model_fingerprint': model.fingerprint, 'flip_average': model.flip_average,
                 'padding': model.padding,
                 'flip_weights': model.flip_weights if model.flip_average else None}
  settings = {'input': known.input, 'leave_one_out': known.leave_one_out,
              'model_path': None if known.no_model else (known.model_path or 'built-in'),
              'started_at': records.iso_time(started), 'align': known.align, **inference,
              'precision': None if known.no_model else known.precision,
              'tile': None if known.no_model else interpolate.tile_setting(known),
              'baselines': baselines,
              'skipped_baselines': skipped, 'triplets_listed': len(triplets),
              'comparison_pngs': not known.no_png}
  if known.leave_one_out:
    settings['stride'] = known.stride
    settings['clips_too_short'] = too_short  # under 3 frames: no triplet to score
    settings['scene_cut_threshold'] = _scene_cut_setting(known)

  if test_pipeline is not None:
    p = test_pipeline
  else:
    p = beam.Pipeline(runner=LocalRunner() if is_local_runner(runner) else runner, options=options)
  _ = (p
       | 'ListTriplets' >> beam.Create(triplets)
       | 'Spread' >> beam.Reshuffle()
       | 'Evaluate' >> beam.ParDo(evaluate)
       | 'Gather' >> beam.combiners.ToList()
       | 'WriteReports' >> beam.Map(write_reports, known.output, settings))
  if dry_run:
    return dry_run_job(p, options, test_pipeline is None and runner == 'DataflowRunner', settings)
  # (it was a traceback at the first write, or with --no_png the reports failing at the end)
  problem = FileSystems.get_scheme(known.output) is None and flags.cannot_write(
      '--output', known.output)
  if problem:
    shutil.rmtree(p.local_tempdir, ignore_errors=True)  # (p.run() would have)
    raise UsageError(problem)
  if not known.no_png:
    # Its pictures replace an earlier run's as it goes: a stop before its report must not leave
    # that run's report describing them (with --no_png the earlier report stays until replaced).
    files.delete_files([files.join(known.output, name) for name in (REPORT, TABLE)])
    files.write_atomic(files.join(known.output, STARTED),
                       b'an evaluation\'s output: its comparisons/ are pictures, not footage\n',
                       known.output)
  printer = None
  if progress_dir:
    os.makedirs(progress_dir)
    records.progress_note(progress_dir, 'clip-all.json', {'pairs': len(triplets)})
    printer = progress.ProgressPrinter(progress_dir, known.progress_interval, 'triplets')
  try:
    return run_and_wait(p, options, remote=test_pipeline is None and not is_local_runner(runner))
  finally:
    if printer:
      printer.stop()


def format_table(report):
  """Mean PSNR/SSIM per method as a text table."""
  def number(value, digits):  # None: the report's JSON null for NaN (nothing to average)
    return 'n/a' if value is None else f'{value:.{digits}f}'
  lines = [f'{"method":<14}{"PSNR dB":>9}{"SSIM":>8}{"n":>5}']
  for method, mean in report['mean'].items():
    fewer = mean['psnr_count'] != mean['count']  # exact predictions: infinite PSNR, left out
    lines.append(f'{method:<14}{number(mean["psnr"], 2):>9}{number(mean["ssim"], 4):>8}'
                 f'{mean["count"]:>5}' + (f'  (PSNR of {mean["psnr_count"]}: a method predicts '
                                          f'the others exactly)' if fewer else ''))
  scored = max([mean['count'] for mean in report['mean'].values()] + [0])
  for method, mean in report['mean'].items():
    if mean['count'] < scored:
      lines.append(f'{method} scored {mean["count"]} of {scored} triplets (see the errors): its '
                   f'mean is not over the same frames as the others')
  for clip, means in report['clips'].items():
    lines.append(f'clip {clip}: ' + ', '.join(
        f'{m} {number(v["psnr"], 2)} dB / {number(v["ssim"], 4)}' for m, v in means.items()))
  for reason in ('frame numbers skip', 'frame number repeated', 'scene cut', 'repeated frame'):
    keys = [r['key'] for r in report.get('left_out', []) if r['left_out'] == reason]
    if keys:
      lines.append(f'left out, {reason}: {len(keys)} triplet{"s" if len(keys) > 1 else ""} ('
                   + ', '.join(keys[:5]) + (', ...)' if len(keys) > 5 else ')'))
  short = report.get('clips_too_short') or []
  if short:  # (a clip of the footage the report would otherwise not name at all)
    lines.append(f'not scored, fewer than 3 frames: {len(short)} clip'
                 f'{"s" if len(short) > 1 else ""} ('
                 + ', '.join(short[:5]) + (', ...)' if len(short) > 5 else ')'))
  return '\n'.join(lines)


def _interrupted(caught):
  print('interrupted: the evaluation stopped before its results; the same command runs it again',
        file=sys.stderr)
  return interrupt_status(caught)


def main(argv=None):
  """Command line entry: runs the evaluation, prints the table; exit status 2 (one line, before
  any work) if the flags, the input or the model cannot work, 1 if a triplet or method could not
  be scored (listed) or all were left out, else 0."""
  flags.start_command()
  logging.getLogger().setLevel(logging.WARNING)  # (Beam logs its state cache at INFO)
  quiet_beam_logs()
  known, beam_args = parse_known_args(argv)
  results = files.join(known.output, REPORT)
  # SIGTERM stops it as Ctrl-C does, in one line (on Dataflow: which job runs on).
  with terminate_as_interrupt() as caught:
    return run_command(
        caught, lambda: run(argv),
        truthy(PipelineOptions(beam_args).view_as(TestOptions).dry_run),
        lambda _: _print_results(results), _interrupted,
        'The workers\' errors are in the job\'s log in the Dataflow console.',
        f'the evaluation had ended; its results are in {results}', known.output)


def _print_results(results):
  """Prints the table and the errors of `results` (results.json); 1 if any, or if every
  triplet was left out (a script would take an empty report for a good one), else 0."""
  with FileSystems.open(results) as f:
    report = json.loads(f.read())
  print(format_table(report))
  for error in report['errors']:
    print(f'error: {error["error"]}', file=sys.stderr)
  if not report['mean'] and not report['errors']:
    print(f'error: nothing scored: all {len(report["left_out"])} triplets were left out (see '
          f'above)', file=sys.stderr)
    return 1
  return 1 if report['errors'] else 0


if __name__ == '__main__':
  flags.exit_with(main())
