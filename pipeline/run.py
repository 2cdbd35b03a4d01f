"""The job: discover clips, cut them into units, interpolate, write frames, records and summary.

    python -m pipeline.run --input ARCHIVE --output OUT [--times_to_interpolate N] [beam flags]

`run()` builds and runs the pipeline and returns its PipelineResult (tests pass a TestPipeline);
`main()` adds what a command line needs: progress, the failure summary and the exit status
(0 when every pair is ok or skipped, 1 when anything failed, 2 when the model cannot be loaded).

How a job is launched, checked for Dataflow, waited for and ended (shared with
`pipeline.evaluate`) is in `pipeline.launch`.
"""

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import datetime
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import TestOptions
from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner
from apache_beam.utils import shared

from film_net import flags
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
from transforms import clips as clips_lib
from transforms import files
from transforms import interpolate
from transforms import prune
from transforms import records
from transforms import retime

_log = logging.getLogger(__name__)
# The run ids this process has begun jobs of (their `started.json` written next): a stop before
# (loading the model, checking the paths) has nothing of the run to finish.
_STARTED_RUNS = set()


CONTROL_CHARS = re.compile('[\x00-\x1f\x7f]')  # escaped in the failure list, one line each


def check_paths(known, offline=False):
  """--output a file, the --input folder itself or above it (where nothing would be read: an
  output inside the input is never read as input), or a bucket that cannot be listed
  (`check_reachable`) are usage errors, not a traceback at the end or an 'empty' input."""
  output = known.output
  if FileSystems.get_scheme(output) is None and os.path.isfile(output):
    raise UsageError(f'--output={output} is a file; --output names the folder the frames go to')
  problem = flags.not_a_folder('--output', output)
  if problem:  # (one above it a file)
    raise UsageError(problem)
  if not clips_lib.is_manifest(known.input) and (
      files.real_path(known.input).rstrip('/') + '/').startswith(
          files.real_path(output).rstrip('/') + '/'):
    raise UsageError(f'--input {known.input} is --output {output} or inside it; write the frames '
                     f'to a folder of their own (one inside the input is never read as input)')
  check_reachable(known, offline)
  blocker = None if offline else files.object_in_the_way(output)
  if blocker:
    raise UsageError(f'--output {output}: {blocker} is a file (an object), not a folder')
  frame = None if offline else clips_lib.input_frame_inside(known.input, output)
  if frame:
    raise UsageError(f'--output {output} holds input frames ({frame}): the run would '
                     f'{"overwrite" if clips_lib.is_manifest(known.input) else "pass over"} them; '
                     f'write the frames to a folder of their own')


class PlanUnits(beam.DoFn):
  """Clip -> Units; tidies the clip's output (`interpolate.tidy_clip_output`: frames past its
  new end, markers of frames lost since), saying how many frames went ('tidied'); on local
  runs also notes the clip's pair count for the progress line. A clip with a gap (a manifest's
  frames in no pair) has no times to retime by, one whose output folder leads into the input
  (`clips.OutputIntoInput`) is not written, and one whose output cannot be tidied (a file
  there it may not delete) has no units: an error record each."""

  def __init__(self, input_spec, output, run_id, times_to_interpolate, pairs_per_unit, timing,
               output_format='png', progress_dir=None):
    self._input = input_spec
    self._into_input = None  # (made on the worker: `setup`)
    self._output = output
    self._format = output_format
    self._run_id = run_id
    self._n = times_to_interpolate
    self._k = pairs_per_unit
    self._timing = timing
    self._progress_dir = progress_dir

  def setup(self):
    self._into_input = clips_lib.OutputIntoInput(self._input, self._output)

  def process(self, clip):
    records.counter('clips').inc()
    if self._timing.timed and not all(clip.paired):  # (a rate equal to the dense one included)
      gap = clip.paired.index(False)
      uris = [u for u, _ in clip.frames[gap:gap + 2]]
      yield beam.pvalue.TaggedOutput('errors', records.error_record(
          self._run_id, uris, 'plan', ValueError('gap in clip'),
          f'clip {clip.name}: {uris[0]} and {uris[1]} are no pair (the manifest leaves a gap), '
          f'so the clip has no times for --output_fps; not retimed (list its parts as clips of '
          f'their own, or run without --output_fps)'))
      return
    into_input = self._into_input(clip)
    if into_input:  # (a link from the output to the archive: frames among the footage)
      folder = files.join(self._output, clip.name)
      yield beam.pvalue.TaggedOutput('errors', records.error_record(
          self._run_id, [folder], 'plan', ValueError('output leads into the input'),
          f'clip {clip.name}: its output folder {folder} leads to {into_input}; nothing is '
          f'written among the footage: link it elsewhere; its pairs are not made'))
      return
    timing = self._timing.along(clip.long_pairs)
    last_index = timing.last_output(clips_lib.output_indices(clip, self._n)[-1])
    try:
      removed = interpolate.tidy_clip_output(self._output, clip.name, last_index, self._format)
    except Exception as e:  # pylint: disable=broad-except
      if files.storage_failure(e):  # (after its client's retries: the other clips go on)
        yield beam.pvalue.TaggedOutput('errors', records.error_record(
            self._run_id, [files.join(self._output, clip.name)], 'plan', e,
            f'clip {clip.name}: cannot look at what earlier runs wrote for it: '
            f'{files.reason(e)}; its pairs are not made (the same command makes them)'))
        return
      if not files.refused(e):  # (anything else: the bundle is retried)
        raise
      # (a file of a colleague's in a shared output: it stopped the whole job, every night)
      yield beam.pvalue.TaggedOutput('errors', records.error_record(
          self._run_id, [files.join(self._output, clip.name)], 'plan', e,
          f'clip {clip.name}: cannot remove what an earlier run wrote for it that no longer '
          f'fits (frames past its end or of another format, done markers of frames to make '
          f'again): {e}; its pairs are not made'))
      return
    records.counter('pairs_planned').inc(clip.num_pairs())
    records.counter('stale_frames_removed').inc(removed)
    if removed:  # (for the summary and the run's line: frames that went since the last run)
      yield beam.pvalue.TaggedOutput('tidied', {'clip': clip.name, 'frames_removed': removed})
    if self._progress_dir:
      clip_id = hashlib.sha1(clip.name.encode()).hexdigest()  # a retry replaces the note
      records.progress_note(self._progress_dir, f'clip-{clip_id}.json',
                            {'pairs': clip.num_pairs()})
    units = clips_lib.split_into_units(clip, self._n, self._k)
    if not isinstance(timing, retime.Dense):  # retimed: units read only the frames they show
      units = clips_lib.with_size_anchors(units, clip, timing, self._n)
    yield from units


def build(p, known, fingerprint, details, progress_dir=None, shared_handle=None):
  """Adds the job's steps to pipeline `p`; returns the summary PCollection."""
  run_dir = records.run_dir(known.output, known.run_id)
  started = time.time()
  timing = retime.timing(known.times_to_interpolate, known.input_fps, known.output_fps)
  found = (
      p
      | 'Input' >> beam.Create([known.input])
      | 'DiscoverClips' >> beam.ParDo(clips_lib.DiscoverClips(
          known.run_id, known.output, retimed=timing.timed,
          inbetweens=known.times_to_interpolate > 0)).with_outputs(
              'errors', main='clips'))
  planned = (
      found.clips
      # Planning lists each clip's output (to remove frames past a shortened clip's end): over
      # the workers, not fused into discovery's one (an archive of 10,000 clips is 10,000
      # listings, one after the other on a single worker).
      | 'SpreadClips' >> beam.Reshuffle()
      | 'SplitIntoUnits' >> beam.ParDo(
          PlanUnits(known.input, known.output, known.run_id, known.times_to_interpolate,
                    known.pairs_per_unit, timing, known.output_format,
                    progress_dir)).with_outputs(
                        'errors', 'tidied', main='units'))
  results = (
      planned.units
      | 'SpreadUnits' >> beam.Reshuffle()
      | 'InterpolateUnits' >> beam.ParDo(interpolate.InterpolateUnits(
          known.output, known.run_id, known.model_path, fingerprint, known.times_to_interpolate,
          known.align or None, known.max_pixels, known.reprocess, progress_dir,
          shared_handle, known.flip_average, known.precision,
          interpolate.tile_setting(known),
          pipeline_flags.scene_cut_setting(known), timing,
          known.output_format, known.png_compression)).with_outputs(
              'errors', 'frames', main='pairs'))
  error_outputs, tagged = [found.errors, planned.errors, results.errors], []
  if known.prune_removed_clips:
    pruned = (
        p
        | 'Output' >> beam.Create([known.output])
        | 'PruneRemovedClips' >> prune.Prune(
            known.run_id, found.clips | 'ClipNames' >> beam.Map(lambda c: c.name),
            found.errors | 'ListingGaps' >> beam.Filter(
                # (a manifest's malformed rows: clips still in the input, unreadable tonight)
                lambda r: r['error_type'] == clips_lib.IncompleteListing.__name__
                or r['stage'] == 'manifest')))
    error_outputs.append(pruned['errors'])
    tagged.append(pruned['clips'] | 'TagPruned' >> beam.Map(lambda r: ('pruned', r)))
  errors = error_outputs | 'AllErrors' >> beam.Flatten()
  pair_files = (
      results.pairs
      | 'PairsToJson' >> beam.Map(json.dumps, sort_keys=True)
      | 'WritePairRecords' >> beam.io.WriteToText(
          files.join(run_dir, 'pairs'), file_name_suffix='.jsonl'))
  error_files = (
      errors
      | 'ErrorsToJson' >> beam.Map(json.dumps, sort_keys=True)
      | 'WriteErrorRecords' >> beam.io.WriteToText(
          files.join(run_dir, 'errors'), file_name_suffix='.jsonl'))
  tagged += [
      results.pairs | 'TagPairs' >> beam.Map(lambda r: ('pair', r)),
      errors | 'TagErrors' >> beam.Map(lambda r: ('error', r)),
      results.frames | 'TagLoneFrames' >> beam.Map(lambda r: ('frames', r)),
      planned.tidied | 'TagTidied' >> beam.Map(lambda r: ('tidied', r)),
  ]
  return (
      tagged
      | 'AllRecords' >> beam.Flatten()
      | 'Summarize' >> beam.CombineGlobally(records.SummarizeFn())
      | 'WriteSummary' >> beam.ParDo(
          records.WriteSummary(known.output, known.run_id, started, details),
          beam.pvalue.AsList(pair_files), beam.pvalue.AsList(error_files)))


def _model_is_remote(model_path):
  return bool(model_path) and FileSystems.get_scheme(model_path) is not None


def run(argv=None, save_main_session=False, test_pipeline=None):
  """Builds and runs the job; returns the PipelineResult once it finished.

  save_main_session defaults to False: every DoFn lives in an importable module (`job_options`).
  Raises interpolate.ModelError before any work when the model cannot be loaded.
  """
  known, beam_args = pipeline_flags.parse_known_args(argv)
  pipeline_options = job_options(beam_args, save_main_session)
  dry_run = truthy(pipeline_options.view_as(TestOptions).dry_run)
  runner = runner_name(pipeline_options.view_as(StandardOptions).runner)
  local = test_pipeline is None and is_local_runner(runner)
  if test_pipeline is None:
    prepare_remote_launch(known, pipeline_options, runner)
  check_paths(known, offline=dry_run)

  # Fail fast: load the model here, before any work. A dry run stays offline, so a remote model
  # is only checked by the workers then.
  handle, model, fingerprint = shared.Shared(), None, 'unchecked-remote-model'
  if not (dry_run and _model_is_remote(known.model_path)):
    model = interpolate.acquire_model(handle, known.run_id, known.model_path,
                                      known.align or None, known.flip_average, known.precision,
                                      interpolate.tile_setting(known))
    fingerprint = model.fingerprint
  run_options = {k: getattr(known, k) for k in ('times_to_interpolate', 'output_format',
                                                 'png_compression',
                                                 'pairs_per_unit', 'align',
                                                 'flip_average', 'precision', 'tile',
                                                 'tile_overlap', 'scene_cuts',
                                                 'scene_cut_threshold', 'max_pixels',
                                                 'reprocess', 'prune_removed_clips')}
  run_options.update({k: None if getattr(known, k) is None else retime.rate_text(getattr(known, k))
                      for k in ('input_fps', 'output_fps')})
  if model is not None:  # unset, the model file chose
    run_options.update(flip_average=model.flip_average, padding=model.padding,
                       flip_weights=model.flip_weights if model.flip_average else None)
  details = {
      'input': known.input, 'output': known.output,
      'model_path': known.model_path or 'built-in', 'model_fingerprint': fingerprint,
      'options': run_options, 'model_options': _model_options(model),
  }

  progress_dir = progress.new_progress_dir() if local and not dry_run else None
  if test_pipeline is not None:
    p = test_pipeline
    if isinstance(p.runner, SwitchingDirectRunner):
      p.runner = LocalRunner()  # Same reason as for command-line runs: no Prism download.
  else:
    p = beam.Pipeline(runner=LocalRunner() if local else runner, options=pipeline_options)
  build(p, known, fingerprint, details, progress_dir, handle)

  if dry_run:
    return dry_run_job(p, pipeline_options, not local and runner == 'DataflowRunner', details)
  clear_earlier_records(known.output, known.run_id)  # once nothing can fail before the run
  _STARTED_RUNS.add(known.run_id)
  try:
    records.write_started(known.output, known.run_id, details)
  except Exception as e:  # pylint: disable=broad-except
    if FileSystems.get_scheme(known.output) is None:  # no frame or record could be written
      shutil.rmtree(progress_dir or '', ignore_errors=True)
      shutil.rmtree(p.local_tempdir, ignore_errors=True)  # (p.run() would have)
      _remove_run_temporaries(known.output, known.run_id)
      raise UsageError(f'--output {known.output}: cannot write there ({files.reason(e)}: '
                       f'{getattr(e, "filename", None) or known.output})') from None
    _log.warning('cannot write %s under %s (%s): every done marker found will be read',
                 records.STARTED, records.run_dir(known.output, known.run_id), e)
  if local and FileSystems.get_scheme(known.output) is None:
    _delete_stale_temporaries(known.output)
  printer = (progress.ProgressPrinter(progress_dir, known.progress_interval) if progress_dir
             else None)
  try:
    return run_and_wait(p, pipeline_options, remote=not local and test_pipeline is None)
  finally:
    if printer:
      printer.stop()
    del model
    _remove_run_temporaries(known.output, known.run_id)  # (a stopped run's too)


def _remove_run_temporaries(output, run_id):
  """On local disk, the run's folder of temporaries as it ends, stopped too (a write cut off
  there has left its frame alone, and its pair is done again by the next run); and `_tmp` when
  no other run's are in it. (In a bucket nothing lists an empty folder.)"""
  if FileSystems.get_scheme(output) is not None:
    return
  files.delete_tree(files.join(output, files.TMP_DIR, run_id))
  try:
    os.rmdir(files.join(output, files.TMP_DIR))
  except OSError:
    pass  # Absent, or another run's temporaries are in it.


# A run's temporaries (<output>/_tmp/<run_id>/) untouched for this long are a killed run's: a
# live run writes there for every frame.
STALE_TEMPORARIES_SECONDS = 24 * 3600


def _delete_stale_temporaries(output):
  """Deletes what killed runs left in a local `output`: their temporaries (`_tmp/<run_id>/`)
  and their record writer's (`_runs/<run_id>/beam-temp-*`, Beam's shards of records it never
  finished), keeping the folders of runs that may still be writing on the same output (a
  nightly run that overlaps the next one). Only what runs make goes: `_tmp/` may be a link to
  a scratch disk, whose other files are not the run's. (A run's `_tmp/<run_id>` is known by
  its `_runs/<run_id>`, or by its id's form where that is gone or was never made: runs before
  2026-12-02 made it as they ended.)"""
  runs = [e for e in _entries(files.join(output, files.RUNS_DIR)) if e.is_dir()]
  run_ids = {e.name for e in runs}
  entries = [e for e in _entries(files.join(output, files.TMP_DIR))
             if e.name in run_ids or pipeline_flags.RUN_ID.fullmatch(e.name)
             or e.name.startswith(prune.CASE_PROBE_PREFIX)] + [
      e for run in runs for e in _entries(run.path) if e.name.startswith('beam-temp-')]
  now = time.time()
  for entry in entries:
    try:
      newest = max([entry.stat().st_mtime] + [
          os.stat(os.path.join(folder, name)).st_mtime
          for folder, _, names in os.walk(entry.path) for name in names])
    except OSError:
      continue  # Its run renamed or removed it meanwhile: not ours to clean.
    if now - newest <= STALE_TEMPORARIES_SECONDS:
      continue
    if entry.is_dir():
      files.delete_tree(entry.path)
    else:
      try:
        os.remove(entry.path)
      except OSError:
        pass


def _entries(folder):
  """The entries of a local folder; none where it cannot be listed (absent, or removed by the
  run that made it)."""
  try:
    with os.scandir(folder) as entries:
      return list(entries)
  except OSError:
    return []


def clear_earlier_records(output, run_id):
  """Deletes the records of an earlier run under the same --run_id (a killed run re-run with
  its id, or an id reused on purpose): each run writes its own record shards and deletes no
  other's, so the two runs' records would mix in one folder and disagree with the summary."""
  run_dir = records.run_dir(output, run_id)
  try:
    earlier = files.match(run_dir, '**')
  except Exception:  # pylint: disable=broad-except
    earlier = []  # Nothing there (some filesystems raise for a missing folder).
  if earlier:
    _log.warning('--run_id %s was used before on %s: replacing its records in %s', run_id,
                 output, run_dir)
    files.delete_tree(run_dir)


def _model_options(model):
  import dataclasses  # pylint: disable=import-outside-toplevel
  options = getattr(model, 'options', None)
  return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else None


def read_summary(output, run_id):
  path = files.join(records.run_dir(output, run_id), records.SUMMARY)
  return json.loads(files.read_bytes(path))


def _interrupted(known, caught, since):
  """The line of a run stopped during its job, which may have ended already: a stop in the
  instant between its summary (its last write) and the job's return stops nothing; one before
  its job began, nothing of it was written."""
  sigterm = signal.SIGTERM in caught
  if known.run_id not in _STARTED_RUNS:
    print(f'interrupted{" (SIGTERM)" * sigterm}: stopped before run {known.run_id} began; '
          f'nothing of it was written (the same command runs the job)', file=sys.stderr)
    return interrupt_status(caught)
  if _summary_written_since(known.output, known.run_id, since):
    print(f'interrupted: {_ended_note(known)}', file=sys.stderr)
    return interrupt_status(caught)
  print(f'interrupted{" (SIGTERM)" * sigterm}: run {known.run_id} stopped; the same '
        f'command finishes the job (what is done is skipped; the work units in flight, up to '
        f'--pairs_per_unit pairs each, are made again)', file=sys.stderr)
  return interrupt_status(caught)


def _summary_written_since(output, run_id, since):
  """Whether the run's summary.json is that of a job begun at `since` (s) or later, not an
  earlier run's under a reused --run_id. Local outputs only: a stop must not wait on cloud
  storage (a stalled network's retries took 2 minutes)."""
  if FileSystems.get_scheme(output) is not None:
    return False
  try:
    started = datetime.datetime.fromisoformat(read_summary(output, run_id)['started_at'])
    return started.timestamp() >= int(since)
  except Exception:  # pylint: disable=broad-except
    return False  # (none, or unreadable: the job had not ended)


def _ended_note(known):
  return (f'run {known.run_id} had ended; its summary is in '
          f'{records.run_dir(known.output, known.run_id)}')


def main(argv=None):
  """Command line entry: runs the job, prints the outcome, returns the exit status."""
  argv = list(sys.argv[1:] if argv is None else argv)
  flags.start_command()
  logging.getLogger().setLevel(logging.WARNING)
  quiet_beam_logs()
  try:
    known, beam_args = pipeline_flags.parse_known_args(argv)
  except SystemExit as e:
    return e.code
  argv.append(f'--run_id={known.run_id}')
  _STARTED_RUNS.discard(known.run_id)  # (a test's process runs many)
  since = time.time()
  with terminate_as_interrupt() as caught:
    return run_command(
        caught, lambda: run(argv),
        truthy(PipelineOptions(beam_args).view_as(TestOptions).dry_run),
        lambda result: _report(known, result.state),
        lambda caught: _interrupted(known, caught, since),
        'What its workers finished is kept (done markers); the same command finishes the job. '
        'The workers\' errors are in the job\'s log in the Dataflow console.',
        _ended_note(known), known.output)


def _report(known, state):
  """Prints the ended run's line, its notices and failures; returns the exit status."""
  try:
    summary = read_summary(known.output, known.run_id)
  except Exception as e:  # pylint: disable=broad-except
    print(f'error: the job ended in state {state} without a summary: {e}', file=sys.stderr)
    return 1
  pairs = summary['pairs']
  held = [f'{n} {one if n == 1 else many}' for n, one, many in (
      (summary.get('scene_cuts', 0), 'scene cut', 'scene cuts'),
      (summary.get('identical_pairs', 0), 'pair of identical frames',
       'pairs of identical frames')) if n]
  cuts = f"; held, not interpolated: {' and '.join(held)}" if held else ''
  pruned = summary.get('clips_pruned', 0)
  names = summary.get('pruned', [])
  pruned = (f"; pruned {pruned} clip{'s' * (pruned != 1)} no longer in the input: "
            f"{', '.join(names)}{', ...' * (pruned > len(names))}" if pruned else '')
  removed, tidied = summary.get('stale_frames_removed', 0), summary.get('tidied', [])
  if removed:  # (frames that went since the last run, which would have trailed or mixed in)
    pruned += (f"; removed {_count(removed, 'frame')} that no longer fit (past a clip's new "
               f"end, or of the other format) from {', '.join(tidied)}"
               f"{', ...' * (summary['clips_tidied'] > len(tidied))}")
  notices = summary.get('notices', 0)
  noted = f" and {_count(notices, 'notice')}" if notices else ''
  print(f"run {known.run_id}: {_count(pairs['total'], 'pair')} ({pairs['ok']} ok, "
        f"{pairs['skipped']} skipped, {pairs['failed']} failed{cuts}), "
        f"{_count(summary['errors'], 'error')}{noted}, "
        f"{_count(summary['frames_written'], 'frame')} in {summary['wall_seconds']:.1f}s "
        f"({summary['frames_per_second']:.2f} frames/s){pruned}; records in "
        f"{records.run_dir(known.output, known.run_id)}")
  if notices:  # what the input is (a lost scan, a lone frame): the run did all it could
    print('notices (the input as found; they fail nothing):')
    _print_messages(summary.get('notice_messages', []), notices, sys.stdout)
  if summary['status'] != 'ok':
    print(f"FAILED: {_count(pairs['failed'], 'pair')} failed, "
          f"{_count(summary['errors'], 'error')}:", file=sys.stderr)
    _print_messages(summary['failures'], summary['errors'], sys.stderr)
    return 1
  return 0


def _count(n, noun):
  return f"{n} {noun}{'s' * (n != 1)}"


def _print_messages(messages, total, stream):
  """The listed messages, one line each (a name's line break shows as \\n), and how many more
  the records hold."""
  for message in messages:
    print(f'  - {CONTROL_CHARS.sub(lambda m: repr(m.group())[1:-1], message)}', file=stream)
  if total > len(messages):
    print(f'  ... and {total - len(messages)} more in the errors-*.jsonl records', file=stream)


if __name__ == '__main__':
  flags.exit_with(main())
