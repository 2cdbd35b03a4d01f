"""End to end on the local runner (in_memory and multi_processing) with a tiny random model:
the dense frame sequence, pixel-exact originals, in-betweens equal to `Interpolator.recursive`,
records and summary that match the disk, nightly skip with zero model calls, killed-run recovery.
"""

import glob
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, make_clip, metric, read_png, run_job, run_records, tool_lines
from conftest import write_dpx
from film_net import Interpolator
from film_net import interpolator
from film_net import memory
from film_net.model import bfloat16_is_native
from pipeline import launch
from pipeline import progress
from pipeline import run as run_module
from pipeline import sample_footage
from transforms import images
from transforms import interpolate
from transforms import records
from transforms.interpolate import frame_name

N = 2
STEP = 2 ** N


def _expected_inbetweens(model, frames):
  floats = [f.astype(np.float32) / 255 for f in frames]
  out = model.recursive(floats, times_to_interpolate=N)
  return [(np.clip(o, 0, 1) * 255 + 0.5).astype(np.uint8) for o in out]


@pytest.mark.parametrize('mode', ['in_memory', 'multi_processing', 'multi_threading'])
def test_clips_become_dense_sequences(tmp_path, tiny_model, mode):
  """multi_threading runs units on 3 threads sharing one model, as a Dataflow worker does."""
  model_path, model = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  clips = {'reel1/scene_a': make_clip(archive / 'reel1' / 'scene_a', 4, seed=1,
                                      pattern='f{}.png'),
           'scene b': make_clip(archive / 'scene b', 3, 72, 40, seed=2)}
  workers = ['--direct_num_workers=3'] if mode == 'multi_threading' else []
  status, run_id = run_job(str(archive), output, model_path, f'--times_to_interpolate={N}',
                           '--pairs_per_unit=2', f'--direct_running_mode={mode}', *workers)
  assert status == 0
  summary = json.load(open(os.path.join(output, '_runs', run_id, 'summary.json')))
  total_frames = 0
  for clip, frames in clips.items():
    folder = os.path.join(output, 'reel1/scene_a' if '/' in clip else
                          next(d for d in os.listdir(output) if d.startswith('scene_b')))
    names = sorted(os.listdir(folder))
    assert names == [f'frame_{i:06d}.png' for i in range((len(frames) - 1) * STEP + 1)]
    total_frames += len(names)
    expected = _expected_inbetweens(model, frames)
    for i, name in enumerate(names):
      got = read_png(os.path.join(folder, name))
      if i % STEP == 0:
        np.testing.assert_array_equal(got, frames[i // STEP])
      else:
        assert np.abs(got.astype(int) - expected[i]).max() <= 1, name
  pairs = run_records(output, run_id, 'pairs')
  assert len(pairs) == 5 and all(p['status'] == 'ok' for p in pairs)
  assert sum(p['frames_written'] for p in pairs) == total_frames == summary['frames_written']
  assert summary['pairs'] == {'total': 5, 'ok': 5, 'skipped': 0, 'failed': 0}
  assert summary['model_calls'] == 5 * (STEP - 1)
  assert summary['errors'] == 0 and run_records(output, run_id, 'errors') == []
  assert summary['model_fingerprint'] == model.fingerprint


def test_second_run_skips_everything_and_new_frames_are_processed(tmp_path, tiny_model, capsys):
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'clip', 4, seed=3)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          '--pairs_per_unit=2']
  first = run_module.run(argv + ['--run_id=first'])
  assert metric(first, 'model_calls') == 3
  before = {}
  for name in os.listdir(os.path.join(output, 'clip')):  # an old time: a rewrite would show
    os.utime(os.path.join(output, 'clip', name), (1_000_000, 1_000_000))
    before[name] = os.path.getmtime(os.path.join(output, 'clip', name))
  second = run_module.run(argv + ['--run_id=second'])
  assert metric(second, 'model_calls') == 0
  assert metric(second, 'pairs_skipped') == 3
  # A skipped pair's record has every field an ok one has: readers need no case per status.
  made, *_ = run_records(output, 'first', 'pairs')
  skipped = run_records(output, 'second', 'pairs')
  assert [(r['status'], r['model_calls'], r['size'], r['seconds']) for r in skipped] == [
      ('skipped', 0, None, {'read': 0, 'model': 0, 'write': 0})] * 3
  assert {k for r in skipped for k in r} == set(made) and made['model_calls'] == 1
  assert {n: os.path.getmtime(os.path.join(output, 'clip', n)) for n in before} == before
  # A new frame: only the new pair runs. A new model fingerprint or --reprocess: all run.
  new = make_clip(tmp_path / 'longer', 5, seed=3)[-1]
  Image.fromarray(new).save(archive / 'clip' / 'frame004.png')
  third = run_module.run(argv + ['--run_id=third'])
  assert metric(third, 'model_calls') == 1 and metric(third, 'pairs_skipped') == 3
  assert len(os.listdir(os.path.join(output, 'clip'))) == 9
  fourth = run_module.run(argv + ['--run_id=fourth', '--reprocess'])
  assert metric(fourth, 'model_calls') == 4
  fifth = run_module.run(argv + ['--run_id=fifth', '--times_to_interpolate=2'])
  assert metric(fifth, 'model_calls') == 4 * 3
  assert len(os.listdir(os.path.join(output, 'clip'))) == 17
  # The clip loses its last frame: the frames past its new end go, the rest stays done.
  os.remove(archive / 'clip' / 'frame004.png')
  capsys.readouterr()
  status, sixth = run_job(str(archive), output, model_path, '--times_to_interpolate=2')
  assert sorted(os.listdir(os.path.join(output, 'clip'))) == [
      f'frame_{i:06d}.png' for i in range(13)]
  # Said where the run's operator looks (the Beam metric alone showed only on Dataflow).
  summary = json.load(open(os.path.join(output, '_runs', sixth, 'summary.json')))
  assert status == 0 and summary['model_calls'] == 0 and (
      summary['stale_frames_removed'], summary['clips_tidied'], summary['tidied']) == (
          4, 1, ['clip'])
  assert "removed 4 frames that no longer fit (past a clip's new end, or of the other format) " \
         "from clip; records in" in capsys.readouterr().out


@pytest.mark.parametrize('listed', ['folder', 'manifest'])
def test_frames_renumbered_by_renaming_are_redone_where_they_look_alike(tmp_path, tiny_model,
                                                                       listed):
  """A reel unpacked from tar has every scan of one size and second. Renumbering it by renaming
  (a scan taken out, the later ones moved down) moved each file to a path whose old file looked
  the same, and the run skipped those pairs: a deleted scan stayed in the output, no word said."""
  model_path, _ = tiny_model
  archive, output, fresh = tmp_path / 'archive', tmp_path / 'out', tmp_path / 'fresh'
  reel = archive / 'reel'
  reel.mkdir(parents=True)
  scans = sample_footage.render_frames(5, 64, 48, seed=3)
  for i, scan in enumerate(scans):  # uncompressed: one size for every scan
    Image.fromarray(scan).save(reel / f'scan{i}.png', compress_level=0)
    os.utime(reel / f'scan{i}.png', (1_700_000_000, 1_700_000_000))
  source = archive if listed == 'folder' else tmp_path / 'pairs.csv'

  def run(run_id, output=output):
    if listed == 'manifest':  # (the manifest lists the reel as it is)
      rows = [f'reel,{reel}/scan{i}.png,{reel}/scan{i + 1}.png'
              for i in range(len(os.listdir(reel)) - 1)]
      source.write_text('\n'.join(['clip,frame0,frame1', *rows]) + '\n')
    return run_module.run([f'--input={source}', f'--output={output}', f'--run_id={run_id}',
                           f'--model_path={model_path}', f'--times_to_interpolate={N}',
                           '--pairs_per_unit=2'])

  run('first')
  again = run('again')
  assert metric(again, 'model_calls') == 0 and metric(again, 'pairs_skipped') == 4
  os.remove(reel / 'scan2.png')
  os.rename(reel / 'scan3.png', reel / 'scan2.png')
  os.rename(reel / 'scan4.png', reel / 'scan3.png')
  renumbered = run('renumbered')
  assert metric(renumbered, 'pairs_skipped') == 1 and metric(renumbered, 'pairs_ok') == 2
  run('fresh', fresh)
  made, expected = _frames_on_disk(output / 'reel'), _frames_on_disk(fresh / 'reel')
  assert made.keys() == expected.keys() and len(made) == 3 * STEP + 1
  for name, pixels in expected.items():
    np.testing.assert_array_equal(made[name], pixels, err_msg=name)
  for i, scan in enumerate((scans[0], scans[1], scans[3], scans[4])):
    np.testing.assert_array_equal(made[frame_name(i * STEP)], scan)
  last = run('last')
  assert metric(last, 'model_calls') == 0 and metric(last, 'pairs_skipped') == 3


def test_output_frames_lost_since_their_run_are_made_again(tmp_path, tiny_model):
  """A marker vouched for frames deleted or emptied since (a restore cut short, a clip's folder
  removed to make it again): the next run skipped every pair, exit 0, the holes stayed."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'clip', 5, seed=3)
  make_clip(archive / 'other', 3, seed=4)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          '--pairs_per_unit=2']
  run_module.run(argv + ['--run_id=first'])
  made = {clip: _frames_on_disk(output / clip) for clip in ('clip', 'other')}
  (output / 'clip' / frame_name(3)).unlink()  # pair 1's in-between
  (output / 'clip' / frame_name(6)).write_bytes(b'')  # pair 2's original
  (output / 'clip' / frame_name(8)).unlink()  # the last pair's last frame, the clip's last
  for name in os.listdir(output / 'other'):
    (output / 'other' / name).unlink()
  second = run_module.run(argv + ['--run_id=second'])
  assert metric(second, 'model_calls') == 3 + 2 and metric(second, 'pairs_skipped') == 1
  for clip, frames in made.items():
    again = _frames_on_disk(output / clip)
    assert again.keys() == frames.keys()
    for name, pixels in frames.items():
      np.testing.assert_array_equal(again[name], pixels)
  third = run_module.run(argv + ['--run_id=third'])
  assert metric(third, 'model_calls') == 0 and metric(third, 'pairs_skipped') == 6


def test_the_same_archive_named_another_way_is_not_done_again(tmp_path, tiny_model,
                                                              monkeypatch):
  """Relative or absolute, or through a link: the same files, the same done pairs (the keys
  held the path as typed, so a nightly job run from elsewhere redid the whole archive)."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 3, seed=3)
  os.symlink(tmp_path / 'archive', tmp_path / 'linked')
  output = str(tmp_path / 'out')
  monkeypatch.chdir(tmp_path)
  for run_id, spelling in (('first', 'archive'), ('absolute', str(tmp_path / 'archive')),
                           ('linked', 'linked'), ('dotted', './linked/../archive/')):
    result = run_module.run([f'--input={spelling}', f'--output={output}', f'--run_id={run_id}',
                             f'--model_path={model_path}'])
    assert metric(result, 'model_calls') == (2 if run_id == 'first' else 0), spelling
  assert sorted(os.listdir(os.path.join(output, 'clip'))) == [
      f'frame_{i:06d}.png' for i in range(5)]


def test_flip_average_writes_its_own_frames_and_a_rerun_keeps_them(tmp_path, tiny_model):
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  frames = make_clip(archive / 'clip', 3, seed=4)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}']
  plain = run_module.run(argv + ['--run_id=plain'])
  assert metric(plain, 'model_calls') == 2
  plain_mid = read_png(os.path.join(output, 'clip', 'frame_000001.png'))
  # Unset, the mode is the model file's default (off for a file that says nothing), as recorded.
  summary = json.load(open(os.path.join(output, '_runs', 'plain', 'summary.json')))
  assert summary['options']['flip_average'] is False and summary['options']['padding'] == 'zeros'
  # The mode changes the pixels, so the pairs a plain run finished are redone, not skipped.
  flipped = run_module.run(argv + ['--run_id=flip', '--flip_average'])
  assert metric(flipped, 'model_calls') == 2 and metric(flipped, 'pairs_skipped') == 0
  model = Interpolator.from_path(model_path, align=64, flip_average=True)
  floats = [f.astype(np.float32) / 255 for f in frames]
  expected = (np.clip(model(floats[0], floats[1]), 0, 1) * 255 + 0.5).astype(np.uint8)
  got = read_png(os.path.join(output, 'clip', 'frame_000001.png'))
  assert np.abs(got.astype(int) - expected).max() <= 1
  assert np.abs(got.astype(int) - plain_mid).max() > 1
  summary = json.load(open(os.path.join(output, '_runs', 'flip', 'summary.json')))
  assert summary['options']['flip_average'] is True
  assert summary['options']['flip_weights'] == 'equal'  # the file says nothing: the plain mean
  assert summary['model_fingerprint'] == model.fingerprint
  again = run_module.run(argv + ['--run_id=again', '--flip_average'])
  assert metric(again, 'model_calls') == 0 and metric(again, 'pairs_skipped') == 2


def _edited_clip(folder):
  """Two rendered shots of 3 frames, one after the other: pair 2 is the cut between them."""
  from film_net import image_io, render  # pylint: disable=import-outside-toplevel
  frames = []
  for seed in (1, 2):
    shot = render.render_triplet(np.random.default_rng([seed, 5]), 48, 64, max_motion_px=6)
    frames += [image_io.to_uint8(f) for f in shot]
  sample_footage.write_clip(str(folder), frames)
  return frames


def test_a_scene_cut_holds_the_nearer_original_instead_of_cross_fading(tmp_path, tiny_model):
  model_path, model = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  frames = _edited_clip(archive / 'clip')
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          f'--times_to_interpolate={N}', '--pairs_per_unit=16']
  result = run_module.run(argv + ['--run_id=cuts', '--scene_cuts'])
  assert metric(result, 'scene_cuts') == 1 and metric(result, 'model_calls') == 4 * (STEP - 1)
  folder = os.path.join(output, 'clip')
  cut = 2 * STEP  # output index of the shot's last frame
  for k, held in zip(range(1, STEP), (frames[2], frames[2], frames[3])):
    np.testing.assert_array_equal(read_png(os.path.join(folder, frame_name(cut + k))), held)
  # Within the shots the model runs, as one recursion on each side of the cut.
  for start, shot in ((0, frames[:3]), (3 * STEP, frames[3:])):
    for j, want in enumerate(_expected_inbetweens(model, shot)):
      got = read_png(os.path.join(folder, frame_name(start + j)))
      assert np.abs(got.astype(int) - want).max() <= (0 if j % STEP == 0 else 1), start + j
  pairs = sorted(run_records(output, 'cuts', 'pairs'), key=lambda r: r['pair'])
  assert [r['scene_cut'] for r in pairs] == [False, False, True, False, False]
  assert pairs[2]['cut_score'] > 0.2 > max(r['cut_score'] for r in pairs if r['pair'] != 2)
  assert [r['model_calls'] for r in pairs] == [STEP - 1, STEP - 1, 0, STEP - 1, STEP - 1]
  summary = json.load(open(os.path.join(output, '_runs', 'cuts', 'summary.json')))
  assert summary['scene_cuts'] == 1 and summary['options']['scene_cuts'] is True
  # Detection off (the default), the cut is interpolated like any pair, and every pair is redone
  # (its frames may differ), then skipped again.
  off = run_module.run(argv + ['--run_id=off'])
  assert metric(off, 'model_calls') == 5 * (STEP - 1) and metric(off, 'scene_cuts') == 0
  pairs = run_records(output, 'off', 'pairs')
  assert {r['scene_cut'] for r in pairs} == {None} and {r['cut_score'] for r in pairs} == {None}
  assert json.load(open(os.path.join(output, '_runs', 'off', 'summary.json')))['options'][
      'scene_cuts'] is False
  assert np.abs(read_png(os.path.join(folder, frame_name(cut + 1))).astype(int)
                - frames[2]).max() > 1
  again = run_module.run(argv + ['--run_id=again', '--scene_cuts=false'])
  assert metric(again, 'pairs_skipped') == 5
  assert metric(run_module.run(argv + ['--run_id=off_too', '--no_scene_cuts']),
                 'pairs_skipped') == 5


def test_a_cut_is_a_score_above_the_threshold_not_at_it(tmp_path, tiny_model, monkeypatch):
  """--scene_cut_threshold is the score a cut exceeds (its help says so)."""
  from transforms import scene_cuts  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 2, seed=5)
  monkeypatch.setattr(scene_cuts, 'thumbnail_score', lambda a, b: 0.25)
  for threshold, cut in ((0.25, False), (0.24, True)):
    output = str(tmp_path / f'out{threshold}')
    run_module.run([f'--input={tmp_path / "archive"}', f'--output={output}',
                    f'--model_path={model_path}', '--run_id=r', '--scene_cuts',
                    f'--scene_cut_threshold={threshold}'])
    (pair,) = run_records(output, 'r', 'pairs')
    assert (pair['cut_score'], pair['scene_cut'], pair['model_calls'] == 0) == (0.25, cut, cut)


def test_a_new_cut_score_decides_scene_cut_runs_pairs_again(tmp_path, tiny_model, monkeypatch):
  """A newer detector may decide a pair differently, so its runs' markers are not the older
  detector's; runs without detection keep theirs."""
  from transforms import scene_cuts  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  _edited_clip(archive / 'clip')
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          '--times_to_interpolate=1']
  run_module.run(argv + ['--run_id=v2', '--scene_cuts'])
  plain = str(tmp_path / 'plain')
  run_module.run([a.replace(output, plain) for a in argv] + ['--run_id=plain'])
  monkeypatch.setattr(scene_cuts, 'SCORE_VERSION', scene_cuts.SCORE_VERSION + 1)
  assert metric(run_module.run(argv + ['--run_id=v3', '--scene_cuts']), 'pairs_ok') == 5
  assert metric(run_module.run(argv + ['--run_id=v3_again', '--scene_cuts']),
                 'pairs_skipped') == 5
  assert metric(run_module.run([a.replace(output, plain) for a in argv] + ['--run_id=plain2']),
                 'pairs_skipped') == 5
  # A skipped pair's seconds have the keys a made one's have (its scoring's with --scene_cuts).
  for out, made, skipped in ((output, 'v3', 'v3_again'), (plain, 'plain', 'plain2')):
    assert {tuple(r['seconds']) for r in run_records(out, skipped, 'pairs')} == {
        tuple(r['seconds']) for r in run_records(out, made, 'pairs')}


def test_a_cut_whose_held_frames_fail_to_write_is_not_counted_held_and_a_rerun_holds_it(
    tmp_path, tiny_model, monkeypatch, capsys):
  from transforms import images  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  _edited_clip(archive / 'clip')
  argv = [str(archive), output, model_path, f'--times_to_interpolate={N}', '--scene_cuts']
  held_color_chunks = images.held_color_chunks

  def disk_full(*args):
    raise OSError('No space left on device')

  monkeypatch.setattr(images, 'held_color_chunks', disk_full)
  status, run_id = run_job(*argv)
  assert status == 1
  assert 'held, not interpolated' not in capsys.readouterr().out
  pairs = sorted(run_records(output, run_id, 'pairs'), key=lambda r: r['pair'])
  assert [r['status'] for r in pairs] == ['ok', 'ok', 'failed', 'ok', 'ok']
  assert pairs[2]['scene_cut'] is True and 'No space left' in pairs[2]['error']
  assert set(pairs[0]['seconds']) == {'read', 'model', 'write', 'scene_cut'}
  summary = json.load(open(os.path.join(output, '_runs', run_id, 'summary.json')))
  assert summary['scene_cuts'] == 0 and summary['pairs']['failed'] == 1
  monkeypatch.setattr(images, 'held_color_chunks', held_color_chunks)
  assert run_job(*argv)[0] == 0
  assert '4 skipped, 0 failed; held, not interpolated: 1 scene cut)' in capsys.readouterr().out


def test_a_repeated_frame_is_held_without_a_model_call(tmp_path, tiny_model, capsys):
  """Archive transfers repeat frames (8 fps film at 24 fps shows each three times): a pair of
  identical frames holds its frame exactly, and only the pairs that move cost model calls, with
  or without --scene_cuts."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  moving = make_clip(tmp_path / 'moving', 3, seed=6)
  frames = [moving[0], moving[0], moving[1], moving[1], moving[1], moving[2]]
  sample_footage.write_clip(str(archive / 'clip'), frames)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          f'--times_to_interpolate={N}']
  result = run_module.run(argv + ['--run_id=held', '--scene_cuts'])
  assert metric(result, 'model_calls') == 2 * (STEP - 1)
  assert metric(result, 'identical_pairs') == 3 and metric(result, 'scene_cuts') == 0
  pairs = sorted(run_records(output, 'held', 'pairs'), key=lambda r: r['pair'])
  assert [r['identical'] for r in pairs] == [True, False, True, True, False]
  assert [r['model_calls'] for r in pairs] == [0, STEP - 1, 0, 0, STEP - 1]
  # A held pair took none of the model's time; the pairs that moved share it by their calls.
  assert [r['seconds']['model'] > 0 for r in pairs] == [False, True, False, False, True]
  assert pairs[1]['seconds']['model'] == pytest.approx(pairs[4]['seconds']['model'])
  for i in (0, 2, 3):
    for k in range(1, STEP):
      np.testing.assert_array_equal(
          read_png(os.path.join(output, 'clip', frame_name(i * STEP + k))), frames[i])
  summary = json.load(open(os.path.join(output, '_runs', 'held', 'summary.json')))
  assert summary['identical_pairs'] == 3 and summary['model_calls'] == 2 * (STEP - 1)
  # Without --scene_cuts the same pairs are held, the same way: no model call, exact frames.
  plain = str(tmp_path / 'plain')
  unasked = run_module.run([f'--input={archive}', f'--output={plain}',
                            f'--model_path={model_path}', f'--times_to_interpolate={N}',
                            '--run_id=unasked'])
  assert metric(unasked, 'model_calls') == 2 * (STEP - 1)
  assert metric(unasked, 'identical_pairs') == 3 and metric(unasked, 'scene_cuts') == 0
  records = sorted(run_records(plain, 'unasked', 'pairs'), key=lambda r: r['pair'])
  assert [r['identical'] for r in records] == [True, False, True, True, False]
  assert [r['scene_cut'] for r in records] == [None] * 5
  assert [r['cut_score'] for r in records] == [None] * 5
  for name in sorted(os.listdir(os.path.join(output, 'clip'))):
    assert (open(os.path.join(plain, 'clip', name), 'rb').read()
            == open(os.path.join(output, 'clip', name), 'rb').read()), name
  capsys.readouterr()
  assert run_job(str(archive), plain, model_path, f'--times_to_interpolate={N}',
                 '--scene_cuts')[0] == 0  # (another option: its pairs made again)
  assert '; held, not interpolated: 3 pairs of identical frames)' in capsys.readouterr().out


def test_a_frame_repeated_at_another_bit_depth_is_held(tmp_path, tiny_model):
  """A transfer may write a repeated frame at 16 bits beside 8-bit ones: the same picture,
  held with no model call, its in-betweens that picture at the pair's depth."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  frames = make_clip(archive / 'clip', 3, seed=6)
  (archive / 'clip' / 'frame001.png').write_bytes(
      tf.io.encode_png(frames[0].astype(np.uint16) * 257).numpy())
  result = run_module.run([f'--input={archive}', f'--output={output}', f'--run_id=deep',
                           f'--model_path={model_path}', f'--times_to_interpolate={N}'])
  assert metric(result, 'identical_pairs') == 1 and metric(result, 'model_calls') == STEP - 1
  for k in range(1, STEP):
    written = open(os.path.join(output, 'clip', frame_name(k)), 'rb').read()
    np.testing.assert_array_equal(images.decode(written).pixels,
                                  frames[0].astype(np.uint16) * 257)


def test_without_inbetweens_no_pair_is_scored_or_counted_as_a_held_cut(tmp_path, tiny_model):
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  _edited_clip(archive / 'clip')
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          '--times_to_interpolate=0', '--scene_cuts']
  result = run_module.run(argv + ['--run_id=copy'])
  assert metric(result, 'scene_cuts') == 0 and metric(result, 'pairs_ok') == 5
  pairs = run_records(output, 'copy', 'pairs')
  assert {r['scene_cut'] for r in pairs} == {None} and {r['cut_score'] for r in pairs} == {None}
  # The threshold changes nothing written, so the copies are not made again.
  again = run_module.run(argv + ['--run_id=again', '--scene_cut_threshold=0.5'])
  assert metric(again, 'pairs_skipped') == 5
  # Nor do the model's settings: no model call makes these frames (converting scans at N=0).
  for k, flag in enumerate(['--align=0', '--no_flip_average', '--precision=bfloat16']):
    assert metric(run_module.run(argv + [f'--run_id=model{k}', flag]), 'pairs_skipped') == 5


def test_a_held_inbetween_keeps_the_colour_description_of_the_frame_it_holds(tmp_path,
                                                                             tiny_model, capsys):
  """Two shots graded differently (their own gamma): the in-between holding the second shot's
  first frame must be shown as that frame is, not under the first shot's gamma."""
  from PIL import PngImagePlugin  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  frames = _edited_clip(tmp_path / 'plain')
  (archive / 'clip').mkdir(parents=True)
  for i, frame in enumerate(frames):
    info = PngImagePlugin.PngInfo()
    info.add(b'gAMA', (45455 if i < 3 else 55556).to_bytes(4, 'big'))
    Image.fromarray(frame).save(archive / 'clip' / f'f{i}.png', pnginfo=info)
  status, _ = run_job(str(archive), output, model_path, f'--times_to_interpolate={N}',
                      '--scene_cuts')
  assert status == 0
  assert '; held, not interpolated: 1 scene cut)' in capsys.readouterr().out
  cut = 2 * STEP
  for index, gamma in ((cut, 0.45455), (cut + 1, 0.45455), (cut + STEP - 1, 0.55556),
                       (cut + STEP, 0.55556)):
    with Image.open(os.path.join(output, 'clip', frame_name(index))) as image:
      assert image.info.get('gamma') == gamma, index
  np.testing.assert_array_equal(read_png(os.path.join(output, 'clip', frame_name(cut + 3))),
                                frames[3])


def test_bfloat16_precision_is_its_own_output_and_recorded(tmp_path, tiny_model):
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  frames = make_clip(archive / 'clip', 2, seed=5)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}']
  assert metric(run_module.run(argv + ['--run_id=exact']), 'model_calls') == 1
  rounded = run_module.run(argv + ['--run_id=rounded', '--precision=bfloat16'])
  assert metric(rounded, 'model_calls') == 1 and metric(rounded, 'pairs_skipped') == 0
  model = Interpolator.from_path(model_path, align=64, precision='bfloat16')
  floats = [f.astype(np.float32) / 255 for f in frames]
  expected = (np.clip(model(floats[0], floats[1]), 0, 1) * 255 + 0.5).astype(np.uint8)
  got = read_png(os.path.join(output, 'clip', 'frame_000001.png'))
  assert np.abs(got.astype(int) - expected).max() <= 1
  summary = json.load(open(os.path.join(output, '_runs', 'rounded', 'summary.json')))
  assert summary['options']['precision'] == 'bfloat16'
  assert summary['model_fingerprint'] == model.fingerprint
  assert summary['model_fingerprint'].endswith('+bfloat16')


def test_tiled_frames_are_their_own_output_and_recorded(tmp_path, tiny_model):
  model_path, whole = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  frames = make_clip(archive / 'clip', 2, width=160, height=64, seed=6)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}']
  assert metric(run_module.run(argv + ['--run_id=whole']), 'model_calls') == 1
  tiled = run_module.run(argv + ['--run_id=tiled', '--tile=64', '--tile_overlap=16'])
  assert metric(tiled, 'model_calls') == 1 and metric(tiled, 'pairs_skipped') == 0
  model = Interpolator.from_path(model_path, align=64, tile=64, tile_overlap=16)
  floats = [f.astype(np.float32) / 255 for f in frames]
  expected = (np.clip(model(floats[0], floats[1]), 0, 1) * 255 + 0.5).astype(np.uint8)
  got = read_png(os.path.join(output, 'clip', 'frame_000001.png'))
  assert np.abs(got.astype(int) - expected).max() <= 1
  unexpected = (np.clip(whole(floats[0], floats[1]), 0, 1) * 255 + 0.5).astype(np.uint8)
  assert np.abs(got.astype(int) - unexpected).max() > 1
  summary = json.load(open(os.path.join(output, '_runs', 'tiled', 'summary.json')))
  assert summary['options']['tile'] == 64 and summary['options']['tile_overlap'] == 16
  assert summary['model_fingerprint'] == model.fingerprint
  again = run_module.run(argv + ['--run_id=again', '--tile=64', '--tile_overlap=16'])
  assert metric(again, 'model_calls') == 0 and metric(again, 'pairs_skipped') == 1


def test_a_pair_the_model_has_no_memory_for_fails_suggesting_tiles(tmp_path, tiny_model,
                                                                   monkeypatch):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def out_of_memory(self, frames, n, wanted=None):
    raise tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating tensor')

  monkeypatch.setattr(Interpolator, 'iter_in_betweens', out_of_memory)
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 2, seed=7)
  output = str(tmp_path / 'out')
  argv = [f'--input={tmp_path / "archive"}', f'--output={output}', f'--model_path={model_path}']
  run_module.run(argv + ['--run_id=whole'])
  run_module.run(argv + ['--run_id=tiled', '--tile=64'])
  whole, = run_records(output, 'whole', 'errors')
  hint = '(out of memory: --tile runs frames as tiles, e.g. --tile 1024)'
  assert whole['stage'] == 'model' and whole['message'].endswith(hint)
  pair, = run_records(output, 'whole', 'pairs')
  assert pair['status'] == 'failed' and pair['error'].endswith(hint)
  tiled, = run_records(output, 'tiled', 'errors')  # already tiled: smaller tiles are the user's call
  assert 'OOM when allocating' in tiled['message'] and '--tile' not in tiled['message']


def test_a_clip_too_large_for_the_machines_memory_fails_alone_and_runs_as_tiles(
    tmp_path, tiny_model, monkeypatch):
  """On CPU the operating system would end the run at such a frame, with no record, at every
  re-run: its pairs are error records instead, the other clips are made."""
  model_path, model = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'large', 3, width=256, height=192, seed=9)
  make_clip(archive / 'small', 3, seed=10)
  room = memory.frame_bytes(model.options, 128, 128, model.flip_average)
  monkeypatch.setattr(memory, 'machine_bytes', lambda: room)
  monkeypatch.setattr(interpolator, '_on_gpu', lambda: False)  # (the check is for CPUs)
  real_decode, decoded = images.decode, []
  monkeypatch.setattr(images, 'decode', lambda data, uri='', max_pixels=None: (
      decoded.append(uri), real_decode(data, uri, max_pixels))[1])
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}']
  result = run_module.run(argv + ['--run_id=whole'])
  assert metric(result, 'model_calls') == 2 and metric(result, 'pairs_failed') == 2
  # Refused from their headers: never decoded, nor written as originals, at each re-run.
  assert decoded and not [uri for uri in decoded if '/large/' in uri]
  errors = run_records(output, 'whole', 'errors')
  assert sorted(os.path.basename(e['uris'][0]) for e in errors) == [
      f'frame{k:03d}.png' for k in range(3)]
  for error in errors:
    assert error['stage'] == 'model' and '/large/' in error['uris'][0]
    assert error['message'].startswith(f'cannot run the model on {error["uris"][0]}: a 256x192 '
                                       f'frame is too large for this machine')
    assert error['message'].endswith('run it as tiles (--tile), or where there is more memory')
  for pair in run_records(output, 'whole', 'pairs'):
    if '/large/' in pair['inputs'][0]:
      assert pair['status'] == 'failed' and pair['size'] == [256, 192]
      assert pair['error'].startswith(f'cannot run the model on {pair["inputs"][0]}: a 256x192')
  assert sorted(os.listdir(os.path.join(output, 'small'))) == [
      f'frame_{k:06d}.png' for k in range(2 * 2 + 1)]
  assert not os.path.exists(os.path.join(output, 'large'))
  tiled = run_module.run(argv + ['--run_id=tiled', '--tile=64', '--tile_overlap=16'])
  # (The small clip's frames are made again too: a tiled run's frames are its own.)
  assert metric(tiled, 'model_calls') == 4 and metric(tiled, 'pairs_failed') == 0
  assert len(os.listdir(os.path.join(output, 'large'))) == 5


def _break_the_model(monkeypatch, breaks):
  """Makes the model's mid-frame calls (counted from 1) that `breaks` names raise; returns what
  mends it."""
  real_mid = Interpolator._mid_from_features
  calls = []

  def mid(self, state0, state1):
    calls.append(1)
    if breaks(len(calls)):
      raise RuntimeError('the model broke')
    return real_mid(self, state0, state1)

  monkeypatch.setattr(Interpolator, '_mid_from_features', mid)
  return lambda: monkeypatch.setattr(Interpolator, '_mid_from_features', real_mid)


def test_a_pair_the_model_fails_on_fails_alone(tmp_path, tiny_model, monkeypatch):
  """A model call that fails mid-way through a run of pairs fails that pair: those before it
  are whole and kept, those after it are made, and its calls so far are counted."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 4, seed=8)
  output = str(tmp_path / 'out')
  argv = [f'--input={tmp_path / "archive"}', f'--output={output}', f'--model_path={model_path}',
          f'--times_to_interpolate={N}', '--pairs_per_unit=8']
  mend = _break_the_model(monkeypatch, lambda call: call == 2 ** N + 1)  # pair 1's second
  result = run_module.run(argv + ['--run_id=broken'])
  status = {r['pair']: (r['status'], r['model_calls'])
            for r in run_records(output, 'broken', 'pairs')}
  calls_per_pair = 2 ** N - 1
  assert status == {0: ('ok', calls_per_pair), 1: ('failed', 1), 2: ('ok', calls_per_pair)}
  assert metric(result, 'model_calls') == 2 * calls_per_pair + 1
  error, = run_records(output, 'broken', 'errors')
  assert error['stage'] == 'model' and 'the model broke' in error['message']
  assert [os.path.basename(u) for u in error['uris']] == ['frame001.png', 'frame002.png']
  step = 2 ** N
  missing = {frame_name(step + p) for p in range(1, step)}
  assert set(os.listdir(os.path.join(output, 'clip'))) == {
      frame_name(k) for k in range(3 * step + 1)} - missing
  mend()
  again = run_module.run(argv + ['--run_id=again'])
  assert metric(again, 'model_calls') == calls_per_pair and metric(again, 'pairs_skipped') == 2
  assert len(os.listdir(os.path.join(output, 'clip'))) == 3 * step + 1


def test_ctrl_c_ends_the_run_in_one_line_with_status_130(tmp_path, tiny_model, monkeypatch,
                                                        capsys, caplog):
  """Ctrl-C printed Beam's and TensorFlow's tracebacks, a screen of them, and exit status 1."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 3, seed=8)
  real_mid = Interpolator._mid_from_features

  def interrupted(self, state0, state1):
    raise KeyboardInterrupt

  monkeypatch.setattr(Interpolator, '_mid_from_features', interrupted)
  status = run_module.main([f'--input={tmp_path / "archive"}', f'--output={tmp_path / "out"}',
                            f'--model_path={model_path}', '--run_id=stopped'])
  assert status == 130
  stderr = capsys.readouterr().err
  assert 'interrupted: run stopped stopped; the same command finishes the job' in stderr
  assert 'Traceback' not in stderr + caplog.text
  monkeypatch.setattr(Interpolator, '_mid_from_features', real_mid)
  assert run_module.main([f'--input={tmp_path / "archive"}', f'--output={tmp_path / "out"}',
                          f'--model_path={model_path}', '--run_id=again']) == 0
  assert len(os.listdir(tmp_path / 'out' / 'clip')) == 2 * 2 ** 1 + 1


def test_sigterm_ends_the_run_in_one_line_with_status_143(tmp_path, tiny_model, monkeypatch,
                                                         capsys, caplog):
  """SIGTERM (a scheduler's or `timeout`'s stop) killed the run where it stood: no line said so
  and the progress folder stayed. The handler is the process's again afterwards."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 3, seed=8)
  real_mid = Interpolator._mid_from_features

  def terminated(self, state0, state1):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)  # the handler interrupts this, wherever the job waits
    return real_mid(self, state0, state1)

  monkeypatch.setattr(Interpolator, '_mid_from_features', terminated)
  started = time.monotonic()
  status = run_module.main([f'--input={tmp_path / "archive"}', f'--output={tmp_path / "out"}',
                            f'--model_path={model_path}', '--run_id=stopped'])
  assert status == 143 and time.monotonic() - started < 60
  stderr = capsys.readouterr().err
  assert 'interrupted (SIGTERM): run stopped stopped; the same command finishes the job' in stderr
  assert 'Traceback' not in stderr + caplog.text
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
  assert not glob.glob(os.path.join(tempfile.gettempdir(), f'film-progress-{os.getpid()}-*'))


@pytest.mark.parametrize('signum, status', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_that_comes_out_of_the_model_as_another_error_still_stops_the_run(
    tmp_path, tiny_model, monkeypatch, capsys, signum, status):
  """The KeyboardInterrupt of Ctrl-C or SIGTERM raised inside a TensorFlow call can come out as
  a SystemError ("bad argument to internal function"): the pair was recorded as failed by the
  model, and the run went on to its end with exit status 1."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 4, seed=8)
  calls = []

  def stopped_inside_a_library_call(self, state0, state1):
    calls.append(1)
    try:
      os.kill(os.getpid(), signum)
      time.sleep(10)  # the handler interrupts this
    except KeyboardInterrupt:
      raise SystemError('Objects/listobject.c:338: bad argument to internal function') from None

  monkeypatch.setattr(Interpolator, '_mid_from_features', stopped_inside_a_library_call)
  output = tmp_path / 'out'
  assert run_module.main([f'--input={tmp_path / "archive"}', f'--output={output}',
                          f'--model_path={model_path}', '--run_id=stopped',
                          '--pairs_per_unit=1']) == status
  stderr = capsys.readouterr().err
  assert 'run stopped stopped; the same command finishes the job' in stderr
  assert 'model failed' not in stderr and len(calls) == 1
  assert not glob.glob(str(output / '_runs' / 'stopped' / 'errors-*'))
  assert not (output / '_tmp').exists()  # (left for a later run to find a day old)
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# With the tiny model, work that keeps two workers busy for seconds after their first unit:
# seven model calls and eight frames of 256x160 a pair, in units of two pairs.
_BUSY_FLAGS = ('--times_to_interpolate=3', '--pairs_per_unit=2')


def _multi_processing_job_at_work(tmp_path, *flags):
  """pipeline.run over tmp_path/archive into tmp_path/out with two multi_processing workers,
  started as a terminal starts it (its own process group, SIGINT at its default), once a
  worker has finished a unit."""
  def as_a_terminal_starts_it():
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
  output = tmp_path / 'out'
  job = subprocess.Popen(
      [sys.executable, '-m', 'pipeline.run', f'--input={tmp_path / "archive"}',
       f'--output={output}', *flags, '--direct_running_mode=multi_processing',
       '--direct_num_workers=2', '--run_id=stopped'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      preexec_fn=as_a_terminal_starts_it)
  deadline = time.monotonic() + 240
  while not glob.glob(str(output / '_markers' / '*' / '*.done')):  # the workers are at it
    assert job.poll() is None and time.monotonic() < deadline, job.communicate()
    time.sleep(0.2)
  return job


def test_ctrl_c_on_a_multi_processing_run_is_the_launchers_one_line(tmp_path, tiny_model):
  """A terminal's Ctrl-C reaches every process of the job: each worker died of it with a screen
  of tracebacks (80-213 lines for two), and Beam's thread watching it added one more."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 24, width=32, height=32, seed=3)
  job = _multi_processing_job_at_work(tmp_path, f'--model_path={model_path}',
                                      '--times_to_interpolate=3', '--pairs_per_unit=1')
  os.killpg(job.pid, signal.SIGINT)
  _, stderr = job.communicate(timeout=120)
  assert job.returncode == 130, stderr
  assert 'Traceback' not in stderr and 'KeyboardInterrupt' not in stderr, stderr
  assert stderr.splitlines()[-1].startswith('interrupted: run stopped stopped; '), stderr


@pytest.mark.parametrize('signum, status', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_a_multi_processing_launcher_alone_ends_the_job(tmp_path, tiny_model,
                                                                    signum, status):
  """`kill PID`, `timeout` and schedulers signal the launcher alone: it printed its line and
  never exited, Beam's thread waiting on a worker that ran on."""
  for name in ('clip', 'clip2'):  # (seconds of work still to do 3 s after the first unit)
    make_clip(tmp_path / 'archive' / name, 60, width=256, height=160, seed=3)
  job = _multi_processing_job_at_work(tmp_path, *_BUSY_FLAGS, f'--model_path={tiny_model[0]}')
  time.sleep(3)
  os.kill(job.pid, signum)
  try:
    _, stderr = job.communicate(timeout=60)
  except subprocess.TimeoutExpired:
    os.killpg(job.pid, signal.SIGKILL)
    raise
  assert job.returncode in (status, -signum), stderr  # (a shell's $? is `status` for either)
  assert 'Traceback' not in stderr and tool_lines(stderr)[-1].startswith('interrupted'), stderr
  deadline = time.monotonic() + 20
  while True:  # and no worker is left running
    try:
      os.killpg(job.pid, 0)
    except ProcessLookupError:
      break
    if time.monotonic() > deadline:
      os.killpg(job.pid, signal.SIGKILL)
      pytest.fail('a worker ran on after the launcher ended')
    time.sleep(0.2)


def test_the_workers_of_a_launcher_killed_outright_end_with_it(tmp_path, tiny_model):
  """`kill -9` of the launcher (or the OOM killer) left its workers running on, until Beam's
  harness found its control stream gone (seconds), each with a traceback on the terminal the
  launcher had left."""
  for name in ('clip', 'clip2'):
    make_clip(tmp_path / 'archive' / name, 60, width=256, height=160, seed=3)
  job = _multi_processing_job_at_work(tmp_path, *_BUSY_FLAGS, f'--model_path={tiny_model[0]}')
  workers = _worker_pids(job.pid)
  assert workers
  job.kill()
  _, stderr = job.communicate(timeout=120)  # (once the workers have closed their stderr too)
  assert 'Traceback' not in stderr, stderr
  deadline = time.monotonic() + 10
  while any(os.path.exists(f'/proc/{pid}') and _is_running(pid) for pid in workers):
    if time.monotonic() > deadline:
      os.killpg(job.pid, signal.SIGKILL)
      pytest.fail('a worker ran on after its launcher was killed')
    time.sleep(0.2)


def test_the_first_signal_caught_sets_the_exit_status():
  """Ctrl-C, then SIGTERM while the run stops (a scheduler's timeout): 130, as the stop was."""
  assert launch.interrupt_status([signal.SIGINT, signal.SIGTERM]) == 130
  assert launch.interrupt_status([signal.SIGTERM, signal.SIGINT]) == 143
  assert launch.interrupt_status([]) == 130


def test_a_multi_processing_worker_killed_mid_job_is_one_line_and_the_same_command_finishes(
    tmp_path, tiny_model):
  """The OOM killer's SIGKILL to one worker (each holds the model and its frames): Beam printed
  240 lines of the launcher's threads' tracebacks, ending in 'Channel closed prematurely', and
  no word of why."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 24, width=32, height=32, seed=3)
  flags = [f'--model_path={model_path}', '--times_to_interpolate=3', '--pairs_per_unit=1']
  job = _multi_processing_job_at_work(tmp_path, *flags)
  workers = _worker_pids(job.pid)
  os.kill(workers[0], signal.SIGKILL)
  _, stderr = job.communicate(timeout=120)
  assert job.returncode == 1 and 'Traceback' not in stderr, stderr
  assert tool_lines(stderr)[-1] == (
      'error: a worker process of the job was killed by signal 9 (SIGKILL), and the job '
      'stopped: on Linux most often the kernel\'s OOM killer, the memory used up: each worker '
      'process (2 in this run) holds the model and its frames\' activations (see "Large frames" '
      'in README.md); run with fewer --direct_num_workers, --tile or --direct_running_mode '
      'multi_threading, or on a machine with more memory. What the workers finished is whole '
      '(done markers); the same command finishes the job'), stderr
  assert not any(_is_running(pid) for pid in workers[1:])  # (the other worker is ended)
  output = tmp_path / 'out'
  result = run_module.run([f'--input={tmp_path / "archive"}', f'--output={output}', *flags,
                           '--run_id=again'])
  assert metric(result, 'pairs_failed') == 0
  assert metric(result, 'pairs_ok') + metric(result, 'pairs_skipped') == 23
  assert len(os.listdir(output / 'clip')) == 23 * 8 + 1


def _worker_pids(launcher):
  """The Beam SDK workers the launcher started (their /proc entries: Linux)."""
  found = []
  for task in os.listdir(f'/proc/{launcher}/task'):
    with open(f'/proc/{launcher}/task/{task}/children', encoding='ascii') as f:
      found += [int(pid) for pid in f.read().split()]
  return found


def _is_running(pid):
  try:
    with open(f'/proc/{pid}/stat', encoding='ascii') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except OSError:
    return False


def test_what_a_worker_logs_once_the_run_is_being_stopped_is_left_unsaid():
  """A worker cut off mid-bundle by a stop logged 'cannot schedule new futures after shutdown'
  with a traceback (its writer pool shut down under it), after the run's one line: once in a
  few Ctrl-Cs on a multi_processing run."""
  from transforms import stopping  # pylint: disable=import-outside-toplevel
  broken = ('severity: ERROR message: "cannot schedule new futures after shutdown\\nTraceback '
            '(most recent call last): ..." log_location: "/work/transforms/interpolate.py:391"')

  def worker_line():
    return logging.LogRecord('apache_beam.runners.portability.local_job_service',
                             logging.ERROR, __file__, 1, 'Worker: %s', (broken,), None)
  assert launch._workers_own_lines(worker_line())  # pylint: disable=protected-access
  try:
    stopping.request()
    assert not launch._workers_own_lines(worker_line())  # pylint: disable=protected-access
  finally:
    stopping.clear()


def test_a_workers_failed_write_that_stops_the_job_is_left_to_the_launchers_line():
  """multi_processing: the worker's error and "Error processing instruction ... Original
  traceback is" came before the launcher's one line, with ~200 lines of traceback, where an
  in_memory run (`_not_an_interruption`) says the line alone."""
  said = []
  for message in ["'NoneType' object has no attribute 'status_code' [while running "
                  "'WritePairRecords/Write/WriteImpl/FinalizeWrite']\nTraceback ...",
                  'Error processing instruction bundle_22. Original traceback is\nTraceback '
                  '... File "/v/apache_beam/io/gcp/gcsio.py", line 426, in delete_batch ... '
                  "AttributeError: 'NoneType' object has no attribute 'status_code'",
                  'ValueError: a bug of ours']:
    line = f'severity: ERROR message: {json.dumps(message)} log_location: "/x/sdk_worker.py:1"'
    said.append(launch._workers_own_lines(logging.LogRecord(  # pylint: disable=protected-access
        'apache_beam.runners.portability.local_job_service', logging.ERROR, __file__, 1,
        'Worker: %s', (line,), None)))
  assert said == [False, False, True]
  # The worker's harness also prints a failed bundle's traceback to its own stderr.
  from pipeline import local_worker  # pylint: disable=import-outside-toplevel
  stream = io.StringIO()
  stderr = local_worker._LauncherSays(stream)  # pylint: disable=protected-access
  for text in ['Traceback (most recent call last):\n  File "x.py", line 1, in f\nOSError: '
               '[Errno 28] No space left on device [while running \'WriteFrames\']\n',
               'Traceback (most recent call last):\n  File "/v/apache_beam/io/gcp/gcsio.py", '
               "line 497, in copy_batch\nAttributeError: 'NoneType' object has no attribute "
               "'status_code'\n", 'Traceback (most recent call last):\nValueError: ours\n',
               'a line of its own']:
    print(text, file=stderr)  # (as Beam's harness prints a bundle's traceback)
  assert stream.getvalue() == ('Traceback (most recent call last):\nValueError: ours\n\n'
                               'a line of its own\n')


def test_a_stop_ends_the_launchers_workers_by_their_command():
  """Started as `pipeline.local_worker`, the workers were no longer found by the launcher's
  stop, which looked for Beam's `sdk_worker_main` alone."""
  worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)',
                             'pipeline.local_worker'])
  try:
    time.sleep(0.5)
    launch._end_the_workers()  # pylint: disable=protected-access
    assert worker.wait(timeout=10) == -signal.SIGTERM
  finally:
    worker.kill()


def test_a_finished_command_whose_shutdown_hangs_is_ended_with_its_threads_tracebacks():
  """Signals ignored once the outcome was printed, a shutdown that hung could be ended by
  SIGKILL alone."""
  script = '''
import signal, threading, time
from film_net import flags
def stuck():  # (says so once the command is exiting)
  while signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
    time.sleep(0.05)
  print('done', flush=True)
  time.sleep(60)
flags.SHUTDOWN_LIMIT_S = 3
threading.Thread(target=stuck).start()
flags.exit_with(0)
'''
  job = subprocess.Popen([sys.executable, '-c', script], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
  assert job.stdout.readline() == 'done\n'
  job.send_signal(signal.SIGTERM)  # (ignored: the outcome stands)
  _, stderr = job.communicate(timeout=30)
  assert job.returncode == 1 and 'Timeout (0:00:03)!' in stderr, stderr
  assert 'in _shutdown' in stderr  # (where it hung: the stuck thread's join)


def test_closing_the_workers_a_stop_ended_is_left_unsaid():
  """SIGTERM to the whole process group (GNU `timeout`, systemd) ends the multi_processing
  workers with the launcher: Beam logged closing each one's broken stream as an error with a
  55-line traceback, before the run's one line (3 runs in 5)."""
  from transforms import stopping  # pylint: disable=import-outside-toplevel
  launch.quiet_beam_logs()
  logger = logging.getLogger('apache_beam.runners.portability.fn_api_runner.worker_handlers')

  def closing():
    return logging.LogRecord(logger.name, logging.ERROR, __file__, 1,
                             'Error closing worker_handler %s', ('<handler>',), None)
  assert logger.filter(closing())
  try:
    stopping.request()
    assert not logger.filter(closing())
  finally:
    stopping.clear()


def test_a_stop_after_the_outcome_is_printed_leaves_the_outcome_and_its_status(
    tmp_path, tiny_model, monkeypatch, capsys):
  """A scheduler's SIGTERM just after the run had printed its success made the exit status 143
  with no line saying why: a failure to the scheduler of a run that had reported success."""
  from transforms import stopping  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 2, seed=8)
  real_finish, finished = stopping.finish, []

  def finish_then_terminated():
    finished.append(1)
    real_finish()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)  # the handler runs here

  monkeypatch.setattr(stopping, 'finish', finish_then_terminated)
  status = run_module.main([f'--input={tmp_path / "archive"}', f'--output={tmp_path / "out"}',
                            f'--model_path={model_path}', '--run_id=done'])
  printed = capsys.readouterr()
  assert finished and status == 0 and 'run done: 1 pair (1 ok' in printed.out
  assert 'interrupted' not in printed.err
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and not stopping.finished()


@pytest.mark.parametrize('module', ['pipeline.run', 'pipeline.evaluate'])
def test_a_signal_while_the_finished_command_exits_leaves_its_status(tmp_path, tiny_model,
                                                                     module):
  """Once main() had returned, the interpreter's shutdown (joining Beam's and TensorFlow's
  threads, a second or two) ran with the signals' defaults again: a `timeout` or a scheduler's
  stop then killed a run that had printed its success (status 143)."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 3, seed=8)
  argv = ['--leave_one_out'] * (module == 'pipeline.evaluate')
  job = subprocess.Popen(
      [sys.executable, '-m', module, f'--input={tmp_path / "archive"}',
       f'--output={tmp_path / "out"}', f'--model_path={model_path}', *argv],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env={**os.environ, 'PYTHONUNBUFFERED': '1'})
  for line in job.stdout:  # the outcome's last line (the run's, or the evaluation's clip) ...
    if line.startswith(('run ', 'clip clip:')):
      time.sleep(0.3)  # (its report returns)
      job.send_signal(signal.SIGTERM)  # ... and a stop while the process exits
      break
  else:
    pytest.fail(str(job.communicate()))
  _, stderr = job.communicate(timeout=120)
  assert job.returncode == 0, stderr


def test_jobs_one_after_another_in_a_process_trace_the_model_once(tmp_path, tiny_model):
  """A notebook or a scheduler's Python running job after job traced the model anew for each
  (seconds a job); the file is still read each time, so one replaced under its name is the new
  model, and other settings are another model."""
  path = str(tmp_path / 'model.npz')
  shutil.copy(tiny_model[0], path)
  make_clip(tmp_path / 'archive' / 'clip', 3, seed=8)
  assert run_job(tmp_path / 'archive', tmp_path / 'out', path)[0] == 0
  first = interpolate.load_model(path, 64)
  traced = first._features.tracing_count()  # pylint: disable=protected-access
  assert traced >= 1  # (the job's)
  assert run_job(tmp_path / 'archive', tmp_path / 'again', path)[0] == 0
  assert interpolate.load_model(path, 64) is first
  assert first._features.tracing_count() == traced  # pylint: disable=protected-access
  assert interpolate.load_model(path, 64, precision='bfloat16') is not first
  Interpolator.random(tiny_model[1].options, seed=5, align=64).save(path)
  replaced = interpolate.load_model(path, 64)
  assert replaced is not first and replaced.fingerprint != first.fingerprint


def test_a_stop_during_the_model_load_is_no_model_error(tmp_path, tiny_model, monkeypatch,
                                                      capsys):
  """The launcher's load wraps any exception in ModelError: a SIGTERM whose KeyboardInterrupt
  came out of TensorFlow as another error was "cannot load the film_net model", exit 2."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 2, seed=8)
  real_from_path = Interpolator.from_path.__func__

  def stopped_inside_a_library_call(cls, *args, **kwargs):
    try:
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(10)  # the handler interrupts this
    except KeyboardInterrupt:
      raise SystemError('bad argument to internal function') from None
    return real_from_path(cls, *args, **kwargs)

  monkeypatch.setattr(Interpolator, 'from_path', classmethod(stopped_inside_a_library_call))
  status = run_module.main([f'--input={tmp_path / "archive"}', f'--output={tmp_path / "out"}',
                            f'--model_path={model_path}', '--run_id=stopped'])
  stderr = capsys.readouterr().err
  assert status == 143 and 'cannot load' not in stderr
  # (it named a run whose folder was never made: "the work units in flight ... are made again")
  assert tool_lines(stderr) == [
      'interrupted (SIGTERM): stopped before run stopped began; nothing of it was written (the '
      'same command runs the job)']
  assert not os.path.exists(tmp_path / 'out' / '_runs' / 'stopped')


def test_sigterm_after_the_job_ended_is_one_line_naming_its_records(tmp_path, tiny_model,
                                                                    monkeypatch, capsys):
  """A stop arriving while the ended run's summary was read and printed was a traceback."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 2, seed=8)
  real_read = run_module.read_summary

  def terminated(output, run_id):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)  # the handler interrupts this
    return real_read(output, run_id)

  monkeypatch.setattr(run_module, 'read_summary', terminated)
  status = run_module.main([f'--input={tmp_path / "archive"}', f'--output={tmp_path / "out"}',
                            f'--model_path={model_path}', '--run_id=ended'])
  stderr = capsys.readouterr().err
  assert status == 143 and 'Traceback' not in stderr
  summary = os.path.join(tmp_path, 'out', '_runs', 'ended')
  assert f'interrupted: run ended had ended; its summary is in {summary}' in stderr
  assert os.path.exists(os.path.join(summary, 'summary.json'))
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_stop_just_after_the_summary_is_written_names_the_ended_run(tmp_path, tiny_model,
                                                                       monkeypatch, capsys):
  """A stop in the instant between the run's summary and the job's return said "run stopped;
  the same command finishes the job" of a job that had ended (the re-run skipped everything).
  A reused --run_id's earlier summary is no sign of an end: stopped before its job, a run
  stopped."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 2, seed=8)
  argv = [f'--input={tmp_path / "archive"}', f'--output={tmp_path / "out"}',
          f'--model_path={model_path}', '--run_id=last']
  summary = os.path.join(tmp_path, 'out', '_runs', 'last')
  real_process = records.WriteSummary.process

  def stopped_once_written(self, *args, **kwargs):
    yield from real_process(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)  # the handler interrupts this

  with monkeypatch.context() as patched:
    patched.setattr(records.WriteSummary, 'process', stopped_once_written)
    status = run_module.main(argv)
  stderr = capsys.readouterr().err
  assert status == 143 and 'Traceback' not in stderr
  assert f'interrupted: run last had ended; its summary is in {summary}' in stderr
  assert 'the same command finishes the job' not in stderr

  real_from_path = Interpolator.from_path.__func__

  def stopped_while_loading(cls, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    return real_from_path(cls, *args, **kwargs)

  monkeypatch.setattr(Interpolator, 'from_path', classmethod(stopped_while_loading))
  status = run_module.main(argv)
  stderr = capsys.readouterr().err
  assert status == 143 and (  # (not the ended run's line: this one had not begun)
      'interrupted (SIGTERM): stopped before run last began; nothing of it was written' in stderr)


def test_a_pair_failing_under_reprocess_leaves_no_marker_over_its_removed_frames(
    tmp_path, tiny_model, monkeypatch):
  """`--reprocess` redoes pairs an earlier run marked done; one that fails now has its old
  in-betweens removed (they may be of other inputs or options), and so the marker vouching for
  them must go too, or every later run would skip a hole in the sequence."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 3, seed=13)
  output = str(tmp_path / 'out')
  argv = [f'--input={tmp_path / "archive"}', f'--output={output}', f'--model_path={model_path}',
          f'--times_to_interpolate={N}']
  run_module.run(argv + ['--run_id=first'])
  step = 2 ** N
  mend = _break_the_model(monkeypatch, lambda call: call > step - 1)  # from pair 1 on
  run_module.run(argv + ['--run_id=again', '--reprocess'])
  assert {r['pair']: r['status'] for r in run_records(output, 'again', 'pairs')} == {
      0: 'ok', 1: 'failed'}
  mend()
  last = run_module.run(argv + ['--run_id=last'])
  assert metric(last, 'pairs_skipped') == 1 and metric(last, 'model_calls') == step - 1
  assert sorted(os.listdir(os.path.join(output, 'clip'))) == [
      frame_name(k) for k in range(2 * step + 1)]


def test_a_pair_two_overlapping_runs_marked_for_different_inputs_is_made_again(tmp_path,
                                                                                tiny_model):
  """Run A starts on a frame's version 1 and deletes the pair's old marker; the frame is
  replaced and run B makes and marks the pair from version 2; A, slower, then writes its
  in-betweens (from version 1) over B's and marks them for version 1. B's marker still matched
  the input, so every later run skipped A's stale frames. Two keys for one pair's frames now
  mean the pair is made again."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'clip', 3, seed=21)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          f'--times_to_interpolate={N}']
  run_module.run(argv + ['--run_id=first'])
  make_clip(tmp_path / 'v2', 3, seed=22)
  os.replace(tmp_path / 'v2' / 'frame002.png', archive / 'clip' / 'frame002.png')
  assert metric(run_module.run(argv + ['--run_id=b']), 'pairs_ok') == 1
  # What A leaves behind: its in-betweens of pair 1 over B's, and its marker beside B's.
  markers = os.path.join(output, '_markers', 'clip')
  (b_marker,) = [m for m in os.listdir(markers) if m.startswith('pair_000001-')]
  stale = np.zeros((48, 64, 3), np.uint8)
  for k in range(STEP + 1, 2 * STEP):
    Image.fromarray(stale).save(os.path.join(output, 'clip', frame_name(k)))
  with open(os.path.join(markers, b_marker.rsplit('-', 1)[0] + '-' + 'f' * 20 + '.done'),
            'w') as f:
    json.dump({'run_id': 'a', 'job': 'a'}, f)
  after = run_module.run(argv + ['--run_id=after'])
  assert metric(after, 'pairs_skipped') == 1 and metric(after, 'model_calls') == STEP - 1
  assert len(os.listdir(markers)) == 2 and b_marker in os.listdir(markers)  # A's is gone
  fresh = str(tmp_path / 'fresh')
  run_module.run([f'--input={archive}', f'--output={fresh}', f'--model_path={model_path}',
                  f'--times_to_interpolate={N}', '--run_id=fresh'])
  for k in range(2 * STEP + 1):
    np.testing.assert_array_equal(read_png(os.path.join(output, 'clip', frame_name(k))),
                                  read_png(os.path.join(fresh, 'clip', frame_name(k))))
  assert metric(run_module.run(argv + ['--run_id=last']), 'pairs_skipped') == 2


def test_a_frame_removed_while_its_pair_is_marked_done_fails_the_pair(tmp_path, tiny_model,
                                                                      monkeypatch):
  """A run overlapping this one on the output that fails the same pair removes its frames; if
  that lands between this run's frame writes and its marker, the marker must not stay."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 3, seed=14)
  output = str(tmp_path / 'out')
  argv = [f'--input={tmp_path / "archive"}', f'--output={output}', f'--model_path={model_path}',
          f'--times_to_interpolate={N}']
  real_write = files.write_atomic

  def the_other_run_removes_a_frame_first(path, data, tmp_root):
    if path.endswith('.done') and os.path.basename(path).startswith('pair_000001'):
      os.remove(os.path.join(output, 'clip', frame_name(2 ** N + 1)))
    return real_write(path, data, tmp_root)

  monkeypatch.setattr(files, 'write_atomic', the_other_run_removes_a_frame_first)
  run_module.run(argv + ['--run_id=racing'])
  pairs = {r['pair']: r for r in run_records(output, 'racing', 'pairs')}
  assert pairs[0]['status'] == 'ok' and pairs[1]['status'] == 'failed'
  assert 'deleted while the pair was marked done' in pairs[1]['error']
  # Its marker is gone now, not only at the next run's tidy (which misses what it cannot see).
  markers = os.listdir(os.path.join(output, '_markers', 'clip'))
  assert [m for m in markers if m.startswith('pair_000000-')]
  assert not [m for m in markers if m.startswith('pair_000001-')]
  monkeypatch.setattr(files, 'write_atomic', real_write)
  last = run_module.run(argv + ['--run_id=last'])
  assert metric(last, 'pairs_skipped') == 1 and metric(last, 'model_calls') == 2 ** N - 1
  assert len(os.listdir(os.path.join(output, 'clip'))) == 2 * 2 ** N + 1

  # Where the marker cannot be withdrawn (cloud storage failing), the pair fails all the same,
  # the job goes on (the delete's error stopped it), and the next run makes the pair again.
  from apache_beam.io.filesystem import BeamIOError  # pylint: disable=import-outside-toplevel
  real_delete = files.delete_files

  def storage_fails_deleting_markers(paths):
    if any(p.endswith('.done') for p in paths):
      raise BeamIOError('Delete operation failed', {p: files.BATCH_UNANSWERED for p in paths})
    return real_delete(paths)

  monkeypatch.setattr(files, 'write_atomic', the_other_run_removes_a_frame_first)
  monkeypatch.setattr(files, 'delete_files', storage_fails_deleting_markers)
  run_module.run(argv + ['--run_id=unwithdrawn', '--reprocess'])
  pairs = {r['pair']: r for r in run_records(output, 'unwithdrawn', 'pairs')}
  assert pairs[0]['status'] == 'ok' and pairs[1]['status'] == 'failed'
  assert pairs[1]['error'].startswith('done marker ') and (
      'not withdrawn (Delete operation failed' in pairs[1]['error'] and
      'deleted while the pair was marked done' in pairs[1]['error'])
  monkeypatch.undo()
  again = run_module.run(argv + ['--run_id=again'])
  assert metric(again, 'pairs_skipped') == 1 and metric(again, 'model_calls') == 2 ** N - 1
  assert len(os.listdir(os.path.join(output, 'clip'))) == 2 * 2 ** N + 1


@pytest.mark.parametrize('flags,message', [
    (['--tile=32'], 'argument --tile: must be 0 (whole frames) or >= 64, got 32'),
    (['--tile=64', '--tile_overlap=64'], '--tile_overlap (64) must be at most half of --tile'),
    (['--tile=64', '--tile_overlap=33'], '--tile_overlap (33) must be at most half of --tile'),
    (['--align=100000'], 'argument --align: must be in [0, 1024], got 100000'),
    (['--tile_overlap=16'], '--tile_overlap only works with --tile')])
def test_tile_flags_the_model_cannot_run_are_usage_errors(tmp_path, capsys, flags, message):
  status = run_module.main([f'--input={tmp_path}', f'--output={tmp_path / "out"}', *flags])
  assert status == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize('value', ['0', '0.1', '3601', 'nan'])
def test_a_progress_interval_out_of_range_is_a_usage_error(tmp_path, capsys, value):
  """It was clamped to 0.5-10 s without a word (0 printed the last line twice)."""
  status = run_module.main([f'--input={tmp_path}', f'--output={tmp_path / "out"}',
                            f'--progress_interval={value}'])
  assert status == 2 and (f'argument --progress_interval: must be in [0.5, 3600], got {value}'
                          in capsys.readouterr().err)


@pytest.mark.parametrize('flags', [[], ['--no_scene_cuts'], ['--scene_cuts=false']])
def test_a_scene_cut_threshold_with_detection_off_is_a_usage_error(tmp_path, capsys, flags):
  """It was ignored without a word: a real cut cross-faded, the summary showing the threshold
  beside `scene_cuts: false`."""
  status = run_module.main([f'--input={tmp_path}', f'--output={tmp_path / "out"}', *flags,
                            '--scene_cut_threshold=0.1'])
  assert status == 2 and ('--scene_cut_threshold only works with --scene_cuts'
                          in capsys.readouterr().err)
  assert not (tmp_path / 'out').exists()


def test_killed_run_is_completed_by_a_rerun(tmp_path, tiny_model):
  """Simulates a kill: some frames, markers and temporaries missing or left; a re-run repairs."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  frames = make_clip(archive / 'clip', 5, seed=4)
  status, _ = run_job(str(archive), output, model_path, '--pairs_per_unit=1')
  assert status == 0
  clip_dir = os.path.join(output, 'clip')
  complete = {n: read_png(os.path.join(clip_dir, n)) for n in os.listdir(clip_dir)}
  # The kill hit pairs 2 and 3: their later frames and markers are gone, a temp file is left.
  for name in ('frame_000005.png', 'frame_000006.png', 'frame_000007.png', 'frame_000008.png'):
    os.remove(os.path.join(clip_dir, name))
  for marker in glob.glob(os.path.join(output, '_markers', 'clip', 'pair_00000[23]-*')):
    os.remove(marker)
  os.makedirs(os.path.join(output, '_tmp', 'killed'))
  open(os.path.join(output, '_tmp', 'killed', 'x.partial'), 'wb').write(b'\x89PNG half')
  # ... and Beam's record shards it never finished, beside the killed run's started.json.
  shards = os.path.join(output, '_runs', 'killed', 'beam-temp-pairs-0123')
  os.makedirs(shards)
  open(os.path.join(shards, 'shard'), 'w').write('{"pair": 2}\n')
  open(os.path.join(output, '_runs', 'killed', 'started.json'), 'w').write('{}')
  day_ago = time.time() - run_module.STALE_TEMPORARIES_SECONDS - 60
  for path in ('_tmp/killed/x.partial', '_tmp/killed', '_runs/killed/beam-temp-pairs-0123/shard',
               '_runs/killed/beam-temp-pairs-0123'):
    os.utime(os.path.join(output, path), (day_ago, day_ago))
  # Another run still writing on the same output keeps its temporaries.
  os.makedirs(os.path.join(output, '_tmp', 'running'))
  open(os.path.join(output, '_tmp', 'running', 'y.partial'), 'wb').write(b'\x89PNG being written')
  # What else lies in `_tmp` (linked to a scratch disk) is no run's: it stays, however old; a
  # folder of a run whose `_runs/<run_id>` is gone (or, before 2026-12-02, not yet made) goes.
  for folder in ('olddir', '20261130T010000Z-1a2b3c'):
    os.makedirs(os.path.join(output, '_tmp', folder))
  for path in ('_tmp/important.txt', '_tmp/olddir/a.txt', '_tmp/20261130T010000Z-1a2b3c/b'):
    open(os.path.join(output, path), 'w').write('keep')
  for path in ('_tmp/important.txt', '_tmp/olddir/a.txt', '_tmp/olddir',
               '_tmp/20261130T010000Z-1a2b3c/b', '_tmp/20261130T010000Z-1a2b3c'):
    os.utime(os.path.join(output, path), (day_ago, day_ago))
  status, run_id = run_job(str(archive), output, model_path, '--pairs_per_unit=1')
  assert status == 0
  assert sorted(os.listdir(clip_dir)) == sorted(complete)
  for name, pixels in complete.items():
    np.testing.assert_array_equal(read_png(os.path.join(clip_dir, name)), pixels)
  assert sorted(os.listdir(os.path.join(output, '_tmp'))) == ['important.txt', 'olddir', 'running']
  assert os.listdir(os.path.join(output, '_tmp', 'running')) == ['y.partial']
  assert os.listdir(os.path.join(output, '_runs', 'killed')) == ['started.json']
  statuses = sorted(p['status'] for p in run_records(output, run_id, 'pairs'))
  assert statuses == ['ok', 'ok', 'skipped', 'skipped']
  np.testing.assert_array_equal(read_png(os.path.join(clip_dir, 'frame_000008.png')), frames[4])


def test_a_failed_write_of_frame_0_is_redone_by_the_next_run(tmp_path, tiny_model):
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  frames = make_clip(archive / 'clip', 3, seed=5)
  blocker = os.path.join(output, 'clip', 'frame_000000.png')
  os.makedirs(blocker)  # A folder where the frame goes: its write fails.
  status, run_id = run_job(str(archive), output, model_path)
  assert status == 1
  statuses = {p['pair']: p['status'] for p in run_records(output, run_id, 'pairs')}
  assert statuses == {0: 'failed', 1: 'ok'}
  assert any(e['stage'] == 'write' for e in run_records(output, run_id, 'errors'))
  # The failed pair's in-between was made: the summary counts the model's work like the metric.
  assert {p['pair']: p['model_calls'] for p in run_records(output, run_id, 'pairs')} == {0: 1, 1: 1}
  summary = json.load(open(os.path.join(output, '_runs', run_id, 'summary.json')))
  assert summary['model_calls'] == 2
  os.rmdir(blocker)
  status, run_id = run_job(str(archive), output, model_path)
  assert status == 0
  statuses = {p['pair']: p['status'] for p in run_records(output, run_id, 'pairs')}
  assert statuses == {0: 'ok', 1: 'skipped'}
  np.testing.assert_array_equal(read_png(blocker), frames[0])


def test_a_clips_colour_profile_is_in_every_frame_written(tmp_path, tiny_model):
  from PIL import ImageCms  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  profile = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  for i, frame in enumerate(make_clip(tmp_path / 'plain', 3, seed=6)):
    (archive / 'clip').mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(archive / 'clip' / f'f{i}.jpg', quality=95, icc_profile=profile)
  status, _ = run_job(str(archive), output, model_path)
  assert status == 0
  names = sorted(os.listdir(os.path.join(output, 'clip')))
  assert len(names) == 5
  for name in names:
    assert Image.open(os.path.join(output, 'clip', name)).info.get('icc_profile') == profile


def test_film_scans_in_16_bit_tiff_and_10_bit_dpx_keep_their_depth(tmp_path, tiny_model,
                                                                   monkeypatch):
  """Film scans come as 16-bit RGB TIFF or 10-bit DPX: originals are written as 16-bit PNG with
  every bit (a DPX's 10 bits on top), in-betweens in 16 bit from the full-depth frames. A new
  DPX reader redoes the pairs made from DPX, and only those."""
  tifffile = pytest.importorskip('tifffile', reason='tifffile (installed with scikit-image) '
                                 'writes 16-bit colour TIFF')
  model_path, model = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  plain = make_clip(tmp_path / 'plain', 3, seed=8)
  # Low bits set, so that a truncation to 8 bit would show.
  scans = {'tiff': [f.astype(np.uint16) * 257 ^ np.uint16(i + 1) for i, f in enumerate(plain)],
           'dpx': [(f.astype(np.uint16) << 2) + np.uint16(i + 1) for i, f in enumerate(plain)]}
  for clip in scans:
    (archive / clip).mkdir(parents=True)
  for i, (tiff, ten) in enumerate(zip(scans['tiff'], scans['dpx'])):
    tifffile.imwrite(archive / 'tiff' / f'scan_{i:04d}.tif', tiff, photometric='rgb',
                     compression='zlib', predictor=True)
    (archive / 'dpx' / f'scan_{i:04d}.dpx').write_bytes(write_dpx(ten, 10))
  status, _ = run_job(str(archive), output, model_path, '--times_to_interpolate=1')
  assert status == 0
  for clip, frames in scans.items():
    sixteen = [f if clip == 'tiff' else f << 6 | f >> 4 for f in frames]
    written = [images.decode(open(os.path.join(output, clip, frame_name(i)), 'rb').read())
               for i in range(5)]
    for i, frame in enumerate(sixteen):
      np.testing.assert_array_equal(written[2 * i].pixels, frame)
    expected = model.recursive([f.astype(np.float32) / 65535 for f in sixteen],
                               times_to_interpolate=1)
    for i in (1, 3):
      assert written[i].pixels.dtype == np.uint16
      np.testing.assert_array_equal(
          written[i].pixels, (np.clip(expected[i], 0, 1) * 65535 + 0.5).astype(np.uint16))
  monkeypatch.setattr(interpolate, 'DPX_READ_VERSION', interpolate.DPX_READ_VERSION + 1)
  status, run_id = run_job(str(archive), output, model_path, '--times_to_interpolate=1')
  by_clip = {(r['clip'], r['status']) for r in run_records(output, run_id, 'pairs')}
  assert status == 0 and by_clip == {('dpx', 'ok'), ('tiff', 'skipped')}


def test_a_reused_run_id_replaces_the_earlier_runs_records(tmp_path, tiny_model):
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'clip', 4, seed=7)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          '--run_id=nightly', '--pairs_per_unit=1']
  assert run_module.main(argv) == 0
  assert run_module.main(argv[:-1] + ['--pairs_per_unit=3']) == 0  # other shards this time
  statuses = [p['status'] for p in run_records(output, 'nightly', 'pairs')]
  assert statuses == ['skipped'] * 3  # the second run's records only


def test_a_unit_notes_its_progress_as_its_pairs_come_out(tmp_path, tiny_model, monkeypatch):
  """The note was written once a unit was through: a unit of 16 pairs of 1080p showed '0/16
  pairs, 0 frames written, ETA ?' for its 10-20 minutes. Skipped pairs count as through."""
  from transforms import interpolate as interpolate_fn  # pylint: disable=import-outside-toplevel
  from transforms import records  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'clip', 6, seed=3)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          '--pairs_per_unit=16']
  assert run_module.main(argv + ['--run_id=first']) == 0
  os.remove(next(glob.iglob(os.path.join(output, '_markers', 'clip', 'pair_000003-*.done'))))
  os.remove(next(glob.iglob(os.path.join(output, '_markers', 'clip', 'pair_000004-*.done'))))
  noted = []
  real_note = records.progress_note
  monkeypatch.setattr(records, 'progress_note', lambda folder, name, note: (
      noted.append(note) if name.startswith('unit-') else None, real_note(folder, name, note)))
  monkeypatch.setattr(interpolate_fn, 'PROGRESS_NOTE_SECONDS', 0)
  assert run_module.main(argv + ['--run_id=again']) == 0
  assert [(n['pairs'], n['processed']) for n in noted] == [(4, 1), (5, 2), (5, 2)]
  assert noted[-1]['frames'] == 4 and noted[0]['frames'] <= noted[1]['frames'] <= 4


def test_the_eta_counts_only_pairs_this_run_made(tmp_path):
  notes = tmp_path / 'notes'
  notes.mkdir()
  (notes / 'clip-1.json').write_text(json.dumps({'pairs': 1000}))
  (notes / 'unit-a.json').write_text(json.dumps({'pairs': 900, 'processed': 0, 'frames': 0}))
  (notes / 'unit-b.json').write_text(json.dumps({'pairs': 10, 'processed': 10, 'frames': 20}))
  printer = progress.ProgressPrinter(str(notes), 10)
  try:
    printer._started = time.time() - 100  # pylint: disable=protected-access
    line = printer.line()
  finally:
    printer._stop.set()  # pylint: disable=protected-access
  # 10 pairs made in 100 s, 90 left: ~900 s (not the ~10 s that counting skipped pairs gives).
  assert 'progress: 910/1000 pairs' in line
  assert 850 <= int(line.rsplit('ETA ', 1)[1].rstrip('s')) <= 950


def test_once_pairs_are_made_the_eta_leaves_out_the_time_before_them(tmp_path):
  """The model's load, first trace and compile (seconds to a minute, once per process) went
  into every made pair's share: an ETA of 100 s with 16 s left."""
  notes = tmp_path / 'notes'
  notes.mkdir()
  (notes / 'clip-1.json').write_text(json.dumps({'pairs': 100}))
  (notes / 'unit-a.json').write_text(json.dumps({'pairs': 1, 'processed': 1, 'frames': 2}))
  printer = progress.ProgressPrinter(str(notes), 10)
  try:
    printer._started = time.time() - 60  # pylint: disable=protected-access
    first = printer.line()  # one pair in 60 s: all it knows
    (notes / 'unit-a.json').write_text(json.dumps({'pairs': 11, 'processed': 11, 'frames': 22}))
    printer._first_made = (time.time() - 5, 1)  # pylint: disable=protected-access
    then = printer.line()  # ten more in the 5 s since: 0.5 s each
  finally:
    printer._stop.set()  # pylint: disable=protected-access
  assert 5900 <= int(first.rsplit('ETA ', 1)[1].rstrip('s')) <= 6000  # 99 left, 60 s each
  assert 'progress: 11/100 pairs' in then and 40 <= int(then.rsplit('ETA ', 1)[1].rstrip('s')) <= 50


def test_progress_lines_repeat_only_once_a_minute(tmp_path, capsys):
  """A line each tick, counts moved or not: ~3,600 lines in a 10-hour night's log."""
  # pylint: disable=protected-access
  notes = tmp_path / 'notes'
  notes.mkdir()
  (notes / 'clip-1.json').write_text(json.dumps({'pairs': 4}))
  printer = progress.ProgressPrinter(str(notes), 0.5)
  time.sleep(2.2)  # four ticks, nothing moved: one line
  (notes / 'unit-a.json').write_text(json.dumps({'pairs': 2, 'processed': 2, 'frames': 3}))
  deadline = time.monotonic() + 60
  while printer._shown != (4, 2, 2, 3) and time.monotonic() < deadline:  # moved: one more
    time.sleep(0.05)
  printer._shown_at -= 60  # a minute without a line: the same counts again
  shown_at = printer._shown_at
  while printer._shown_at == shown_at and time.monotonic() < deadline:
    time.sleep(0.05)
  printer._stop.set()
  printer._thread.join()
  lines = [', '.join(line.split(', ')[:2]) for line in capsys.readouterr().out.splitlines()]
  assert lines == ['progress: 0/4 pairs, 0 frames written',
                   'progress: 2/4 pairs, 3 frames written', 'progress: 2/4 pairs, 3 frames written']


def test_progress_notes_are_read_once_and_again_only_when_replaced(tmp_path, monkeypatch):
  """Every tick read every clip's and unit's note: 0.7 s a tick at 40,000 notes, in the
  process that (in_memory) also does the work. A note a retried bundle replaces is read again."""
  from transforms import records  # pylint: disable=import-outside-toplevel
  notes = tmp_path / 'notes'
  notes.mkdir()
  records.progress_note(str(notes), 'clip-1.json', {'pairs': 4})
  records.progress_note(str(notes), 'unit-a.json', {'pairs': 2, 'processed': 2, 'frames': 3})
  opened = []
  monkeypatch.setattr(progress, 'open', lambda path, *a, **k: opened.append(path) or
                      open(path, *a, **k), raising=False)  # (the module's name before builtins')
  printer = progress.ProgressPrinter(str(notes), 10)
  try:
    assert 'progress: 2/4 pairs, 3 frames written' in printer.line() and len(opened) == 2
    assert 'progress: 2/4 pairs, 3 frames written' in printer.line() and len(opened) == 2
    records.progress_note(str(notes), 'unit-a.json', {'pairs': 2, 'processed': 2, 'frames': 5})
    records.progress_note(str(notes), 'unit-b.json', {'pairs': 2, 'processed': 2, 'frames': 2})
    assert 'progress: 4/4 pairs, 7 frames written' in printer.line()
    assert sorted(os.path.basename(p) for p in opened[2:]) == ['unit-a.json', 'unit-b.json']
  finally:
    printer._stop.set()  # pylint: disable=protected-access


def test_the_last_progress_line_is_not_the_last_ticks_again(tmp_path, capsys):
  """A run ending just after a tick printed the same line twice."""
  notes = tmp_path / 'notes'
  notes.mkdir()
  (notes / 'clip-1.json').write_text(json.dumps({'pairs': 2}))
  (notes / 'unit-a.json').write_text(json.dumps({'pairs': 1, 'processed': 1, 'frames': 3}))
  printer = progress.ProgressPrinter(str(notes), 0.5)
  _wait_for_a_tick(printer)
  printer.stop()
  assert capsys.readouterr().out.count('progress: 1/2 pairs, 3 frames written') == 1
  notes.mkdir()
  (notes / 'clip-1.json').write_text(json.dumps({'pairs': 2}))
  printer = progress.ProgressPrinter(str(notes), 0.5)
  _wait_for_a_tick(printer)
  (notes / 'unit-a.json').write_text(json.dumps({'pairs': 2, 'processed': 2, 'frames': 5}))
  printer.stop()  # what changed since the tick is shown
  out = capsys.readouterr().out
  assert 'progress: 0/2 pairs' in out and 'progress: 2/2 pairs, 5 frames written' in out


def _wait_for_a_tick(printer):
  deadline = time.monotonic() + 60
  while printer._shown is None and time.monotonic() < deadline:  # pylint: disable=protected-access
    time.sleep(0.05)


def test_a_progress_folder_removed_under_a_run_costs_only_progress_lines(tmp_path, capsys):
  """Another launcher that cannot see this process (another pid namespace sharing /tmp) may
  take its progress folder for a killed run's and remove it: the finished job must not fail."""
  notes = tmp_path / 'notes'
  notes.mkdir()
  (notes / 'clip-1.json').write_text(json.dumps({'pairs': 3}))
  printer = progress.ProgressPrinter(str(notes), 10)
  shutil.rmtree(notes)
  printer.stop()
  assert 'progress: 0/? pairs' in capsys.readouterr().out


def test_a_local_run_removes_the_progress_folders_of_killed_runs(tmp_path, tiny_model,
                                                                 monkeypatch):
  """A killed run cannot remove its progress folder; the next local run removes those whose
  launching process is gone, and leaves those of live runs and of unknown names."""
  from transforms import records  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))
  (tmp_path / 'tmp').mkdir()
  exited = subprocess.Popen(['true'])  # its pid names no process once it has exited
  exited.wait()
  killed = tmp_path / 'tmp' / f'film-progress-{exited.pid}-abc'
  live = tmp_path / 'tmp' / f'film-progress-{os.getpid()}-def'
  older = tmp_path / 'tmp' / 'film-progress-k2j4x8'
  for folder in (killed, live, older):
    folder.mkdir()
    (folder / 'unit-1.json').write_text('{}')
  make_clip(tmp_path / 'archive' / 'clip', 2, seed=9)
  status, _ = run_job(str(tmp_path / 'archive'), str(tmp_path / 'out'), model_path)
  assert status == 0
  left = sorted(p.name for p in (tmp_path / 'tmp').iterdir() if p.name.startswith('film-progress'))
  assert left == sorted([live.name, older.name])  # the run's own folder went at its end too
  # A note that cannot be written (its folder gone) costs the progress line, not the work.
  records.progress_note(str(tmp_path / 'no such folder'), 'unit-2.json', {'pairs': 1})


def test_the_sample_edit_has_one_scene_cut_where_its_shots_meet():
  from transforms import scene_cuts  # pylint: disable=import-outside-toplevel
  frames = [f.astype(np.float32) / 255 for f in sample_footage.edited_frames(5, 160, 96)]
  cuts = [i for i in range(9) if scene_cuts.cut_score(frames[i], frames[i + 1])
          > scene_cuts.DEFAULT_THRESHOLD]
  assert cuts == [4]


def test_writing_the_sample_footage_again_leaves_unchanged_frames_untouched(tmp_path):
  frames = sample_footage.render_frames(2, 32, 24, seed=0)
  paths = sample_footage.write_clip(str(tmp_path), frames)
  for path in paths:
    os.utime(path, (1_000_000, 1_000_000))
  sample_footage.write_clip(str(tmp_path), [frames[0], frames[1][::-1].copy()])
  assert os.path.getmtime(paths[0]) == 1_000_000 and os.path.getmtime(paths[1]) != 1_000_000


def _attempt(dofn, unit):
  """One worker's attempt at `unit` with the InterpolateUnits `dofn`: its pair records."""
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  dofn.setup()
  try:
    return [r for r in dofn.process(unit) if not isinstance(r, beam.pvalue.TaggedOutput)]
  finally:
    dofn.teardown()


def test_a_retried_unit_counts_the_pairs_its_first_attempt_made_as_made(tmp_path, tiny_model):
  """Beam retries a bundle whose worker failed and drops that attempt's records: the retry
  finds the first attempt's done markers, and those pairs are this run's work, not skips."""
  from transforms import clips  # pylint: disable=import-outside-toplevel
  model_path, model = tiny_model
  make_clip(tmp_path / 'clip', 3, seed=8)
  clip = clips.Clip('clip', tuple((str(p), 'v') for p in sorted((tmp_path / 'clip').iterdir())),
                    (True, True))
  (unit,) = clips.split_into_units(clip, N, 16)

  def job(progress_dir=None):  # as built by one launch of the pipeline, shipped to its workers
    return interpolate.InterpolateUnits(str(tmp_path / 'out'), 'nightly', model_path,
                                        model.fingerprint, N, 64, 10 ** 8, False,
                                        progress_dir=progress_dir)

  notes = tmp_path / 'progress'
  notes.mkdir()
  this_job = job(str(notes))
  first = _attempt(this_job, unit)
  retried = _attempt(this_job, unit)
  # The retried unit's progress note replaces the first attempt's: its pairs count once.
  (note,) = [json.loads((notes / name).read_text()) for name in os.listdir(notes)]
  assert note['pairs'] == 2
  later = _attempt(job(), unit)  # the next night's job, under the same --run_id
  assert [(r['status'], r['frames_written'], r['model_calls']) for r in first] == [
      ('ok', STEP + 1, STEP - 1), ('ok', STEP, STEP - 1)]
  assert [(r['status'], r['frames_written'], r['model_calls']) for r in retried] == [
      ('ok', STEP + 1, STEP - 1), ('ok', STEP, STEP - 1)]
  assert [r['status'] for r in later] == ['skipped', 'skipped']
  # Without detection no pair was scored, in either attempt.
  assert [(r['cut_score'], r['scene_cut']) for r in first + retried] == [(None, None)] * 4
  # A scene cut made by the first attempt is counted as one again: its frames, no model calls.
  _edited_clip(tmp_path / 'edited')
  clip = clips.Clip('edited', tuple((str(p), 'v') for p in sorted((tmp_path / 'edited').iterdir())),
                    (True,) * 5)
  (unit,) = clips.split_into_units(clip, N, 16)
  cutting = interpolate.InterpolateUnits(str(tmp_path / 'out'), 'nightly', model_path,
                                         model.fingerprint, N, 64, 10 ** 8, False,
                                         scene_cut_threshold=0.2)
  first, retried = _attempt(cutting, unit), _attempt(cutting, unit)
  assert [(r['scene_cut'], r['model_calls']) for r in first] == [
      (False, STEP - 1), (False, STEP - 1), (True, 0), (False, STEP - 1), (False, STEP - 1)]
  # (the size too: the retry's records had none, which only skipped pairs lack)
  fields = ('status', 'frames_written', 'scene_cut', 'identical', 'cut_score', 'model_calls',
            'size')
  assert [[r[f] for f in fields] for r in retried] == [[r[f] for f in fields] for r in first]
  assert all(r['size'] for r in retried)


def test_a_pair_whose_marker_has_a_rival_is_made_again(tmp_path, tiny_model):
  """Two jobs overlapped on a pair while its input changed: each deleted the markers it would
  outdate before its model ran, so both markers stay and the frames may be either's. A unit
  that finds a rival (same pair and output indices, another key) makes the pair again, also
  where planning's tidy did not see it (written since)."""
  from transforms import clips  # pylint: disable=import-outside-toplevel
  model_path, model = tiny_model
  make_clip(tmp_path / 'clip', 3, seed=8)
  clip = clips.Clip('clip', tuple((str(p), 'v') for p in sorted((tmp_path / 'clip').iterdir())),
                    (True, True))
  (unit,) = clips.split_into_units(clip, N, 16)

  def job():
    return interpolate.InterpolateUnits(str(tmp_path / 'out'), 'nightly', model_path,
                                        model.fingerprint, N, 64, 10 ** 8, False)

  _attempt(job(), unit)
  markers = tmp_path / 'out' / '_markers' / 'clip'
  (marker,) = [m for m in os.listdir(markers) if m.startswith('pair_000001-')]
  (markers / (marker.rsplit('-', 1)[0] + '-' + 'f' * 20 + '.done')).write_text(
      json.dumps({'run_id': 'other', 'job': 'other'}))
  again = _attempt(job(), unit)
  assert [(r['status'], r['model_calls']) for r in again] == [('skipped', 0), ('ok', STEP - 1)]
  assert sorted(m.startswith('pair_000001-') for m in os.listdir(markers)) == [False, True]
  assert [r['status'] for r in _attempt(job(), unit)] == ['skipped', 'skipped']


def test_a_stale_attempt_at_a_unit_leaves_what_the_kept_attempt_made(tmp_path, tiny_model,
                                                                    monkeypatch):
  """Dataflow may hand a unit to a second worker while the first, taken for lost, runs on; the
  second finishes and its records are kept. The first then failed a write and, cleaning up the
  failed pair, deleted the frame the kept attempt wrote there and its done marker: the run's
  records said done over a hole."""
  from apache_beam.internal import pickler  # pylint: disable=import-outside-toplevel
  from transforms import clips  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel
  model_path, model = tiny_model
  make_clip(tmp_path / 'clip', 4, seed=5)
  clip = clips.Clip('clip', tuple((str(p), 'v') for p in sorted((tmp_path / 'clip').iterdir())),
                    (True,) * 3)
  (unit,) = clips.split_into_units(clip, N, 16)
  stale = interpolate.InterpolateUnits(str(tmp_path / 'out'), 'nightly', model_path,
                                       model.fingerprint, N, 64, 10 ** 8, False)
  kept = pickler.loads(pickler.dumps(stale))  # the same job, shipped to a second worker

  victim = interpolate.frame_name(STEP + 2)  # an in-between of pair 1
  write, kept_records, raced = files.write_atomic, [], []

  def write_in_the_race(path, data, tmp):
    if path.endswith(victim) and not raced:  # the stale attempt's write of it, which waits
      raced.append(path)  # while the kept attempt runs whole, then fails
      kept_records.extend(_attempt(kept, unit))
      raise OSError('a transient write failure')
    return write(path, data, tmp)

  monkeypatch.setattr(files, 'write_atomic', write_in_the_race)
  stale_records = _attempt(stale, unit)
  assert [r['status'] for r in stale_records] == ['ok', 'failed', 'ok']
  assert [r['status'] for r in kept_records] == ['ok', 'ok', 'ok']
  frames = sorted(os.listdir(tmp_path / 'out' / 'clip'))
  assert frames == [interpolate.frame_name(k) for k in range(3 * STEP + 1)]
  monkeypatch.setattr(files, 'write_atomic', write)
  later = interpolate.InterpolateUnits(str(tmp_path / 'out'), 'nightly', model_path,
                                       model.fingerprint, N, 64, 10 ** 8, False)
  assert [r['status'] for r in _attempt(later, unit)] == ['skipped'] * 3  # markers all there


def test_done_markers_older_than_the_job_are_known_without_reading_them(tmp_path, tiny_model,
                                                                       monkeypatch):
  """A unit finds its done markers (a listing on GCS, a stat each locally); it reads one only
  where it may be this job's (written after the job's `started.json`, less the clock step): a
  retried bundle's first attempt, whose frames are checked again. Older markers are skipped
  unread, and without a `started.json` every marker found is read."""
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  from transforms import clips  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel
  from transforms import records  # pylint: disable=import-outside-toplevel
  model_path, model = tiny_model
  make_clip(tmp_path / 'clip', 3, seed=9)
  clip = clips.Clip('clip', tuple((str(p), 'v') for p in sorted((tmp_path / 'clip').iterdir())),
                    (True, True))
  (unit,) = clips.split_into_units(clip, N, 16)
  output = str(tmp_path / 'out')
  reads = []
  real_read = files.read_bytes
  monkeypatch.setattr(files, 'read_bytes', lambda path: reads.append(path) or real_read(path))

  def job():  # as one launch of the pipeline builds it, after writing its started.json
    records.write_started(output, 'nightly', {})
    return interpolate.InterpolateUnits(output, 'nightly', model_path, model.fingerprint, N, 64,
                                        10 ** 8, False)

  def attempt(dofn):
    reads.clear()
    dofn.setup()
    try:
      statuses = [r['status'] for r in dofn.process(unit)
                  if not isinstance(r, beam.pvalue.TaggedOutput)]
    finally:
      dofn.teardown()
    return statuses, sorted(os.path.basename(p).split('-')[0] for p in reads if '.done' in p)

  tonight = job()
  assert attempt(tonight)[0] == ['ok', 'ok']
  # A retried bundle: the markers are newer than the job, so they are read, and were its own.
  assert attempt(tonight) == (['ok', 'ok'], ['pair_000000', 'pair_000001'])
  # Its first attempt may have died before checking its frames: one gone is made again.
  lost = os.path.join(output, 'clip', frame_name(STEP + 1))
  os.remove(lost)
  assert attempt(tonight)[0] == ['ok', 'ok'] and os.path.exists(lost)
  hour_ago = time.time() - 3600
  for marker in glob.glob(os.path.join(output, '_markers', 'clip', '*.done')):
    os.utime(marker, (hour_ago, hour_ago))
  walked = []
  real_walk = os.walk
  monkeypatch.setattr(os, 'walk',
                      lambda top, *a, **k: walked.append(top) or real_walk(top, *a, **k))
  # The next night's job reads none, and stats its own markers rather than walk the folder
  # (a local listing stats every file in it: per unit, a long clip's every marker).
  assert attempt(job()) == (['skipped', 'skipped'], [])
  assert not walked
  os.remove(os.path.join(output, '_runs', 'nightly', records.STARTED))
  assert attempt(interpolate.InterpolateUnits(
      output, 'nightly', model_path, model.fingerprint, N, 64, 10 ** 8, False)) == (
          ['skipped', 'skipped'], ['pair_000000', 'pair_000001'])


def test_a_run_overlapping_another_does_not_fail_on_what_the_other_deleted(tmp_path,
                                                                           monkeypatch):
  """Two runs at once on one output (a nightly run started while the last still runs) list the
  same stale frames and markers; the second to delete must not fail for those the first got,
  and must still delete those the first has not got to yet."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  output = tmp_path / 'out'
  (output / 'clip').mkdir(parents=True)
  (output / '_markers' / 'clip').mkdir(parents=True)
  for i in range(9):
    (output / 'clip' / interpolate.frame_name(i)).write_bytes(b'frame')
  (output / '_markers' / 'clip' / 'pair_000001-000000005-000000008-abc.done').write_bytes(b'{}')
  (output / '_markers' / 'clip' / 'pair_000002-000000006-000000007-def.done').write_bytes(b'{}')
  real_match = files.match

  def match_then_the_other_run_deletes_some(path, pattern=None):
    listing = real_match(path, pattern)
    for m in listing:
      if m.path.endswith('abc.done') or (not m.path.endswith('.done')
                                         and int(m.path[-10:-4]) in (5, 7)):
        os.remove(m.path)
    return listing

  monkeypatch.setattr(files, 'match', match_then_the_other_run_deletes_some)
  assert interpolate.tidy_clip_output(str(output), 'clip', 4) == 4
  assert sorted(os.listdir(output / 'clip')) == [interpolate.frame_name(i) for i in range(5)]
  assert os.listdir(output / '_markers' / 'clip') == []


def test_local_deletes_are_by_name_and_a_file_gone_already_is_no_error(tmp_path):
  """Another unit or run may delete a file between our listing and our delete: the others must
  still go. Names are literal: Beam's local delete read `out [2]/x` as a pattern and deleted
  `out 2/x`."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  for folder in ('out [2]', 'out 2'):
    (tmp_path / folder).mkdir()
    for i in range(3):
      (tmp_path / folder / f'marker_{i}.done').write_bytes(b'{}')
  (tmp_path / 'out [2]' / 'marker_1.done').unlink()  # the other run was first
  files.delete_files([str(tmp_path / 'out [2]' / f'marker_{i}.done') for i in range(3)])
  assert os.listdir(tmp_path / 'out [2]') == []
  assert sorted(os.listdir(tmp_path / 'out 2')) == [f'marker_{i}.done' for i in range(3)]


def test_a_write_that_fails_leaves_no_temporary(tmp_path):
  from transforms import files  # pylint: disable=import-outside-toplevel
  with pytest.raises(OSError):
    files.write_atomic(str(tmp_path / ('x' * 300)), b'data', str(tmp_path / '_tmp'))
  assert os.listdir(tmp_path / '_tmp') == []


def test_a_write_survives_another_run_removing_the_empty_tmp_folder(tmp_path, monkeypatch):
  """A run's end removes `<output>/_tmp` when empty; another run's first write may have just
  made it and be about to make its own folder in it."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  tmp_root = tmp_path / 'out' / '_tmp' / 'run'
  real_mkdir = os.mkdir
  removed = []

  def the_other_run_ends_between(path, *args, **kwargs):
    if str(path) == str(tmp_root) and not removed:
      os.rmdir(tmp_root.parent)
      removed.append(path)
    return real_mkdir(path, *args, **kwargs)

  monkeypatch.setattr(os, 'mkdir', the_other_run_ends_between)
  files.write_atomic(str(tmp_path / 'out' / 'clip' / 'frame.png'), b'frame', str(tmp_root))
  assert removed and (tmp_path / 'out' / 'clip' / 'frame.png').read_bytes() == b'frame'


def test_a_listing_that_fails_is_not_taken_for_an_empty_folder(tmp_path, monkeypatch):
  """A folder not there yet lists as empty; a listing that fails (storage down) must raise, so
  that Beam retries the bundle, not leave stale markers to vouch for frames about to change."""
  from apache_beam.io.filesystem import BeamIOError  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel
  output = str(tmp_path / 'out')
  assert interpolate.output_frames(output, 'clip') == []
  interpolate.delete_markers(output, 'clip', [(0, 10)])  # nothing there yet: no error

  def storage_down(path, pattern=None):
    raise BeamIOError('List operation failed', {path: OSError('service unavailable')})

  monkeypatch.setattr(files, 'match', storage_down)
  with pytest.raises(BeamIOError):
    interpolate.delete_markers(output, 'clip', [(0, 10)])
  with pytest.raises(BeamIOError):
    interpolate.tidy_clip_output(output, 'clip', 4)


def test_a_clips_listed_markers_give_every_one_that_meets_a_units_spans():
  """`EarlierMarkers` finds the markers meeting a unit's output indices in its one listing
  without going through them all: never missing one (markers of any width, those of pairs that
  write nothing, the naming without index ranges), never one dropped as deleted."""
  rng = np.random.default_rng(5)
  listed = [(f'pair_{i}', None, None) for i in range(3)]
  for i in range(400):
    lo = int(rng.integers(0, 2000))
    listed.append((f'm{i}', lo, lo + int(rng.integers(-1, 40))))
  cache = interpolate.EarlierMarkers()
  cache._clips[('job', 'out', 'clip')] = interpolate._ClipMarkers(listed)  # pylint: disable=protected-access
  dropped = {'pair_1', 'm7', 'm8'}
  cache.drop('job', 'out', 'clip', dropped)
  for _ in range(50):
    spans = [(int(a), int(a + rng.integers(-1, 30))) for a in rng.integers(0, 2100, 3)]
    found = {path for path, _, _ in cache.meeting('job', 'out', 'clip', spans)}
    meets = {path for path, lo, hi in listed
             if lo is None or any(lo <= b and a <= hi for a, b in spans)}
    assert meets - dropped <= found and not found & dropped


def test_a_clips_markers_are_listed_once_per_job_while_kept(monkeypatch):
  """A process lists a clip's markers for its first unit with work; its later units, in the
  same job, use that listing while it is kept (the most recent clips, by weight); another job
  lists again."""
  listings = []

  def listed(output, clip):
    listings.append((output, clip))
    return [(f'{clip}/pair_{i}', 2 * i, 2 * i + 1) for i in range(50)]

  monkeypatch.setattr(interpolate, 'listed_markers', listed)
  cache = interpolate.EarlierMarkers(max_markers=2 * (50 + interpolate.EarlierMarkers.CLIP_WEIGHT))
  for job, clip in [('j', 'a'), ('j', 'a'), ('j', 'b'), ('j', 'a'), ('j', 'c'), ('j', 'b'),
                    ('j', 'a'), ('k', 'a')]:
    assert [p for p, _, _ in cache.meeting(job, 'out', clip, [(4, 5)])] == [f'{clip}/pair_2']
  # a, b kept; c pushes out b (a was used since); b again pushes out a; job k lists its own.
  assert [c for _, c in listings] == ['a', 'b', 'c', 'b', 'a', 'a']


def test_a_one_frame_clip_is_copied_once_and_a_rerun_leaves_it_alone(tmp_path):
  """A frame in no pair has no pair marker: it gets one of its own, keyed by the input file."""
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  from transforms import clips  # pylint: disable=import-outside-toplevel
  (frame,) = make_clip(tmp_path / 'clip', 1, seed=9)
  path = str(tmp_path / 'clip' / 'frame000.png')
  out = tmp_path / 'out' / 'clip' / 'frame_000000.png'

  def attempt(dofn, version):
    clip = clips.Clip('clip', ((path, version),), ())
    (unit,) = clips.split_into_units(clip, N, 16)
    return [r.value for r in dofn.process(unit) if isinstance(r, beam.pvalue.TaggedOutput)]

  def job(reprocess=False):  # a model is never needed for a lone frame: no setup
    return interpolate.InterpolateUnits(str(tmp_path / 'out'), 'nightly', None, 'fp', N, 64,
                                        10 ** 8, reprocess)

  first_job = job()
  assert attempt(first_job, '1:1') == [{'clip': 'clip', 'frames_written': 1}]
  np.testing.assert_array_equal(read_png(str(out)), frame)
  os.utime(out, (1_000_000, 1_000_000))
  assert attempt(first_job, '1:1') == [{'clip': 'clip', 'frames_written': 1}]  # a retry
  assert attempt(job(), '1:1') == []  # the next night: nothing written, nothing counted
  assert os.path.getmtime(out) == 1_000_000
  assert attempt(job(reprocess=True), '1:1') == [{'clip': 'clip', 'frames_written': 1}]
  assert os.path.getmtime(out) != 1_000_000  # --reprocess: written again
  os.utime(out, (1_000_000, 1_000_000))
  assert attempt(job(), '1:2') == [{'clip': 'clip', 'frames_written': 1}]  # the frame changed
  assert os.path.getmtime(out) != 1_000_000
  with open(path, 'wb') as f:  # it goes bad: its old copy is of an input that is no more
    f.write(b'not a frame')
  (error,) = attempt(job(), '1:3')
  assert path in error['message'] and 'not a readable image' in error['message']
  assert not out.exists() and not os.listdir(tmp_path / 'out' / '_markers' / 'clip')


def _frames_on_disk(folder):
  return {n: read_png(os.path.join(folder, n)) for n in sorted(os.listdir(folder))}


def test_going_back_to_earlier_options_redoes_what_other_options_overwrote(tmp_path, tiny_model):
  """A pair's done marker vouches for frames that a run with other options may have replaced
  since: such markers go as soon as their frames are rewritten or removed, also where the
  clip's markers were listed by another of its units (one pair per unit here)."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'clip', 3, seed=10)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}',
          '--pairs_per_unit=1']
  run_module.run(argv + ['--run_id=two', '--times_to_interpolate=2'])
  first = _frames_on_disk(os.path.join(output, 'clip'))
  assert len(first) == 9
  run_module.run(argv + ['--run_id=one', '--times_to_interpolate=1'])
  assert len(os.listdir(os.path.join(output, 'clip'))) == 5
  again = run_module.run(argv + ['--run_id=two-again', '--times_to_interpolate=2'])
  assert metric(again, 'pairs_skipped') == 0 and metric(again, 'model_calls') == 2 * 3
  got = _frames_on_disk(os.path.join(output, 'clip'))
  assert list(got) == list(first)
  for name, frame in first.items():
    assert np.abs(got[name].astype(int) - frame).max() <= 1, name


def test_markers_of_overlapping_runs_with_other_options_are_not_trusted(tmp_path, tiny_model):
  """Runs at N=1 and N=2 overlapped on one output: each deleted the other's markers it had
  listed, not those written since, so markers of both stood over frames of either, and every
  later run skipped pairs over the other run's frames, exit 0. (Here the N=1 run's markers,
  written after the N=2 run deleted them, are put back by hand.)"""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'clip', 4, seed=12)
  argv = [f'--input={archive}', f'--output={output}', f'--model_path={model_path}']
  run_module.run(argv + ['--run_id=one', '--times_to_interpolate=1'])
  made = _frames_on_disk(output / 'clip')
  markers = output / '_markers' / 'clip'
  ones = {name: (markers / name).read_bytes() for name in os.listdir(markers)}
  run_module.run(argv + ['--run_id=two', '--times_to_interpolate=2'])
  for name, data in ones.items():
    (markers / name).write_bytes(data)
  again = run_module.run(argv + ['--run_id=one-again', '--times_to_interpolate=1'])
  assert metric(again, 'pairs_skipped') == 0 and metric(again, 'model_calls') == 3
  got = _frames_on_disk(output / 'clip')
  assert list(got) == list(made)
  for name, frame in made.items():
    np.testing.assert_array_equal(got[name], frame)


def test_a_manifest_row_removed_then_restored_gets_its_frames_back(tmp_path, tiny_model):
  model_path, _ = tiny_model
  frames = make_clip(tmp_path / 'frames', 4, seed=11)
  names = sorted(os.listdir(tmp_path / 'frames'))
  rows = [f'c,frames/{a},frames/{b}' for a, b in zip(names, names[1:])]
  manifest, output = tmp_path / 'pairs.csv', str(tmp_path / 'out')
  argv = [f'--input={manifest}', f'--output={output}', f'--model_path={model_path}']
  manifest.write_text('\n'.join(rows))
  run_module.run(argv + ['--run_id=all'])
  first = _frames_on_disk(os.path.join(output, 'c'))
  assert len(first) == 7
  manifest.write_text('\n'.join([rows[0], rows[2]]))  # a gap: frames 0-2, 3 = frame 2, 4, 5
  run_module.run(argv + ['--run_id=gap'])
  assert len(os.listdir(os.path.join(output, 'c'))) == 6
  manifest.write_text('\n'.join(rows))
  restored = run_module.run(argv + ['--run_id=restored'])
  assert metric(restored, 'pairs_skipped') == 1  # only the first pair kept its frames
  got = _frames_on_disk(os.path.join(output, 'c'))
  assert list(got) == list(first)
  np.testing.assert_array_equal(got['frame_000004.png'], frames[2])
  for name, frame in first.items():
    assert np.abs(got[name].astype(int) - frame).max() <= 1, name


def test_the_runs_line_counts_in_words_and_says_how_many_more_than_listed(tmp_path, tiny_model,
                                                                         capsys):
  """'1 errors', '1 frames'; and past 50, the notices listed simply stopped."""
  model_path, _ = tiny_model
  for k in range(52):
    make_clip(tmp_path / 'archive' / f'lone{k:02d}', 1, width=8, height=8, seed=k)
  status, run_id = run_job(str(tmp_path / 'archive'), str(tmp_path / 'out'), model_path)
  out = capsys.readouterr().out
  assert status == 0
  assert '0 pairs (0 ok, 0 skipped, 0 failed), 0 errors and 52 notices, 52 frames in ' in out
  listed = [line for line in out.splitlines() if line.startswith('  - clip ')]
  assert [re.search(r'/(lone\d+) has only one frame', line)[1] for line in listed] == [
      f'lone{k:02d}' for k in range(50)]  # sorted: the same each night
  assert '  ... and 2 more in the errors-*.jsonl records' in out
  shutil.rmtree(tmp_path / 'archive')
  make_clip(tmp_path / 'archive' / 'clip', 2, seed=1)
  status, run_id = run_job(str(tmp_path / 'archive' / 'clip'), str(tmp_path / 'one'), model_path,
                           '--times_to_interpolate=0')
  assert status == 0 and '1 pair (1 ok, 0 skipped, 0 failed), 0 errors, 2 frames' in (
      capsys.readouterr().out)


def test_the_tools_own_warnings_read_as_its_lines_and_come_once(tmp_path, tiny_model):
  """They read 'WARNING:root:...' like a library's, and each worker process repeated the model's
  warning (as Beam's protobuf dump of the worker's log, with Beam's own start-up notes)."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 2, seed=3)
  flags = [f'--input={tmp_path / "archive"}', f'--output={tmp_path / "out"}',
           f'--model_path={model_path}', '--run_id=again', '--times_to_interpolate=0',
           '--precision=bfloat16']
  assert run_module.main(flags) == 0  # (its run id is used again below)
  rerun = subprocess.run(  # each worker process builds the model too
      [sys.executable, '-m', 'pipeline.run', *flags, '--direct_running_mode=multi_processing',
       '--direct_num_workers=2'], cwd=ROOT, capture_output=True, text=True, timeout=300)
  warnings = tool_lines(rerun.stderr)
  assert rerun.returncode == 0 and all(line.startswith('warning: ') for line in warnings)
  assert f'warning: --run_id again was used before on {tmp_path / "out"}' in rerun.stderr
  assert 'Worker:' not in rerun.stderr and 'Discarding unparseable' not in rerun.stderr
  bfloat16 = [line for line in warnings if 'bfloat16' in line]
  if not bfloat16_is_native():
    assert len(bfloat16) == 1 and 'no bfloat16 arithmetic' in bfloat16[0]


def test_a_worker_process_log_line_is_its_message_and_beams_own_notes_are_dropped(caplog):
  from apache_beam.portability.api import beam_fn_api_pb2  # pylint: disable=import-outside-toplevel
  from apache_beam.runners.portability import local_job_service  # pylint: disable=import-outside-toplevel
  launch.quiet_beam_logs()
  entry = beam_fn_api_pb2.LogEntry
  bundle = beam_fn_api_pb2.LogEntry.List(log_entries=[
      entry(severity=entry.Severity.WARN, message='Discarding unparseable args: [\'--x\']',
            log_location='/venv/apache_beam/options/pipeline_options.py:570'),
      entry(severity=entry.Severity.WARN, message='pruned "old": 3 files\nof a clip',
            log_location='/work/transforms/prune.py:91'),
      entry(severity=entry.Severity.ERROR, message='bundle failed',
            log_location='/venv/apache_beam/runners/worker/sdk_worker.py:300')])
  with caplog.at_level(logging.INFO):
    list(local_job_service.BeamFnLoggingServicer().Logging([bundle]))
  assert [r.getMessage() for r in caplog.records] == ['pruned "old": 3 files\nof a clip',
                                                      'bundle failed']


def test_a_clip_output_folder_on_another_disk_is_written(tmp_path, tiny_model, monkeypatch):
  """out/a linked to another disk, or `_markers` mounted apart: temporaries are written in
  `<output>/_tmp` and renamed into place, which the kernel refuses across filesystems (EXDEV), so
  every frame of the clip failed on every run. (The refusal is made here as the kernel makes
  it: the test's folders are on one disk.)"""
  import errno  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'a', 3, seed=1)
  output, other_disk = str(tmp_path / 'out'), [str(tmp_path / 'out' / 'a'),
                                                 str(tmp_path / 'out' / '_markers')]
  real_replace = os.replace

  def replace(src, dst, *args, **kwargs):
    apart = [any(os.fspath(p).startswith(d + os.sep) for d in other_disk) for p in (src, dst)]
    if apart[0] != apart[1]:
      raise OSError(errno.EXDEV, 'Invalid cross-device link', os.fspath(src), os.fspath(dst))
    return real_replace(src, dst, *args, **kwargs)
  monkeypatch.setattr(os, 'replace', replace)
  status, run_id = run_job(tmp_path / 'archive', output, model_path)
  assert status == 0 and run_records(output, run_id, 'errors') == []
  monkeypatch.setattr(os, 'replace', real_replace)
  fresh = str(tmp_path / 'fresh')
  assert run_job(tmp_path / 'archive', fresh, model_path)[0] == 0
  for folder in ('a', os.path.join('_markers', 'a')):
    names = sorted(os.listdir(os.path.join(fresh, folder)))
    assert sorted(os.listdir(os.path.join(output, folder))) == names  # no temporary left
    if folder == 'a':
      for name in names:
        assert (open(os.path.join(output, folder, name), 'rb').read() ==
                open(os.path.join(fresh, folder, name), 'rb').read()), name
  status, run_id = run_job(tmp_path / 'archive', output, model_path)  # done: all skipped
  assert status == 0 and {p['status'] for p in run_records(output, run_id, 'pairs')} == {'skipped'}


def test_a_clip_output_folder_linked_into_the_input_is_not_written(tmp_path, tiny_model):
  """out/reel linked to reel/interpolated, for delivery beside the scans: its frames were
  written into the archive, each next run read them as a new clip and wrote that one's inside
  it, one level deeper every night; linked to the clip's own folder, the next run overwrote the
  scans with in-betweens. Such a clip is an error record now, and the others are made; a link to
  a folder the input's discovery never reads is written as before."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'reel', 3, seed=1)
  make_clip(archive / 'other', 3, seed=2)
  scans = {p: p.read_bytes() for p in (archive / 'reel').iterdir()}
  output.mkdir()

  def linked(target):
    if os.path.islink(output / 'reel'):
      os.remove(output / 'reel')
    target.mkdir(parents=True, exist_ok=True)
    os.symlink(target, output / 'reel')

  for target in (archive / 'reel' / 'interpolated', archive / 'reel'):
    linked(target)
    for _ in range(2):
      status, run_id = run_job(str(archive), str(output), model_path)
      errors = run_records(str(output), run_id, 'errors')
      plan = [e for e in errors if e['stage'] == 'plan']
      assert status == 1 and len(plan) == 1 and plan[0]['uris'] == [str(output / 'reel')]
      assert plan[0]['message'] == (
          f'clip reel: its output folder {output / "reel"} leads to {target}, which --input '
          f'{archive} reads; nothing is written among the footage: link it elsewhere; its '
          f'pairs are not made')
      assert os.listdir(archive / 'reel' / 'interpolated') == []
      assert {p: p.read_bytes() for p in scans} == scans
      assert len(os.listdir(output / 'other')) == 5
  os.rmdir(archive / 'reel' / 'interpolated')
  # Folders the input's discovery never reads: hidden, outside what a glob selects, in an
  # earlier output kept in the archive.
  (archive / 'old' / '_runs' / 'r1').mkdir(parents=True)
  (archive / 'old' / '_runs' / 'r1' / 'summary.json').write_text('{}')
  for input_spec, target in ((archive, archive / '.delivery' / 'reel'),
                             (archive / 'r*', archive / 'delivery' / 'reel'),
                             (archive, archive / 'old' / 'reel')):
    linked(target)
    status, run_id = run_job(str(input_spec), str(output), model_path)
    assert status == 0 and len(os.listdir(target)) == 5
  # A manifest's clip whose output folder leads to its frames, or to another clip's.
  manifest = tmp_path / 'clips.csv'
  manifest.write_text('clip,frame0,frame1\nreel,archive/reel/frame000.png,'
                      'archive/reel/frame001.png\nother,archive/other/frame000.png,'
                      'archive/other/frame001.png\n')
  for target in (archive / 'reel', archive / 'other'):
    linked(target)
    status, run_id = run_job(str(manifest), str(output), model_path)
    error, = run_records(str(output), run_id, 'errors')
    assert status == 1 and error['message'].startswith(
        f'clip reel: its output folder {output / "reel"} leads to {target}, which holds frames '
        f'of --input {manifest}; nothing is written')
    assert {p: p.read_bytes() for p in scans} == scans
    assert len(os.listdir(archive / 'other')) == 3


def test_written_files_are_on_disk_before_they_take_their_names(tmp_path, monkeypatch):
  """Frames, markers and weight files: a rename of data still in the page cache, cut by a power
  loss, can leave the name on a zeroed or empty file, which a later run takes for done."""
  from film_net import weights as weights_lib  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel
  events, real_fsync, real_replace = [], os.fsync, os.replace
  monkeypatch.setattr(os, 'fsync', lambda fd: (events.append(('fsync', os.readlink(
      f'/proc/self/fd/{fd}'))), real_fsync(fd))[1])
  monkeypatch.setattr(os, 'replace', lambda src, dst: (events.append(('replace', src, dst)),
                                                       real_replace(src, dst))[1])
  frame = str(tmp_path / 'out' / 'a' / 'frame_000000.png')
  files.write_atomic(frame, b'x' * 1000, str(tmp_path / 'out' / '_tmp'))
  weights_lib.write_local_whole(str(tmp_path / 'latest.npz'), b'y' * 1000)
  assert [kind for kind, *_ in events] == ['fsync', 'replace'] * 2
  assert events[0][1] == events[1][1] and events[2][1] == events[3][1]  # the same temporary
  # Written under another name (the frame's in the run's _tmp/), never in place.
  assert events[1][1].startswith(str(tmp_path / 'out' / '_tmp') + os.sep)
  assert events[1][1].endswith('.partial') and events[1][2] == frame
  assert events[3][1] != events[3][2] == str(tmp_path / 'latest.npz')
  assert (tmp_path / 'out' / 'a' / 'frame_000000.png').read_bytes() == b'x' * 1000
