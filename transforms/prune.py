"""`--prune_removed_clips`: the output folders of clips that are no longer in the input go.

A nightly run skips what is done and cleans each clip it sees (a shortened clip loses its tail),
but a clip folder renamed, moved or removed in the archive leaves its old output behind: frames
of a clip that no longer exists, beside the renamed one's. With this step the output holds
exactly the input's clips, as a fresh run's would. Only what the pipeline writes goes (frame
files `frame_N.png|dpx` in folders named as a clip's output can be, and done markers); anything
else in the output stays, and links in it are not followed. Opt-in, since an output shared by
several inputs (runs over parts of an archive, by glob or manifest) would lose the others'
clips; and nothing goes when the input listed no clip or a part of it could not be listed (a
disk not mounted tonight): a clip missing then may be only unreachable.
"""

import logging
import os
import posixpath
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import clips
from transforms import files
from transforms import records
from transforms.interpolate import FRAME_NAME

_log = logging.getLogger(__name__)


def output_clip_files(output):
  """{clip name: [paths]} of the frame files and done markers under `output` by the clip they
  belong to, in one listing of the output. Linked folders are not followed: what they hold is
  not the output's (a link to a folder elsewhere), or is listed already (a link to a clip)."""
  root = output.rstrip('/')
  by_clip = {}
  for m in files.list_tree(root, follow_links=False):
    if files.unaddressable(m.path):  # (a name the pipeline never writes: a user's file)
      continue
    relative = m.path[len(root):].replace(os.sep, '/').lstrip('/')
    folder, name = posixpath.split(relative)
    top = folder.split('/', 1)[0]
    if top == files.MARKERS_DIR and '/' in folder and name.endswith('.done'):
      by_clip.setdefault(folder.split('/', 1)[1], []).append(m.path)
    elif folder and clips.sanitise_clip_name(folder) == folder and FRAME_NAME.fullmatch(name):
      by_clip.setdefault(folder, []).append(m.path)  # (in a folder a clip's name can be)
  return by_clip


class ListRemovedClips(beam.DoFn):
  """output -> {'output', 'clip', 'paths'} of each clip folder of the output whose clip is not
  in the side input `clip_names` (this run's clips); nothing when the run found no clip, or
  when `listing_gaps` (discovery's error records of `clips.IncompleteListing`, and a manifest's
  malformed rows) says that a part of the input could not be listed or read: its clips may be
  only unreachable tonight. Listing apart from deleting, with a Reshuffle between (`Prune`), so
  that a retried delete reports what the listing found, not what a failed attempt left."""

  def __init__(self, run_id):
    self._run_id = run_id

  def process(self, output, clip_names, listing_gaps):
    if not clip_names or listing_gaps:
      why = (f'{len(listing_gaps)} part(s) of the input could not be listed or read, e.g. '
             f'{listing_gaps[0]["uris"][0]} (see its error record): their clips may be only '
             f'unreachable' if listing_gaps else 'the input has no clip')
      _log.warning('--prune_removed_clips: nothing pruned: %s', why)
      if listing_gaps:
        yield beam.pvalue.TaggedOutput('errors', records.error_record(
            self._run_id, [output], 'prune', clips.IncompleteListing(why),
            f'--prune_removed_clips: nothing pruned in {output}: {why}'))
      return
    try:
      # On a case-insensitive disk (macOS, Windows, SMB) `Reel1` renamed `reel1` writes into the
      # old folder: a folder named as a kept clip but for case is never pruned there. On GCS and
      # Linux disks it is another folder, the old clip's, pruned as any other.
      fold = str.casefold if _folds_case(output) else str
      by_clip = output_clip_files(output)
    except Exception as e:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput('errors', records.error_record(
          self._run_id, [output], 'prune', e,
          f'--prune_removed_clips: cannot list {output}, nothing pruned: {files.reason(e)}'))
      return
    kept = {fold(name) for name in clip_names}
    for clip, paths in sorted(by_clip.items()):
      if fold(clip) not in kept:
        yield {'output': output, 'clip': clip, 'paths': sorted(paths)}


class DeleteRemovedClip(beam.DoFn):
  """{'output', 'clip', 'paths'} -> {'clip', 'files_removed'}, its files deleted (markers first:
  a clip half deleted reads as not done), and its local folders left empty. A retry deletes what
  is still there and reports the listing's count again: files already gone are no error."""

  def __init__(self, run_id):
    self._run_id = run_id
    self._kept_of = self._kept = None

  def _kept_folders(self, clip_names):
    """The kept clips' folders and every folder above them, made once per side input (made
    for each pruned clip, pruning cost pruned clips x kept clips)."""
    if self._kept_of is not clip_names:
      self._kept_of, self._kept = clip_names, set(clip_names) | clips.folders_above(clip_names)
    return self._kept

  def process(self, removed, clip_names):
    output, clip, paths = removed['output'], removed['clip'], removed['paths']
    try:
      files.delete_files(sorted(paths, key=lambda p: not p.endswith('.done')))
    except Exception as e:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput('errors', records.error_record(
          self._run_id, [files.join(output, clip)], 'prune', e,
          f'cannot prune {files.join(output, clip)} (its clip is no longer in the input): '
          f'{files.reason(e)}'))
      return
    _remove_empty_folders(output, clip, self._kept_folders(clip_names))
    records.counter('clips_pruned').inc()
    _log.warning('pruned %s: %d files of a clip no longer in the input',
                 files.join(output, clip), len(paths))
    yield {'clip': clip, 'files_removed': len(paths)}


class Prune(beam.PTransform):
  """output folders -> {'clip', 'files_removed'} of the clips pruned, tagged 'errors' beside:
  `ListRemovedClips`, a Reshuffle that commits its listing, and `DeleteRemovedClip`."""

  def __init__(self, run_id, clip_names, listing_gaps):
    super().__init__()
    self._run_id, self._clip_names, self._listing_gaps = run_id, clip_names, listing_gaps

  def expand(self, outputs):
    names = beam.pvalue.AsList(self._clip_names)
    listed = outputs | 'ListRemovedClips' >> beam.ParDo(
        ListRemovedClips(self._run_id), names,
        beam.pvalue.AsList(self._listing_gaps)).with_outputs('errors', main='clips')
    deleted = (
        listed.clips
        | 'CommitListing' >> beam.Reshuffle()
        | 'DeleteRemovedClips' >> beam.ParDo(DeleteRemovedClip(self._run_id), names)
        .with_outputs('errors', main='clips'))
    errors = (listed.errors, deleted.errors) | 'PruneErrors' >> beam.Flatten()
    return {'clips': deleted.clips, 'errors': errors}


# The file `_folds_case` makes and removes in `<output>/_tmp/` (a killed run's is swept later).
CASE_PROBE_PREFIX = 'case-'


def _folds_case(output):
  """Whether the output's filesystem takes names alike but for case for one name: a file made
  in its `_tmp` folder is looked for in capitals. Object stores never do."""
  if FileSystems.get_scheme(output) is not None:
    return False
  folder = os.path.join(output, files.TMP_DIR)
  os.makedirs(folder, exist_ok=True)
  name = f'{CASE_PROBE_PREFIX}{uuid.uuid4().hex}'
  with open(os.path.join(folder, name), 'w'):
    pass
  try:
    return os.path.exists(os.path.join(folder, name.upper()))
  finally:
    os.remove(os.path.join(folder, name))


def _remove_empty_folders(output, clip, kept_folders):
  """On local disk, the clip's folders left empty (object stores have none), up to a kept
  clip's (`kept_folders`: the kept clips and the folders above them): one that is new may be
  about to write its first frame there."""
  if FileSystems.get_scheme(output) is not None:
    return
  for base in (output, os.path.join(output, files.MARKERS_DIR)):
    parts = clip.split('/')
    while parts and '/'.join(parts) not in kept_folders:
      try:
        os.rmdir(os.path.join(base, *parts))
      except OSError:
        break  # not empty (another clip's folder, or files that are not ours), or not there
      parts.pop()
