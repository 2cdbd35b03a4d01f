"""--prune_removed_clips: the output folders of clips renamed or removed in the input go (their
frames and done markers only), so the output equals a fresh run's; off by default, and never
when the input lists no clip."""

import json
import os
import shutil

from conftest import make_clip, run_job, run_records
from transforms import prune


def _tree(folder):
  """{relative path: bytes} of every file under `folder` but the run records."""
  found = {}
  for parent, dirs, names in os.walk(folder):
    dirs[:] = [d for d in dirs if d not in ('_runs', '_tmp')]
    for name in names:
      path = os.path.join(parent, name)
      with open(path, 'rb') as f:
        found[os.path.relpath(path, folder)] = f.read()
  return found


def _summary(output, run_id):
  with open(os.path.join(output, '_runs', run_id, 'summary.json')) as f:
    return json.load(f)


def test_renamed_and_removed_clips_leave_nothing_behind(tmp_path, tiny_model, capsys,
                                                        monkeypatch):
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'reel' / 'kept', 3, seed=1)
  make_clip(archive / 'reel' / 'renamed', 3, seed=2)
  make_clip(archive / 'reel' / 'removed' / 'inner', 2, seed=3)
  make_clip(archive / 'reel' / 'removed', 2, seed=4)  # a clip with a clip below it
  assert run_job(archive, output, model_path)[0] == 0
  with open(os.path.join(output, 'reel', 'renamed', 'notes.txt'), 'w') as f:
    f.write('not the pipeline\'s')  # stays: only what the pipeline writes goes
  os.rename(archive / 'reel' / 'renamed', archive / 'reel' / 'new name')
  shutil.rmtree(archive / 'reel' / 'removed')

  status, plain = run_job(archive, output, model_path)  # off by default: the old output stays
  assert status == 0 and os.path.isdir(os.path.join(output, 'reel', 'removed', 'inner'))
  assert _summary(output, plain)['clips_pruned'] == 0

  os.makedirs(os.path.join(output, 'REEL', 'KEPT'))  # as 'reel/kept' on a case-insensitive disk
  with open(os.path.join(output, 'REEL', 'KEPT', 'frame_000000.png'), 'wb') as f:
    f.write(b'kept')
  monkeypatch.setattr(prune, '_folds_case', lambda output: True)  # (this disk does not)
  status, run_id = run_job(archive, output, model_path, '--prune_removed_clips')
  assert status == 0 and not run_records(output, run_id, 'errors')
  shutil.rmtree(os.path.join(output, 'REEL'))
  summary = _summary(output, run_id)
  assert summary['clips_pruned'] == 3 and summary['pairs']['skipped'] == 4
  assert summary['pruned'] == ['reel/removed', 'reel/removed/inner', 'reel/renamed']
  assert ('pruned 3 clips no longer in the input: reel/removed, reel/removed/inner, reel/renamed;'
          in capsys.readouterr().out)
  fresh = str(tmp_path / 'fresh')
  assert run_job(archive, fresh, model_path)[0] == 0
  got, want = _tree(output), _tree(fresh)
  assert got.pop(os.path.join('reel', 'renamed', 'notes.txt')) == b'not the pipeline\'s'
  assert sorted(got) == sorted(want) and all(got[k] == want[k] for k in got
                                             if not k.startswith('_markers'))
  assert not os.path.exists(os.path.join(output, 'reel', 'removed'))
  assert not os.path.exists(os.path.join(output, '_markers', 'reel', 'renamed'))


def test_nothing_is_pruned_when_the_input_lists_no_clip(tmp_path, tiny_model):
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'clip', 2, seed=5)
  assert run_job(archive, output, model_path)[0] == 0
  before = _tree(output)
  shutil.rmtree(archive)  # unmounted, say: that is no archive emptied
  status, run_id = run_job(archive, output, model_path, '--prune_removed_clips')
  assert status == 1 and 'does not exist' in run_records(output, run_id, 'errors')[0]['message']
  assert _tree(output) == before and _summary(output, run_id)['clips_pruned'] == 0


def test_links_and_folders_no_clip_can_have_are_left_alone(tmp_path, tiny_model):
  """A link in the output to a folder elsewhere, or to a kept clip ('latest' -> a), is nobody's
  clip folder: nothing through it is deleted (the kept clip's frames would go, its markers stay
  and vouch for them); nor in folders named as no clip's output can be."""
  model_path, _ = tiny_model
  archive, output, elsewhere = tmp_path / 'archive', tmp_path / 'out', tmp_path / 'elsewhere'
  make_clip(archive / 'a', 2, seed=6)
  assert run_job(archive, str(output), model_path)[0] == 0
  elsewhere.mkdir()
  (elsewhere / 'frame_000000.png').write_bytes(b'not the pipeline\'s')
  os.symlink(elsewhere, output / 'elsewhere_link')
  os.symlink(output / 'a', output / 'latest')
  # No clip's output folder is named so (a clip '_backup' or 'Contact sheets' writes to
  # 'clip_backup-HASH', 'Contact_sheets-HASH').
  for folder in ('.backup/a', 'Contact sheets', '_backup', '_backup/a'):
    os.makedirs(output / folder)
    (output / folder / 'frame_000000.png').write_bytes(b'a user\'s')
  before = _tree(str(output / 'a'))
  status, run_id = run_job(archive, str(output), model_path, '--prune_removed_clips')
  assert status == 0 and _summary(str(output), run_id)['clips_pruned'] == 0
  assert os.listdir(elsewhere) == ['frame_000000.png'] and _tree(str(output / 'a')) == before
  for folder in ('.backup/a', 'Contact sheets', '_backup/a'):
    assert os.listdir(output / folder) == ['frame_000000.png']


def test_nothing_is_pruned_while_a_part_of_the_input_cannot_be_listed(tmp_path, tiny_model):
  """A clip linked in from a disk that is not mounted tonight (a link whose target is missing),
  or a mount point that shows as an empty folder: its clips are not in the run, and an error
  record says why, but they are not gone, so their output stays."""
  model_path, _ = tiny_model
  archive, output, disk = tmp_path / 'archive', str(tmp_path / 'out'), tmp_path / 'disk'
  make_clip(archive / 'here', 2, seed=7)
  make_clip(disk / 'linked', 2, seed=8)
  os.symlink(disk / 'linked', archive / 'linked')
  make_clip(archive / 'nas' / 'reel', 2, seed=9)
  assert run_job(archive, output, model_path)[0] == 0
  before = _tree(output)
  os.rename(disk, tmp_path / 'unmounted')
  shutil.rmtree(archive / 'nas' / 'reel')  # 'nas' stays, empty
  status, run_id = run_job(archive, output, model_path, '--prune_removed_clips')
  errors = {e['uris'][0]: e for e in run_records(output, run_id, 'errors')}
  assert status == 1 and _summary(output, run_id)['clips_pruned'] == 0
  assert 'which is not there' in errors[str(archive / 'linked')]['message']
  assert errors[str(archive / 'nas')]['error_type'] == 'IncompleteListing'
  assert 'nothing pruned' in errors[output]['message']
  assert _tree(output) == before
  os.rmdir(archive / 'nas')  # the empty folder was a real one: pruning goes on without it
  os.remove(archive / 'linked')
  status, run_id = run_job(archive, output, model_path, '--prune_removed_clips')
  assert status == 0 and _summary(output, run_id)['pruned'] == ['linked', 'nas/reel']


def test_nothing_is_pruned_while_a_manifests_rows_cannot_be_read(tmp_path, tiny_model):
  """A manifest exported again without its quotes: clip B's rows had 5 cells, were reported
  malformed, and in the same run B's finished output was deleted as no longer in the input."""
  model_path, _ = tiny_model
  output = str(tmp_path / 'out')
  make_clip(tmp_path / 'a', 3, seed=1)
  make_clip(tmp_path / 'Reel 1, take 2', 3, seed=2)
  rows = [('A', f'a/frame00{i}.png', f'a/frame00{i + 1}.png') for i in range(2)]
  rows += [('B', f'Reel 1, take 2/frame00{i}.png', f'Reel 1, take 2/frame00{i + 1}.png')
           for i in range(2)]
  manifest = tmp_path / 'm.csv'
  manifest.write_text('clip,frame0,frame1\n' + ''.join(
      ','.join(f'"{cell}"' for cell in row) + '\n' for row in rows))
  assert run_job(str(manifest), output, model_path)[0] == 0
  before = _tree(output)
  manifest.write_text('clip,frame0,frame1\n' + ''.join(','.join(row) + '\n' for row in rows))
  status, run_id = run_job(str(manifest), output, model_path, '--prune_removed_clips')
  errors = run_records(output, run_id, 'errors')
  assert status == 1 and _summary(output, run_id)['clips_pruned'] == 0
  assert any('malformed manifest row' in e['message'] for e in errors)
  assert any('nothing pruned' in e['message'] for e in errors)
  assert _tree(output) == before


def test_a_kept_clips_folder_is_not_removed_with_a_pruned_clip_inside_it(tmp_path):
  """Pruning `x/old` leaves `x` empty; but `x` is a kept clip, new, whose first frame may be
  being written at that moment (the pair's write would fail)."""
  from transforms import prune  # pylint: disable=import-outside-toplevel
  for folder in ('x/old', '_markers/x/old', 'y/old'):
    os.makedirs(tmp_path / folder)
  prune._remove_empty_folders(str(tmp_path), 'x/old', {'x'})  # pylint: disable=protected-access
  prune._remove_empty_folders(str(tmp_path), 'y/old', {'x'})  # pylint: disable=protected-access
  assert sorted(os.listdir(tmp_path)) == ['_markers', 'x'] and not os.listdir(tmp_path / 'x')
  assert os.listdir(tmp_path / '_markers') == ['x'] and not os.listdir(tmp_path / '_markers/x')


def test_a_clip_renamed_in_case_alone_is_pruned_where_names_keep_their_case(tmp_path, tiny_model):
  """On GCS and Linux disks `Reel1` renamed `reel1` is a new folder beside the old one, whose
  frames stayed for good: names were compared regardless of case everywhere."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'Reel1', 2, seed=1)
  assert run_job(archive, output, model_path)[0] == 0
  os.rename(archive / 'Reel1', archive / 'reel1')
  assert not prune._folds_case(output)  # pylint: disable=protected-access
  status, run_id = run_job(archive, output, model_path, '--prune_removed_clips')
  assert status == 0 and _summary(output, run_id)['pruned'] == ['Reel1']
  assert sorted(os.listdir(output)) == ['_markers', '_runs', 'reel1']


def test_a_retried_delete_reports_what_the_listing_found(tmp_path):
  """Dataflow retries a bundle whose deletes were done but whose results were lost: the retry
  found nothing left to prune and the run's summary said fewer clips than went. The listing is
  committed (a Reshuffle) before the deletes, which a retry repeats against the same list."""
  output = str(tmp_path)
  for path in ('old/frame_000000.png', 'old/frame_000001.png', '_markers/old/p0.done',
               'kept/frame_000000.png'):
    os.makedirs(os.path.dirname(tmp_path / path), exist_ok=True)
    (tmp_path / path).write_bytes(b'x')
  listed = list(prune.ListRemovedClips('run').process(output, ['kept'], []))
  assert [r['clip'] for r in listed] == ['old'] and len(listed[0]['paths']) == 3
  delete = prune.DeleteRemovedClip('run')
  first = list(delete.process(listed[0], ['kept']))
  retried = list(delete.process(listed[0], ['kept']))
  assert first == retried == [{'clip': 'old', 'files_removed': 3}]
  assert sorted(os.listdir(tmp_path)) == ['_markers', '_tmp', 'kept']
  assert not os.listdir(tmp_path / '_markers')


def test_a_prune_deletes_the_markers_first_and_only_the_pipelines_files(tmp_path, monkeypatch):
  """Stopped half-way, a clip must read as not done (its markers gone before its frames); and
  what is no file the pipeline writes there (a note beside the markers) stays."""
  for path in ('old/frame_000000.png', 'old/frame_000001.png', '_markers/old/p0.done',
               '_markers/old/p1.done', '_markers/old/notes.txt', 'old/notes.txt'):
    os.makedirs(os.path.dirname(tmp_path / path), exist_ok=True)
    (tmp_path / path).write_bytes(b'x')
  (listed,) = prune.ListRemovedClips('run').process(str(tmp_path), ['kept'], [])
  assert len(listed['paths']) == 4
  deleted = []
  real_delete = prune.files.delete_files
  monkeypatch.setattr(prune.files, 'delete_files',
                      lambda paths: (deleted.extend(paths), real_delete(paths))[1])
  assert list(prune.DeleteRemovedClip('run').process(listed, ['kept'])) == [
      {'clip': 'old', 'files_removed': 4}]
  assert [p.endswith('.done') for p in deleted] == [True, True, False, False]
  assert os.listdir(tmp_path / '_markers' / 'old') == ['notes.txt']
  assert os.listdir(tmp_path / 'old') == ['notes.txt']


def test_names_that_are_not_utf8_in_the_output_are_left_alone(tmp_path, tiny_model):
  """A Latin-1 `café` someone left in the output (beside the frames, or under `_markers/`) is
  no name the pipeline writes: pruning failed on it with nothing pruned, every night again."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'kept', 2, seed=1)
  make_clip(archive / 'removed', 2, seed=2)
  assert run_job(archive, output, model_path)[0] == 0
  strays = [os.fsencode(output) + name for name in
            (b'/_markers/caf\xe9/pair_0.done', b'/_markers/removed/caf\xe9.done',
             b'/caf\xe9/frame_000000.png', b'/removed/frame_caf\xe9.png')]
  for stray in strays:
    os.makedirs(os.path.dirname(stray), exist_ok=True)
    with open(stray, 'wb') as f:
      f.write(b'a user\'s')
  shutil.rmtree(archive / 'removed')
  status, run_id = run_job(archive, output, model_path, '--prune_removed_clips')
  assert status == 0 and not run_records(output, run_id, 'errors')
  assert _summary(output, run_id)['pruned'] == ['removed']
  assert all(os.path.exists(stray) for stray in strays)
  assert os.listdir(os.path.join(output, 'removed')) == [os.fsdecode(b'frame_caf\xe9.png')]


def test_a_prune_that_cannot_delete_says_why_once_not_per_file(tmp_path, monkeypatch):
  """Beam's error of a batch was written whole into the record, one entry per file: a clip of
  thousands of frames made one message of thousands of paths."""
  from apache_beam.io.filesystem import BeamIOError  # pylint: disable=import-outside-toplevel
  for i in range(40):
    os.makedirs(tmp_path / 'old', exist_ok=True)
    (tmp_path / 'old' / f'frame_{i:06d}.png').write_bytes(b'x')
  (listed,) = prune.ListRemovedClips('run').process(str(tmp_path), ['kept'], [])

  def failing(paths):
    raise BeamIOError('Delete operation failed', {p: prune.files.BATCH_UNANSWERED for p in paths})
  monkeypatch.setattr(prune.files, 'delete_files', failing)
  (error,) = [e.value for e in prune.DeleteRemovedClip('run').process(listed, ['kept'])]
  assert error['message'] == (
      f"cannot prune {tmp_path / 'old'} (its clip is no longer in the input): Delete operation "
      f"failed: cloud storage failed a batch request until its client's retries ran out")
  assert len(os.listdir(tmp_path / 'old')) == 40
