"""What a run reports: per-pair and per-error JSON records, Beam metrics, and the summary.

Records go to `<output>/_runs/<run_id>/pairs-*.jsonl` and `errors-*.jsonl`; `summary.json` is
folded from both. Beam metrics all live in the namespace `METRICS_NAMESPACE`, so the Dataflow UI
and `PipelineResult.metrics()` show them together.
"""

import datetime
import json
import logging
import os
import time

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import files
from transforms import stopping

_log = logging.getLogger(__name__)

METRICS_NAMESPACE = 'film_pipeline'
_MAX_FAILURES_LISTED = 50
STARTED = 'started.json'
SUMMARY = 'summary.json'


def counter(name):
  return Metrics.counter(METRICS_NAMESPACE, name)


def distribution(name):
  return Metrics.distribution(METRICS_NAMESPACE, name)


def run_dir(output, run_id):
  return files.join(output, files.RUNS_DIR, run_id)


def write_started(output, run_id, details):
  """Writes `started.json` (the run's options) under the run's folder as it starts. Its time, in
  the output storage's own clock, is when the job began: a done marker older than it was written
  by an earlier job, which `InterpolateUnits` then need not read to know."""
  content = {'run_id': run_id, 'started_at': iso_time(time.time()), **details}
  files.write_atomic(files.join(run_dir(output, run_id), STARTED),
                     json.dumps(content, indent=1).encode(),
                     files.join(output, files.TMP_DIR, run_id))


def job_started(output, run_id):
  """The time (s) the output's storage gives the run's `started.json`; None without one (a job
  not started by `pipeline.run`) or where it cannot be listed."""
  try:
    found = files.match(files.join(run_dir(output, run_id), STARTED))
  except Exception:  # pylint: disable=broad-except
    return None
  return found[0].last_updated_in_seconds if found else None


def error_record(run_id, uris, stage, error, message, severity='error'):
  """A record for `errors-*.jsonl`. Severity 'notice' is for what the input is and the run did
  all it could with (a lost scan, a clip of one frame): kept for the archive, it fails nothing,
  so a nightly run over the same reel does not end in failure every night. While the run is
  being stopped, `error` is taken for the stop (`stopping`): KeyboardInterrupt."""
  stopping.raise_if_requested(error)
  counter('notices' if severity == 'notice' else 'errors').inc()
  return {'run_id': run_id, 'uris': [files.printable(uri) for uri in uris], 'stage': stage,
          'error_type': type(error).__name__, 'message': files.printable(message),
          'severity': severity}


def progress_note(progress_dir, name, note):
  """Leaves `note` (JSON) as `progress_dir`/`name` for a local run's progress line, whole
  (written aside, then renamed). Best effort: a note that cannot be written (the folder gone)
  costs a progress line, never the work."""
  path = os.path.join(progress_dir, name)
  try:
    files.write_atomic(path, json.dumps(note).encode(), progress_dir)
  except OSError as e:
    _log.warning('progress note %s not written: %s', path, e)


def pair_record(run_id, clip, pair, uris, size, frames_written, status, seconds, error=None,
                cut_score=None, scene_cut=None, identical=None, model_calls=0):
  """One pair's outcome; status is 'ok', 'skipped' or 'failed'. `cut_score`, `scene_cut`,
  `identical`: the pair's scene-cut score, whether it was taken for a cut, whether its frames
  are one image twice (None: not looked at). The `scene_cuts` and `identical_pairs` metrics
  count the pairs held: found so and written ('ok'). Every record has every field (a skipped
  pair's size is None: its frames were not read), so readers need no case for any status. A
  pair failed while the run is being stopped failed by the stop (`stopping`): KeyboardInterrupt."""
  if status == 'failed':
    stopping.raise_if_requested()
  counter('pairs_' + status).inc()
  if scene_cut and status == 'ok':
    counter('scene_cuts').inc()
  if identical and status == 'ok':
    counter('identical_pairs').inc()
  return {'run_id': run_id, 'clip': clip, 'pair': pair, 'inputs': list(uris),
          'size': list(size) if size else None, 'frames_written': frames_written,
          'model_calls': model_calls, 'status': status,
          'seconds': {k: round(v, 6) for k, v in {'read': 0, 'model': 0, 'write': 0,
                                                   **seconds}.items()},
          'error': error,
          'cut_score': None if cut_score is None else round(float(cut_score), 4),
          'scene_cut': scene_cut, 'identical': identical}


_LISTS = ('failures', 'notice_messages', 'pruned', 'tidied')  # each its first _MAX_FAILURES_LISTED


def _first(names):
  """The first `_MAX_FAILURES_LISTED` of `names` in sorted order: the same whatever order Beam
  folds the records in, so the lists of nightly runs over the same input compare equal."""
  return sorted(names)[:_MAX_FAILURES_LISTED]


class SummarizeFn(beam.CombineFn):
  """Folds ('pair' | 'error' | 'frames' | 'pruned' | 'tidied', record) into the counts of
  summary.json."""

  def create_accumulator(self):
    return {'ok': 0, 'skipped': 0, 'failed': 0, 'errors': 0, 'frames_written': 0,
            'model_calls': 0, 'scene_cuts': 0, 'identical_pairs': 0, 'clips_pruned': 0,
            'pruned': [], 'stale_frames_removed': 0, 'clips_tidied': 0, 'tidied': [],
            'failures': [], 'notices': 0, 'notice_messages': []}

  def add_input(self, acc, element):
    kind, rec = element
    if kind == 'pair':
      acc[rec['status']] += 1
      acc['frames_written'] += rec['frames_written']
      acc['model_calls'] += rec['model_calls']
      held = rec['status'] == 'ok'  # a failed pair's frames were not (all) written
      acc['scene_cuts'] += held and bool(rec.get('scene_cut'))
      acc['identical_pairs'] += held and bool(rec.get('identical'))
    elif kind == 'frames':
      acc['frames_written'] += rec['frames_written']
    elif kind == 'pruned':
      acc['clips_pruned'] += 1
      acc['pruned'] = _first(acc['pruned'] + [rec['clip']])
    elif kind == 'tidied':
      acc['stale_frames_removed'] += rec['frames_removed']
      acc['clips_tidied'] += 1
      acc['tidied'] = _first(acc['tidied'] + [rec['clip']])
    else:
      notice = rec.get('severity') == 'notice'
      acc['notices' if notice else 'errors'] += 1
      listed = 'notice_messages' if notice else 'failures'
      acc[listed] = _first(acc[listed] + [rec['message']])
    return acc

  def merge_accumulators(self, accumulators):
    out = self.create_accumulator()
    for acc in accumulators:
      for k, v in acc.items():
        out[k] = _first(out[k] + v) if k in _LISTS else out[k] + v
    return out

  def extract_output(self, acc):
    return acc


class WriteSummary(beam.DoFn):
  """Writes summary.json (last thing a run writes under _runs/<run_id>/)."""

  def __init__(self, output, run_id, started, details):
    self._path = files.join(run_dir(output, run_id), SUMMARY)
    self._tmp = files.join(output, files.TMP_DIR, run_id)
    self._run_id = run_id
    self._started = started
    self._details = details

  def process(self, acc, pair_files=(), error_files=()):
    wall = max(time.time() - self._started, 1e-9)
    total = acc['ok'] + acc['skipped'] + acc['failed']
    summary = {
        'run_id': self._run_id,
        'status': 'failed' if acc['failed'] or acc['errors'] else 'ok',
        'pairs': {'total': total, 'ok': acc['ok'], 'skipped': acc['skipped'],
                  'failed': acc['failed']},
        'errors': acc['errors'],  # records in errors-*.jsonl of severity 'error'
        'notices': acc['notices'],  # those of severity 'notice'
        'frames_written': acc['frames_written'],
        'model_calls': acc['model_calls'],
        'scene_cuts': acc['scene_cuts'],
        'identical_pairs': acc['identical_pairs'],
        'clips_pruned': acc['clips_pruned'],
        'pruned': acc['pruned'],  # the first of their names
        # Frames past a shortened clip's new end, or of the other output format, that went.
        'stale_frames_removed': acc['stale_frames_removed'],
        'clips_tidied': acc['clips_tidied'],
        'tidied': acc['tidied'],  # the first of those clips' names
        'wall_seconds': round(wall, 3),
        'frames_per_second': round(acc['frames_written'] / wall, 3),
        'started_at': iso_time(self._started),
        'finished_at': iso_time(time.time()),
        'failures': acc['failures'],
        'notice_messages': acc['notice_messages'],
        'record_files': sorted(list(pair_files) + list(error_files)),
        **self._details,
    }
    files.write_atomic(self._path, json.dumps(summary, indent=2).encode(), self._tmp)
    yield summary


def iso_time(t):
  """`t` (s since the epoch) as UTC ISO 8601 to the second, as records give times."""
  return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec='seconds')
