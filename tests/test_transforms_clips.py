"""Clip discovery and unit planning without a model: natural order, any-case extensions, globs,
units that share boundary frames, safe clip names."""

import fractions
import glob
import itertools
import os
import re

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from pipeline.launch import LocalRunner
from transforms import clips

F = fractions.Fraction


def _discover(input_spec, **kwargs):
  dofn = clips.DiscoverClips('run', **kwargs)
  found, errors = [], []
  for item in dofn.process(input_spec):
    (errors.append(item.value) if isinstance(item, beam.pvalue.TaggedOutput) else
     found.append(item))
  return found, errors


def test_natural_order_any_case_extensions_nested_clips(tmp_path):
  clip = tmp_path / 'in' / 'reel 1' / 'shot'
  clip.mkdir(parents=True)
  for name in ('f10.PNG', 'f2.jpg', 'f1.TIFF', 'F3.Jpeg', 'f4.tif', '.DS_Store'):
    (clip / name).write_bytes(b'x')
  found, errors = _discover(str(tmp_path / 'in'))
  assert errors == []
  (only,) = found
  assert only.name.startswith('reel_1-') is False and only.name.startswith('reel_1/shot-')
  assert [u.rsplit('/', 1)[1] for u, _ in only.frames] == [
      'f1.TIFF', 'f2.jpg', 'F3.Jpeg', 'f4.tif', 'f10.PNG']
  assert only.paired == (True,) * 4


def test_glob_selects_clip_folders(tmp_path):
  for name in ('a1', 'a2', 'b1'):
    (tmp_path / name).mkdir()
    for i in range(2):
      (tmp_path / name / f'{i}.png').write_bytes(b'x')
  found, _ = _discover(str(tmp_path / 'a*'))
  assert sorted(c.name for c in found) == ['a1', 'a2']


def test_units_share_boundary_frames():
  frames = tuple((f'f{i}', '') for i in range(6))
  units = list(clips.split_into_units(clips.Clip('c', frames, (True,) * 5), 2, 2))
  assert [(u.frames[0][0], u.num_pairs, u.first_index, u.owns_first) for u in units] == [
      ('f0', 2, 0, True), ('f2', 2, 8, False), ('f4', 1, 16, False)]
  gap = clips.Clip('m', frames[:4], (True, False, True))
  assert [(u.first_index, u.num_pairs) for u in clips.split_into_units(gap, 1, 16)] == [
      (0, 1), (3, 1)]
  lone = clips.Clip('s', frames[:1], ())
  assert [(u.num_pairs, u.owns_first) for u in clips.split_into_units(lone, 1, 16)] == [
      (0, True)]


def test_discovery_runs_inside_a_pipeline(tmp_path):
  for i in range(3):
    (tmp_path / 'clip').mkdir(exist_ok=True)
    (tmp_path / 'clip' / f'{i}.png').write_bytes(b'x')
  with test_pipeline.TestPipeline(runner=LocalRunner()) as p:
    found = (p | beam.Create([str(tmp_path)])
             | beam.ParDo(clips.DiscoverClips('run')).with_outputs('errors', main='clips'))
    names = found.clips | beam.Map(lambda c: (c.name, len(c.frames)))
    assert_that(names, equal_to([('clip', 3)]))


def test_output_inside_input_is_not_rediscovered(tmp_path):
  for folder in ('clip', 'out/clip'):
    (tmp_path / folder).mkdir(parents=True)
    for i in range(2):
      (tmp_path / folder / f'{i}.png').write_bytes(b'x')
  # Folders the running job is creating in --output (still empty) are not empty clips either.
  (tmp_path / 'out' / 'being_written').mkdir()
  (tmp_path / 'out' / '_markers' / 'clip').mkdir(parents=True)
  found = list(clips.DiscoverClips('run', str(tmp_path / 'out')).process(str(tmp_path)))
  assert [c.name for c in found if isinstance(c, clips.Clip)] == ['clip']
  assert [e for e in found if not isinstance(e, clips.Clip)] == []
  # Named through a symbolic link, either of them, the output is still inside the input.
  os.symlink(tmp_path, tmp_path.parent / f'{tmp_path.name}-link')
  link = str(tmp_path.parent / f'{tmp_path.name}-link')
  for input_path, output in ((str(tmp_path), f'{link}/out'), (link, str(tmp_path / 'out'))):
    found = list(clips.DiscoverClips('run', output).process(input_path))
    assert [c.name for c in found if isinstance(c, clips.Clip)] == ['clip'], (input_path, output)
    assert [e for e in found if not isinstance(e, clips.Clip)] == []


def _write_clip(folder, values, size=(40, 30)):
  os.makedirs(folder, exist_ok=True)
  for i, value in enumerate(values):
    frame = np.full((size[1], size[0], 3), value, np.uint8)
    Image.fromarray(frame).save(os.path.join(folder, f'frame_{i + 1}.png'))


def test_clip_triplets_lists_each_clip_in_natural_order(tmp_path):
  _write_clip(str(tmp_path / 'a'), [i * 20 for i in range(11)])
  _write_clip(str(tmp_path / 'b'), [0, 100, 200])
  _write_clip(str(tmp_path / 'c'), [0, 100])  # too short for a triplet
  (tmp_path / 'b' / 'notes.txt').write_text('not a frame')
  triplets = clips.clip_triplets(str(tmp_path))
  assert [(os.path.basename(t.clip), t.index) for t in triplets] == (
      [('a', i) for i in range(9)] + [('b', 0)])
  last = triplets[8]
  assert [os.path.basename(p) for p in (last.frame0, last.truth, last.frame1)] == [
      'frame_9.png', 'frame_10.png', 'frame_11.png']
  assert len(clips.clip_triplets(str(tmp_path), stride=4)) == 3 + 1


def _touch(folder, *names):
  folder.mkdir(parents=True, exist_ok=True)
  for name in names:
    (folder / name).write_bytes(b'x')


def test_clip_frames_finds_the_clips_that_discovery_finds(tmp_path):
  """Leave-one-out evaluation and training on --clips read an archive as the pipeline does:
  clips at any depth, hidden and reserved folders passed over."""
  for folder in ('tree/nested/deep', 'shot', '.trash', '_runs/r1', '_markers', 'shot/_tmp',
                 'shot/.cache'):
    _touch(tmp_path / folder, 'f0.png', 'f1.png', 'f2.png')
  _touch(tmp_path, 'f0.png', '._f1.png')
  found = clips.clip_frames(str(tmp_path))
  assert list(found) == [str(tmp_path / f) for f in ('', 'shot', 'tree/nested/deep')]
  assert found[str(tmp_path)] == [str(tmp_path / 'f0.png')]
  discovered, _ = _discover(str(tmp_path))
  assert set(found) == {c.frames[0][0].rsplit('/', 1)[0] for c in discovered}
  assert [t.clip for t in clips.clip_triplets(str(tmp_path))] == [
      str(tmp_path / f) for f in ('shot', 'tree/nested/deep')]
  # An evaluation's --output inside its input is not read back as footage.
  assert list(clips.clip_frames(str(tmp_path), str(tmp_path / 'tree'))) == [
      str(tmp_path / f) for f in ('', 'shot')]


def test_clip_frames_takes_a_glob_as_discovery_does(tmp_path):
  """pipeline.run takes a glob of clips; leave-one-out evaluation and training on --clips
  listed the glob as a folder ('no such folder') until they shared its listing."""
  for folder in ('reel_1/a', 'reel_2', 'other/b', 'reel_3.txt.d'):
    _touch(tmp_path / folder, 'f0.png', 'f1.png', 'f2.png')
  spec = str(tmp_path / 'reel_[12]*')
  found = clips.clip_frames(spec)
  assert list(found) == [str(tmp_path / f) for f in ('reel_1/a', 'reel_2')]
  discovered, errors = _discover(spec)
  assert errors == [] and set(found) == {c.frames[0][0].rsplit('/', 1)[0] for c in discovered}
  folders = set()
  clips.clip_frames(spec, folders=folders)
  names = clips.folder_clip_names(clips.input_root(spec), folders, list(found))
  assert names == {c.frames[0][0].rsplit('/', 1)[0]: c.name for c in discovered}
  assert sorted(names.values()) == ['reel_1/a', 'reel_2']


def test_what_operating_systems_leave_beside_frames_is_passed_over(tmp_path):
  """An archive unzipped from macOS holds __MACOSX/ (with only `._*` files); one browsed on
  Windows, Thumbs.db and desktop.ini: each made an error record, so a clean run exited 1."""
  _touch(tmp_path / 'reel1', 'f0.png', 'f1.png', 'Thumbs.db', 'desktop.ini', 'ehthumbs.db')
  _touch(tmp_path / '__MACOSX' / 'reel1', '._f0.png', '._f1.png')
  _touch(tmp_path / '$RECYCLE.BIN' / 'S-1-5-21', 'f0.png', 'f1.png')
  _touch(tmp_path / 'only thumbs', 'THUMBS.DB')
  found, errors = _discover(str(tmp_path))
  assert [c.name for c in found] == ['reel1']
  assert [len(c.frames) for c in found] == [2]
  # A folder holding nothing but such files is as empty as one holding nothing.
  assert [(e['stage'], e['message']) for e in errors] == [
      ('discover', f'empty clip folder: {tmp_path / "only thumbs"} has no frames')]
  assert list(clips.clip_frames(str(tmp_path))) == [str(tmp_path / 'reel1')]


def test_an_earlier_delivery_kept_in_the_input_is_not_read_as_footage(tmp_path):
  """A folder holding `_runs/` or `_markers/` is this pipeline's output: an archive with its
  delivery inside had the delivery interpolated again, and each run added the last one's."""
  _touch(tmp_path / 'reel1', 'f0.png', 'f1.png')
  _touch(tmp_path / 'reel1' / '_runs')  # empty: no run wrote there
  _touch(tmp_path / 'delivery' / 'reel1', 'frame_000000.png', 'frame_000001.png')
  _touch(tmp_path / 'delivery' / '_runs' / 'r1', 'summary.json')
  _touch(tmp_path / 'old' / 'nested' / 'reel1', 'frame_000000.png', 'frame_000001.png')
  _touch(tmp_path / 'old' / 'nested' / 'empty_clip_of_its_own')
  _touch(tmp_path / 'old' / 'nested' / '_markers' / 'reel1', 'pair_000000.done')
  # Folders of those names that hold no run's files are a project's own (sync-leader frames).
  _touch(tmp_path / 'film' / 'reel2', 'f0.png', 'f1.png')
  _touch(tmp_path / 'film' / '_markers', 'sync_leader.png')
  _touch(tmp_path / 'film' / '_runs' / 'notes', 'readme.txt')
  _touch(tmp_path / 'film' / '_markers' / 'takes', 'take1.png')
  found, errors = _discover(str(tmp_path))
  assert errors == [] and [c.name for c in found] == ['film/reel2', 'reel1']
  assert list(clips.clip_frames(str(tmp_path))) == [str(tmp_path / 'film' / 'reel2'),
                                                    str(tmp_path / 'reel1')]
  # Named as the input, an output is read: interpolating a delivery again is a choice.
  found, errors = _discover(str(tmp_path / 'delivery'))
  assert errors == [] and [c.name for c in found] == ['reel1']


def test_an_evaluations_comparison_pngs_in_the_input_are_not_footage(tmp_path):
  """pipeline.evaluate's comparisons/ (beside its report, or its started mark where it was
  killed) were interpolated by the pipeline and learnt from by training's --clips; a folder of
  that name without them is a clip."""
  _touch(tmp_path / 'reel1', 'f0.png', 'f1.png', 'f2.png')
  _touch(tmp_path / 'reel1' / 'eval', 'results.json', 'results.csv')
  _touch(tmp_path / 'reel1' / 'eval' / 'comparisons', 'reel1_000000.png', 'reel1_000001.png')
  _touch(tmp_path / 'killed', '.film-evaluation')
  _touch(tmp_path / 'killed' / 'comparisons', 'reel1_000000.png', 'reel1_000001.png')
  _touch(tmp_path / 'shots' / 'comparisons', 'f0.png', 'f1.png')
  found, errors = _discover(str(tmp_path))
  assert errors == [] and sorted(c.name for c in found) == ['reel1', 'shots/comparisons']
  assert sorted(clips.clip_frames(str(tmp_path))) == [str(tmp_path / 'reel1'),
                                                      str(tmp_path / 'shots' / 'comparisons')]


def test_a_clip_folder_that_can_be_listed_but_not_entered_is_a_gap_in_the_listing(
    tmp_path, monkeypatch):
  """`chmod -R 644 reel2/`: its names list, but none can be looked at. The clip was left out
  unsaid (exit status 0) and --prune_removed_clips, seeing no gap, deleted its output. (The
  refusal is made here as the kernel makes it for a user without search permission: root,
  which runs these tests, has them all.)"""
  _touch(tmp_path / 'reel1', 'f0.png', 'f1.png')
  _touch(tmp_path / 'reel2', 'f0.png', 'f1.png')
  locked, real_stat = str(tmp_path / 'reel2'), os.stat

  def stat(path, *args, **kwargs):
    if os.path.dirname(os.fspath(path)) == locked:
      raise PermissionError(13, 'Permission denied', path)
    return real_stat(path, *args, **kwargs)
  monkeypatch.setattr(os, 'stat', stat)
  found, errors = _discover(str(tmp_path))
  assert [c.name for c in found] == ['reel1']
  assert [(e['error_type'], e['uris']) for e in errors] == [('IncompleteListing', [locked])]
  assert errors[0]['message'].startswith(
      f'cannot list {locked}: 2 of its 2 files cannot be looked at (Permission denied), e.g. f')


def test_an_input_folder_that_cannot_be_read_is_said_so_not_called_empty(tmp_path,
                                                                        unreadable_folders):
  """An archive folder of another user's (mode 0700, or 0711) read as 'input folder is empty'."""
  _touch(tmp_path / 'reel1', 'f0.png', 'f1.png')
  unreadable_folders.append(str(tmp_path))
  found, errors = _discover(str(tmp_path))
  assert found == [] and [(e['error_type'], e['message']) for e in errors] == [(
      'IncompleteListing', f'cannot list {tmp_path}: Permission denied; what is there is not in '
                           f'this run')]
  problems = []
  assert clips.clip_frames(str(tmp_path), problems=problems) == {}
  assert problems == [(str(tmp_path), 'Permission denied')]


def test_what_disks_and_nas_leave_is_no_clip_nor_a_gap(tmp_path, unreadable_folders):
  """A Linux disk's lost+found at its root is its owner's only: a listing gap every night (and
  --prune_removed_clips off for good); a Synology NAS's @eaDir beside every folder holds JPEG
  thumbnails, which were a clip."""
  _touch(tmp_path / 'reel1', 'f0.png', 'f1.png')
  _touch(tmp_path / 'reel1' / '@eaDir' / 'f0.png', 'SYNOFILE_THUMB_M.jpg', 'SYNOFILE_THUMB_S.jpg')
  _touch(tmp_path / '#recycle' / 'old', 'f0.png', 'f1.png')
  _touch(tmp_path / 'lost+found')
  unreadable_folders.append(str(tmp_path / 'lost+found'))
  found, errors = _discover(str(tmp_path))
  assert errors == [] and [c.name for c in found] == ['reel1']


def test_a_folder_of_other_files_is_no_gap_in_the_listing(tmp_path):
  """`docs/notes.txt` beside the clips was an 'empty clip folder', a listing gap that turned
  --prune_removed_clips off for good; notes beside clip folders are nothing at all, and a folder
  of them alone is a notice (an error failed the nightly run every night)."""
  _touch(tmp_path / 'reel1', 'f0.png', 'f1.png')
  _touch(tmp_path / 'docs', 'notes.txt', 'shots.csv')
  _touch(tmp_path / 'reel2' / 'shot', 'f0.png', 'f1.png')
  _touch(tmp_path / 'reel2', 'notes.txt')
  found, errors = _discover(str(tmp_path))
  assert [c.name for c in found] == ['reel1', 'reel2/shot']
  assert [(e['error_type'], e['message'], e['severity']) for e in errors] == [
      ('ValueError', f'no frames in {tmp_path / "docs"}: its 2 file(s) are no images '
                     f'(notes.txt, shots.csv)', 'notice')]


def test_glob_takes_clips_nested_in_matching_folders_and_works_without_a_folder(
    tmp_path, monkeypatch):
  _touch(tmp_path / 'shoot1' / 'cam1', 'f0.png', 'f1.png')
  _touch(tmp_path / 'shoot1' / 'cam2', 'f0.png', 'f1.png')
  _touch(tmp_path / 'other' / 'cam1', 'f0.png', 'f1.png')
  found, errors = _discover(str(tmp_path / 'shoot*'))
  assert errors == [] and sorted(c.name for c in found) == ['shoot1/cam1', 'shoot1/cam2']
  monkeypatch.chdir(tmp_path)  # A pattern with no folder part is relative to here.
  found, errors = _discover('shoot*')
  assert errors == [] and sorted(c.name for c in found) == ['shoot1/cam1', 'shoot1/cam2']


def test_a_folder_named_like_a_glob_is_that_folder(tmp_path):
  _touch(tmp_path / 'Take [2]' / 'cam1', 'f0.png', 'f1.png')
  _touch(tmp_path / 'Take 2' / 'cam1', 'f0.png', 'f1.png')
  found, errors = _discover(str(tmp_path / 'Take [2]'))
  assert errors == [] and [c.name for c in found] == ['cam1']
  assert all('/Take [2]/' in uri for uri, _ in found[0].frames)
  # Escaped as glob.escape does, in a glob below it or alone: named from that folder too (a glob
  # below it was listed from the folder above, its clip named 'Take__2_/cam1-<hash>').
  escaped = glob.escape(str(tmp_path / 'Take [2]'))
  for spec in (escaped + '/*', escaped + '/cam?', escaped):
    found, errors = _discover(spec)
    assert errors == [] and [c.name for c in found] == ['cam1'], spec
    assert all('/Take [2]/cam1/' in uri for uri, _ in found[0].frames), spec


def test_a_clip_folder_linked_in_from_elsewhere_is_a_clip(tmp_path):
  """A symbolic link to a folder of frames (scans on another disk) is a clip under its own
  name, as a folder is; a link back up to an enclosing folder is walked once, never in a loop."""
  _touch(tmp_path / 'in' / 'reel_01', 'f0.png', 'f1.png')
  _touch(tmp_path / 'nas' / 'reel_02', 'f0.png', 'f1.png', 'f2.png')
  os.symlink(tmp_path / 'nas' / 'reel_02', tmp_path / 'in' / 'reel_02')
  os.symlink(tmp_path / 'in', tmp_path / 'in' / 'reel_01' / 'loop')
  found, errors = _discover(str(tmp_path / 'in'))
  assert errors == [] and [c.name for c in found] == ['reel_01', 'reel_02']
  assert [u for u, _ in found[1].frames] == [
      str(tmp_path / 'in' / 'reel_02' / f'f{i}.png') for i in range(3)]
  assert list(clips.clip_frames(str(tmp_path / 'in'))) == [
      str(tmp_path / 'in' / 'reel_01'), str(tmp_path / 'in' / 'reel_02')]
  # A link beside the folder it leads to, whichever the listing gives first, or inside a sibling
  # (a "latest" link), was walked too: the same footage twice, under two names.
  for name in ('a_latest', 'reel_01_alias', 'z_latest'):
    os.symlink(tmp_path / 'in' / 'reel_01', tmp_path / 'in' / name)
  (tmp_path / 'in' / 'links').mkdir()
  os.symlink(tmp_path / 'in' / 'reel_01', tmp_path / 'in' / 'links' / 'current')
  found, errors = _discover(str(tmp_path / 'in'))
  assert errors == [] and [c.name for c in found] == ['reel_01', 'reel_02']


def test_a_link_reached_before_the_folder_it_leads_to_is_passed_over(tmp_path):
  """A link higher up than the real folder, or in a folder sorting before its parent, took the
  clip's name, and the real parent was reported an empty clip folder (exit 1 every night)."""
  _touch(tmp_path / 'in' / 'reels' / 'r1', 'f0.png', 'f1.png')
  _touch(tmp_path / 'in' / 'reels' / 'r2', 'f0.png', 'f1.png')
  os.symlink(tmp_path / 'in' / 'reels' / 'r1', tmp_path / 'in' / 'aaa')
  (tmp_path / 'in' / 'favourites').mkdir()
  os.symlink(tmp_path / 'in' / 'reels' / 'r2', tmp_path / 'in' / 'favourites' / 'r2')
  os.symlink(tmp_path / 'in' / 'reels', tmp_path / 'in' / 'favourites' / 'all')
  found, errors = _discover(str(tmp_path / 'in'))
  assert errors == [] and [c.name for c in found] == ['reels/r1', 'reels/r2']
  # The same across the inputs one pattern matches, and for folders only linked in, each once.
  _touch(tmp_path / 'nas' / 'r3', 'f0.png', 'f1.png')
  (tmp_path / 'in2').mkdir()
  for name in ('a', 'b'):
    os.symlink(tmp_path / 'nas' / 'r3', tmp_path / 'in2' / name)
  os.symlink(tmp_path / 'in' / 'reels' / 'r2', tmp_path / 'in2' / 'r2')
  found, errors = _discover(str(tmp_path / 'in*'))
  assert errors == [] and [c.name for c in found] == ['in/reels/r1', 'in/reels/r2', 'in2/a']


def test_a_glob_keeps_a_linked_clip_whatever_links_it_leaves_out(tmp_path):
  """A link the glob does not match (`current`), sorting before the matched link to the same
  folder (`reel_1`), took that folder: reel_1 left the run without a word, and
  --prune_removed_clips deleted its output."""
  _touch(tmp_path / 'real' / 'x', 'f0.png', 'f1.png')
  _touch(tmp_path / 'archive' / 'reel_2', 'f0.png', 'f1.png')
  os.symlink(tmp_path / 'real' / 'x', tmp_path / 'archive' / 'reel_1')
  os.symlink(tmp_path / 'real' / 'x', tmp_path / 'archive' / 'current')
  found, errors = _discover(str(tmp_path / 'archive' / 'reel_*'))
  assert errors == [] and [c.name for c in found] == ['reel_1', 'reel_2']


def test_a_glob_reports_no_problem_outside_what_it_selects(tmp_path):
  """A dead link in a folder the glob does not match failed every run (exit 1) and stopped
  --prune_removed_clips for good; one in a matched folder still is reported."""
  _touch(tmp_path / 'archive' / 'reel_a', 'f0.png', 'f1.png')
  (tmp_path / 'archive' / 'unrelated').mkdir()
  os.symlink(tmp_path / 'gone.png', tmp_path / 'archive' / 'unrelated' / 'f2.png')
  found, errors = _discover(str(tmp_path / 'archive' / 'reel_*'))
  assert errors == [] and [c.name for c in found] == ['reel_a']
  os.symlink(tmp_path / 'gone.png', tmp_path / 'archive' / 'reel_a' / 'f2.png')
  found, errors = _discover(str(tmp_path / 'archive' / 'reel_*'))
  assert [e['message'].split(':')[0] for e in errors] == [
      f'cannot list {tmp_path / "archive" / "reel_a" / "f2.png"}']


def test_frames_in_the_input_folder_never_share_a_subfolders_output(tmp_path):
  _touch(tmp_path / 'shot', 'f0.png', 'f1.png')
  _touch(tmp_path / 'shot' / 'shot', 'f0.png', 'f1.png')
  found, errors = _discover(str(tmp_path / 'shot'))
  names = sorted(c.name for c in found)
  assert errors == [] and len(set(names)) == 2 and 'shot' in names
  (root_clip,) = [c for c in found if c.name != 'shot']
  assert root_clip.name.startswith('shot-')
  assert all(uri.rsplit('/', 2)[-2] == 'shot' and '/shot/shot/' not in uri
             for uri, _ in root_clip.frames)


def test_frames_in_the_input_folder_are_named_for_it_however_it_is_spelled(tmp_path,
                                                                         monkeypatch):
  """`--input .` from inside a reel named its clip for '.': 'clip-<hash of ".">', the same for
  every reel run that way into one output, each overwriting the last."""
  _touch(tmp_path / 'reelA', 'f0.png', 'f1.png')
  _touch(tmp_path / 'reelB', 'f0.png', 'f1.png')
  for folder, spelling in (('reelA', '.'), ('reelB', '.'), ('reelB', './'),
                           ('reelA', '../reelA')):
    monkeypatch.chdir(tmp_path / folder)
    found, errors = _discover(spelling)
    assert errors == [] and [c.name for c in found] == [folder], spelling


def test_manifest_rows_that_would_put_a_clip_out_of_order_are_refused(tmp_path):
  """Rows f2-f3, f0-f1, f1-f2 made the clip f2, f3, f0, f1, f2: backwards, f2 twice, exit 0."""
  _touch(tmp_path / 'src', *(f'f{i}.png' for i in range(4)))
  manifest = tmp_path / 'm.csv'
  manifest.write_text('clip,frame0,frame1\nA,src/f2.png,src/f3.png\nA,src/f0.png,src/f1.png\n'
                      'A,src/f1.png,src/f2.png\n')
  found, errors = _discover(str(manifest))
  assert [[u.rsplit('/', 1)[1] for u, _ in c.frames] for c in found] == [
      ['f2.png', 'f3.png', 'f0.png', 'f1.png']]
  (error,) = errors
  assert error['message'].startswith(f'{manifest} line 4: malformed manifest row: pair (')
  assert 'end at a new frame' in error['message']


def test_manifest_rows_are_read_as_written(tmp_path):
  """A JSON clip 0 is a name like 1 (it was refused as empty); a CSV header with a typo is no
  clip named 'clip' whose frames 'frame_0' are missing, but a malformed manifest."""
  _touch(tmp_path / 'src', 'f0.png', 'f1.png')
  jsonl = tmp_path / 'm.jsonl'
  jsonl.write_text('{"clip": 0, "frame0": "src/f0.png", "frame1": "src/f1.png"}\n')
  found, errors = _discover(str(jsonl))
  assert errors == [] and [c.name for c in found] == ['0']
  typo = tmp_path / 'typo.csv'
  typo.write_text('clip,frame_0,frame_1\nA,src/f0.png,src/f1.png\n')
  found, errors = _discover(str(typo))
  assert found == [] and [e['message'] for e in errors] == [
      f'{typo} line 1: malformed manifest row: its header (clip,frame_0,frame_1) lacks frame0, '
      f'frame1: a manifest\'s columns are clip, frame0, frame1']
  bare = tmp_path / 'bare.csv'  # no header at all: rows of frames
  bare.write_text('A,src/f0.png,src/f1.png\n')
  found, errors = _discover(str(bare))
  assert errors == [] and [c.name for c in found] == ['A']
  # Cells after ', ' as people type them are those paths (pipeline.evaluate read ' src/f0.png').
  spaced = tmp_path / 'spaced.csv'
  spaced.write_text('clip, frame0, frame1\nA, src/f0.png, src/f1.png\n')
  found, errors = _discover(str(spaced))
  assert errors == [] and [[u for u, _ in c.frames] for c in found] == [
      [str(tmp_path / 'src' / 'f0.png'), str(tmp_path / 'src' / 'f1.png')]]
  # A path with an unquoted comma shifts the cells: no frame read from the wrong one. Empty
  # cells past the header (a spreadsheet's trailing commas) are nothing.
  _touch(tmp_path / 'src', 'f2.png')
  shifted = tmp_path / 'shifted.csv'
  shifted.write_text('clip,frame0,frame1\nA,src/f0.png,src/f1.png,,\n'
                     'A,src/f1,x.png,src/f2.png\n')
  found, errors = _discover(str(shifted))
  assert [e['message'] for e in errors] == [
      f'{shifted} line 3: malformed manifest row: has 4 fields, its header 3: a comma in a '
      f'path? Quote the path: A,src/f1,x.png,src/f2.png']
  assert [[u.rsplit('/', 1)[1] for u, _ in c.frames] for c in found] == [['f0.png', 'f1.png']]
  bare.write_text('A,src/f0.png,src/f1.png\nA,src/f1.png,src/f2.png,src/f3.png\n')
  found, errors = _discover(str(bare))
  assert [e['message'].split(': ', 3)[2] for e in errors] == ['has 4 fields, rows 3']


def test_a_file_name_with_non_ascii_digits_does_not_stop_discovery(tmp_path):
  _touch(tmp_path / 'in' / 'clip', '²1.png', 'f2.png', 'f10.png')
  found, errors = _discover(str(tmp_path / 'in'))
  assert errors == []
  assert [u.rsplit('/', 1)[1] for u, _ in found[0].frames] == ['f2.png', 'f10.png', '²1.png']


def test_manifest_frames_carry_their_size_and_time_so_a_replaced_frame_is_redone(tmp_path):
  _touch(tmp_path / 'frames', 'a.png', 'b.png', 'c [1].png')
  manifest = tmp_path / 'm.csv'
  manifest.write_text('clip,frame0,frame1\nx,frames/a.png,frames/b.png\n'
                      'x,frames/b.png,frames/c [1].png\nx,frames/c [1].png,frames/gone.png\n')
  (clip,), errors = _discover(str(manifest))
  versions = dict(clip.frames)
  assert errors == [] and versions[str(tmp_path / 'frames' / 'gone.png')] == ''
  for name in ('a.png', 'b.png', 'c [1].png'):
    stat = os.stat(tmp_path / 'frames' / name)
    assert versions[str(tmp_path / 'frames' / name)] == f'{stat.st_size}:{stat.st_mtime}'
  (tmp_path / 'frames' / 'b.png').write_bytes(b'longer')
  (again,), _ = _discover(str(manifest))
  changed = {u for (u, v), (_, w) in zip(clip.frames, again.frames) if v != w}
  assert changed == {str(tmp_path / 'frames' / 'b.png')}


def test_clips_whose_names_differ_only_in_spelling_never_share_an_output_folder(tmp_path):
  """A manifest's 'a/b', 'a//b', './a/b', 'a/b/' and 'a\\b' are five clips (and a folder may be
  named 'a\\b'): each gets a folder of its own; a plain name stays as it is."""
  _touch(tmp_path / 'frames', 'f0.png', 'f1.png')
  spellings = ['reel/a', 'reel//a', './reel/a', 'reel/a/', 'reel\\a']
  manifest = tmp_path / 'm.csv'
  manifest.write_text('clip,frame0,frame1\n' + ''.join(
      f'{name},frames/f0.png,frames/f1.png\n' for name in spellings))
  found, errors = _discover(str(manifest))
  assert errors == [] and len(found) == 5
  names = [clip.name for clip in found]
  assert len(set(names)) == 5 and names[0] == 'reel/a'
  assert all(name.startswith('reel/a-') for name in names[1:])


def test_a_folder_named_as_another_clips_output_gets_a_folder_of_its_own(tmp_path):
  """`a*b` goes to `a_b-<hash>`; a folder already named so (an output copied back) would share
  it, overwrite its frames and vouch for them with its markers: the twin takes a hash too, the
  changed name keeps its folder. Likewise for manifest clip names."""
  twin = clips.sanitise_clip_name('a*b')
  _touch(tmp_path / 'in' / 'a*b', 'f0.png', 'f1.png')
  _touch(tmp_path / 'in' / twin, 'f0.png', 'f1.png')
  _touch(tmp_path / 'in' / 'plain', 'f0.png', 'f1.png')
  found, errors = _discover(str(tmp_path / 'in'))
  by_folder = {c.frames[0][0].rsplit('/', 2)[-2]: c.name for c in found}
  assert errors == [] and by_folder['a*b'] == twin and by_folder['plain'] == 'plain'
  assert by_folder[twin].startswith(twin + '-') and len(set(by_folder.values())) == 3
  manifest = tmp_path / 'm.csv'
  manifest.write_text(''.join(f'{name},in/plain/f0.png,in/plain/f1.png\n'
                              for name in ('a*b', twin)))
  found, errors = _discover(str(manifest))
  assert errors == [] and [c.name for c in found] == [twin, by_folder[twin]]


def test_a_clip_folder_named_as_its_parent_clips_output_frame_gets_a_folder_of_its_own(
    tmp_path):
  """`reel/frame_000002.png/` (a folder of frames) inside the clip `reel`: its output folder and
  reel's output frame were one path, and one of the two failed on every run."""
  _touch(tmp_path / 'reel', 'f0.png', 'f1.png')
  _touch(tmp_path / 'reel' / 'frame_000002.png', 'f0.png', 'f1.png')
  _touch(tmp_path / 'reel' / 'frame_000003.dpx' / 'sub', 'f0.png', 'f1.png')
  _touch(tmp_path / 'other' / 'frame_000002.png', 'f0.png', 'f1.png')  # `other` is no clip
  found, errors = _discover(str(tmp_path))
  names = sorted(c.name for c in found)
  assert errors == [] and len(names) == 4 and names[:1] == ['other/frame_000002.png']
  assert names[1] == 'reel' and names[2].startswith('reel/frame_000002.png-')
  assert re.fullmatch(r'reel/frame_000003\.dpx-[0-9a-f]{8}/sub', names[3])
  # A folder already named as that hashed name is parted from it; capitals count (on a disk that
  # ignores case, `FRAME_000002.PNG` is that frame too).
  names = clips.output_names({1: 'reel', 2: 'reel/frame_000002.png', 3: names[2],
                              4: 'reel/FRAME_000004.PNG'})
  assert len(set(names.values())) == 4 and names[3].startswith(names[2] + '-')
  assert names[4].startswith('reel/FRAME_000004.PNG-')


def test_clip_names_fit_a_local_filesystems_name_limit():
  """A folder name of up to 255 bytes is valid, but its sanitised name plus the hash was not:
  every write failed. Parts are cut to fit, and the hash keeps long names apart."""
  long_a, long_b = 'A' * 124 + ' ' + 'B' * 125, 'A' * 124 + ' ' + 'B' * 124 + 'C'
  names = [clips.sanitise_clip_name(n) for n in (long_a, long_b, f'{long_a}/x', 'D' * 300)]
  assert all(len(part) <= clips.MAX_NAME for name in names for part in name.split('/'))
  assert len(set(names)) == 4 and names[2].startswith('A' * 124 + '_' + 'B' * 121)
  assert clips.sanitise_clip_name('E' * 255) == 'E' * 255  # fits: unchanged


def test_a_clip_name_never_starts_an_output_folder_kept_for_the_pipeline():
  """'_runs', '_markers', '_tmp' and whatever '_' names come later are the pipeline's, and
  pruning passes over '_' folders: a clip '_scans/reel1' writes under 'clip_scans/'."""
  for name in ('_scans/reel1', '_runs', '_markers/x', '_tmp'):
    sanitised = clips.sanitise_clip_name(name)
    assert sanitised.startswith('clip_') and sanitised != name, sanitised


def test_relative_manifest_paths_resolve_alike_locally_and_in_object_stores():
  """Object names are literal: 'in/./f.png' is another object than 'in/f.png', so '.' and '..'
  are resolved before the path is used, as they are on local disk."""
  resolve = clips.resolve
  for row in ('reel/f0.png', './reel/f0.png', '../in/reel/f0.png', 'reel/../reel/f0.png'):
    assert resolve('gs://b/in', row) == 'gs://b/in/reel/f0.png'
    assert resolve('/data/in', row) == '/data/in/reel/f0.png'
  assert resolve('gs://b/in', 'gs://c/x/f.png') == 'gs://c/x/f.png'
  for row in ('/data/in/reel/f0.png', '/data//in/reel/f0.png', '//data/in/./reel/f0.png',
              '/data/in/x/../reel//f0.png'):
    assert resolve('/elsewhere', row) == '/data/in/reel/f0.png'


def test_a_frame_spelt_two_ways_in_a_manifest_is_one_frame_of_its_clip(tmp_path):
  """Rows continuing each other with the shared frame spelt `//` or `/./` (a script joining
  'root/' + '/name') made it two frames, written twice with no in-between, and exit 0."""
  _touch(tmp_path / 'in' / 'a', *(f'f{i}.png' for i in range(3)))
  folder = str(tmp_path / 'in' / 'a')
  manifest = tmp_path / 'm.csv'
  manifest.write_text(f'clip,frame0,frame1\nx,{folder}/f0.png,{folder}/f1.png\n'
                      f'x,{folder}//f1.png,{tmp_path}/in/./a/f2.png\n')
  (clip,), errors = _discover(str(manifest))
  assert errors == [] and clip.paired == (True, True)
  assert [u for u, _ in clip.frames] == [f'{folder}/f{i}.png' for i in range(3)]


def test_numbering_gaps_are_where_frame_numbers_skip_more_than_the_clips_step():
  assert clips.numbering_gaps(['c/f_0001.png', 'c/f_0002.png', 'c/f_0004.png',
                               'c/f_0005.png']) == [('c/f_0002.png', 'c/f_0004.png', 1)]
  # Every other frame, then three lost: the step is the clip's own.
  assert clips.numbering_gaps(['c/r1_0000.dpx', 'c/r1_0002.dpx', 'c/r1_0004.dpx',
                               'c/r1_0012.dpx']) == [('c/r1_0004.dpx', 'c/r1_0012.dpx', 3)]
  assert clips.numbering_gaps(['c/f9.png', 'c/f10.png', 'c/f12.png']) == [
      ('c/f10.png', 'c/f12.png', 1)]
  # One sequence whatever each frame's extension or its case.
  assert clips.numbering_gaps(['c/r - 0001.PNG', 'c/r - 0002.png', 'c/r - 0005.tif']) == [
      ('c/r - 0002.png', 'c/r - 0005.tif', 2)]
  # Nothing to say: consecutive, names not alike, numbers that do not rise, two frames.
  assert clips.numbering_gaps(['c/frame000.png', 'c/frame001.png', 'c/frame002.png']) == []
  assert clips.numbering_gaps(['c/a1.png', 'c/b2.png', 'c/a4.png']) == []
  assert clips.numbering_gaps(['c/take_v2.png', 'c/shot_v2.png', 'c/zoom_v2.png']) == []
  assert clips.numbering_gaps(['c/f1.png', 'c/f5.png']) == []
  assert clips.numbering_gaps(['c/open.png', 'c/f1.png', 'c/f3.png']) == []
  # A number repeated elsewhere (one scan twice) hides no gap, nor is itself one.
  assert clips.numbering_gaps(['c/f4.png', 'c/f6.png', 'c/f7.png', 'c/f007.png', 'c/f8.png']) == [
      ('c/f4.png', 'c/f6.png', 1)]
  assert clips.long_pairs(['c/f4.png', 'c/f6.png', 'c/f7.png', 'c/f007.png']) == ((0, 2),)
  assert clips.numbering_gaps(['c/f7.png', 'c/f007.png', 'c/f0007.png']) == []
  # A number after the frame number (a resolution, a version) is no frame number: its 4 hid
  # every gap. Where two numbers change (a timecode's fields, two takes), neither is one.
  assert clips.numbering_gaps(['c/scan_0001_4K.png', 'c/scan_0002_4K.png',
                               'c/scan_0004_4K.png']) == [
      ('c/scan_0002_4K.png', 'c/scan_0004_4K.png', 1)]
  assert clips.long_pairs(['c/r2_0010_v3.dpx', 'c/r2_0011_v3.dpx', 'c/r2_0013_v3.dpx']) == (
      (1, 2),)
  assert clips.numbering_gaps(['c/01-00-00-22.png', 'c/01-00-00-23.png',
                               'c/01-00-01-00.png']) == []
  assert clips.numbering_gaps(['c/t1_0001.png', 'c/t1_0002.png', 'c/t2_0005.png']) == []
  assert clips.repeated_numbers(['c/s_7_4K.png', 'c/s_007_4K.png', 'c/s_8_4K.png']) == [
      ['c/s_7_4K.png', 'c/s_007_4K.png']]


def test_a_manifests_gap_sets_no_step_and_retimed_its_clip_gets_no_notice(tmp_path):
  """Every other scan (0 2 4), a gap row, then every other scan from one on (5 7 9): the
  unpaired 4 to 5 made the step 1, and every pair 'a frame missing?'. Retimed, a clip with a gap
  is refused whole, yet its notice said it was retimed and 'the rest of the clip runs'."""
  names = [f'r{k:04d}.png' for k in (0, 2, 4, 5, 7, 9)]
  for name in names:
    (tmp_path / name).write_bytes(b'x')
  paired = (True, True, False, True, True)
  paths = [str(tmp_path / n) for n in names]
  assert clips.numbering_gaps(paths, paired) == [] and clips.long_pairs(paths, paired) == ()
  assert len(clips.numbering_gaps(paths)) == 4  # (as one folder's consecutive frames)
  rows = ['clip,frame0,frame1'] + [f'x,{a},{b}' for a, b in zip(names, names[1:]) if a != names[2]]
  (tmp_path / 'm.csv').write_text('\n'.join(rows) + '\n')
  found, errors = _discover(str(tmp_path / 'm.csv'))
  assert found[0].paired == paired and found[0].long_pairs == () and errors == []
  os.remove(tmp_path / names[4])  # 7: lost, a pair 5-9 now
  rows = ['clip,frame0,frame1', f'x,{names[0]},{names[1]}', f'x,{names[1]},{names[2]}',
          f'x,{names[3]},{names[5]}']
  (tmp_path / 'm.csv').write_text('\n'.join(rows) + '\n')
  _, errors = _discover(str(tmp_path / 'm.csv'))
  assert [e['severity'] for e in errors] == ['notice']
  assert 'r0005.png to r0009.png (1 frame missing?)' in errors[0]['message']
  retimed = clips.DiscoverClips('run', retimed=True)
  assert not [item for item in retimed.process(str(tmp_path / 'm.csv'))
              if isinstance(item, beam.pvalue.TaggedOutput)]


def test_folders_above_count_each_slash_as_a_step():
  assert clips.folders_above(['a/b/c', 'a/d']) == {'a/b', 'a'}
  assert clips.folders_above(['gs://b/in//reel']) >= {'gs://b/in/', 'gs://b/in', 'gs://b'}
  assert clips.folders_above(['./x/y', 'z']) == {'./x', '.'}


def test_a_lost_scans_notice_says_what_stands_in_for_it(tmp_path):
  """Retimed at --times_to_interpolate 0 it said in-betweens stand in for the lost frame, where
  none are made: the nearer original shows in its place."""
  for k in (0, 1, 3, 4):
    (tmp_path / f'scan_{k:04d}.png').write_bytes(b'x')
  said = {}
  for kwargs in ({}, {'retimed': True}, {'retimed': True, 'inbetweens': False}):
    _, (notice,) = _discover(str(tmp_path), **kwargs)
    said[tuple(kwargs.values())] = notice['message'].split('(1 frame missing?): ', 1)[1]
  assert said == {
      (): 'the two frames are taken as consecutive, so the motion jumps there; the rest of the '
          'clip runs',
      (True,): 'retimed, the pair spans the lost time, its in-betweens stand in for the lost '
               'frames and the later frames keep their times; the rest of the clip runs',
      (True, False): 'retimed, the pair spans the lost time, the nearer of its frames stands in '
                     'for the lost ones (no in-betweens at --times_to_interpolate 0) and the '
                     'later frames keep their times; the rest of the clip runs'}


def test_repeated_numbers_are_frames_that_share_one_number():
  """Silently used one after the other, they were one scan shown twice (a stutter)."""
  assert clips.repeated_numbers(['c/f9.png', 'c/f10.png', 'c/f010.png', 'c/f11.png']) == [
      ['c/f10.png', 'c/f010.png']]
  assert clips.repeated_numbers(['c/f1.png', 'c/f1.JPG', 'c/f2.png', 'c/f3.png', 'c/f03.png']) == [
      ['c/f1.png', 'c/f1.JPG'], ['c/f3.png', 'c/f03.png']]
  assert clips.repeated_numbers(['c/f1.png', 'c/f2.png', 'c/f3.png']) == []
  assert clips.repeated_numbers(['c/a1.png', 'c/b1.png', 'c/c1.png']) == []  # names not alike
  # Their order is the names', not the listing's: a re-run pairs them as the run before.
  names = ['f8.png', 'f7.png', 'F7.png', 'f007.png', 'f6.png']
  orders = {tuple(sorted(p, key=clips.natural_key)) for p in itertools.permutations(names)}
  assert orders == {('f6.png', 'F7.png', 'f007.png', 'f7.png', 'f8.png')}


@pytest.mark.parametrize('n,rates', [(0, (24, 8)), (2, (16, 24)), (1, (24, 24)), (0, (24, 5))])
def test_a_retimed_units_size_anchor_is_the_last_frame_shown_at_or_before_its_own(n, rates):
  from transforms import retime  # pylint: disable=import-outside-toplevel
  frames = tuple((f'c/f{i:03d}.png', '') for i in range(40))
  clip = clips.Clip('c', frames, (True,) * 39, long_pairs=((7, 2),))  # a lost scan too
  timing = retime.timing(n, *rates).along(clip.long_pairs)
  dense = clips.output_indices(clip, n)
  shown = [j for j, d in enumerate(dense) if timing.outputs(d, d)]
  for unit in clips.with_size_anchors(clips.split_into_units(clip, n, 3), clip, timing, n):
    j = max(s for s in shown if s <= unit.first_position)
    assert unit.size_anchor == (j, frames[j][0])


def test_lost_scans_make_long_pairs_up_to_a_limit():
  """Retiming stretches a pair over the frames lost in it, in the clip's own steps; a jump of
  more than `MAX_LOST_FRAMES` (two takes in one folder, 0001-0100 then 1001-1100) is reported
  but not stretched: it would hold one frame for seconds."""
  assert clips.long_pairs(['c/f_0001.png', 'c/f_0002.png', 'c/f_0004.png']) == ((1, 2),)
  assert clips.long_pairs(['c/r_0000.dpx', 'c/r_0002.dpx', 'c/r_0005.dpx']) == ((1, F(3, 2)),)
  most = 1 + clips.MAX_LOST_FRAMES
  takes = [f'c/f_{i:04d}.png' for i in (1, 2, 2 + most, 3 + most, 1001, 1002)]
  assert clips.long_pairs(takes) == ((1, most),)
  assert [missing for _, _, missing in clips.numbering_gaps(takes)] == [most - 1, 1001 - 4 - most]


def test_clip_triplets_across_a_lost_frame_are_uneven():
  frames = {'c': [f'c/s_{n:04d}.dpx' for n in (1, 2, 4, 5, 6)], 'd': ['d/a.png', 'd/b.png',
                                                                     'd/z.png']}
  triplets = clips.clip_triplets('', frames_by_clip=frames)
  skip = 'frame numbers skip'
  assert [(t.clip, t.index, t.uneven) for t in triplets] == [
      ('c', 0, skip), ('c', 1, skip), ('c', 2, ''), ('d', 0, '')]
