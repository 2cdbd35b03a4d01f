"""Retiming in the pipeline (`--input_fps` / `--output_fps`): each output frame is the dense
frame nearest its time, only the in-betweens taken are made, re-runs skip, a change of rate
redoes the clip and leaves no stale frames, and clips with gaps are refused by name."""

import fractions
import os

import numpy as np
import pytest

from conftest import make_clip, metric, read_png, run_job, run_records
from film_net import Interpolator
from pipeline import run as run_module
from transforms import retime

N = 2
F = fractions.Fraction


def _frames(folder):
  return sorted(os.listdir(folder))


_summary = run_module.read_summary


def test_retimed_frames_are_the_dense_frames_nearest_their_times(tmp_path, tiny_model):
  model_path, _ = tiny_model
  archive = tmp_path / 'archive'
  originals = make_clip(archive / 'reel', 6, seed=3)  # 5 pairs, in units of 2 pairs
  dense_out, out = str(tmp_path / 'dense'), str(tmp_path / 'retimed')
  common = [f'--times_to_interpolate={N}', '--pairs_per_unit=2']
  status, _ = run_job(str(archive), dense_out, model_path, *common)
  assert status == 0
  dense = _frames(os.path.join(dense_out, 'reel'))
  assert len(dense) == 5 * 2 ** N + 1

  status, run_id = run_job(str(archive), out, model_path, *common, '--input_fps=16',
                           '--output_fps=24')
  assert status == 0
  timing = retime.timing(N, 16, 24)
  names = _frames(os.path.join(out, 'reel'))
  # 5 frame intervals at 16 fps are 7.5 at 24 fps: frames 0 .. 7, the last at 7 * 2/3 = 4.67.
  assert names == [f'frame_{k:06d}.png' for k in range(8)]
  for k, name in enumerate(names):
    d = timing.dense_index(k)
    got = read_png(os.path.join(out, 'reel', name))
    np.testing.assert_array_equal(got, read_png(os.path.join(dense_out, 'reel', dense[d])),
                                  err_msg=f'{name} should be dense frame {d}')
    if d % 2 ** N == 0:
      np.testing.assert_array_equal(got, originals[d // 2 ** N])
  summary = _summary(out, run_id)
  assert summary['frames_written'] == 8
  assert summary['model_calls'] == 5 * 2  # the halving path to 3/4 or 1/4: 2, not 3, per pair
  assert summary['options']['input_fps'] == '16' and summary['options']['output_fps'] == '24'
  pairs = run_records(out, run_id, 'pairs')
  assert sorted(p['model_calls'] for p in pairs) == [2] * 5
  assert sum(p['frames_written'] for p in pairs) == 8

  again = run_module.run([f'--input={archive}', f'--output={out}', f'--model_path={model_path}',
                          *common, '--input_fps=16', '--output_fps=24', '--run_id=again'])
  assert metric(again, 'model_calls') == 0 and metric(again, 'pairs_skipped') == 5
  assert _frames(os.path.join(out, 'reel')) == names

  # Another delivery rate into the same folder: every pair redone, no frame of the old timing
  # left past the new end. On two threads sharing the model, as a Dataflow worker runs units:
  # each pair's calls still counted exactly.
  status, run_id = run_job(str(archive), out, model_path, *common, '--input_fps=16',
                           '--output_fps=20', '--direct_running_mode=multi_threading',
                           '--direct_num_workers=2')
  assert status == 0
  timing = retime.timing(N, 16, 20)
  calls = {p['pair']: p['model_calls'] for p in run_records(out, run_id, 'pairs')}
  assert calls == {i: len(retime.halving_path(
      {d - 4 * i for _, d in timing.outputs(4 * i + 1, 4 * i + 3)}, N)) for i in range(5)}
  names = _frames(os.path.join(out, 'reel'))
  assert names == [f'frame_{k:06d}.png' for k in range(timing.last_output(5 * 2 ** N) + 1)]
  assert len(names) == 7  # 5 intervals at 16 fps: 6.25 at 20 fps
  for k, name in enumerate(names):
    np.testing.assert_array_equal(
        read_png(os.path.join(out, 'reel', name)),
        read_png(os.path.join(dense_out, 'reel', dense[timing.dense_index(k)])))
  assert _summary(out, run_id)['pairs']['ok'] == 5


def test_a_lost_scan_keeps_the_later_frames_at_their_times(tmp_path, tiny_model):
  """Frames 0 1 2 _ 4 5 (scan 3 lost): retimed, the pair 2-4 spans two frame intervals, its
  in-betweens stand in for the lost frame, and frame 4 is shown at its own time, as the dense
  frame nearest each output time by the frame numbers; restoring the scan redoes the clip from
  there on as if never lost (the pairs before it are those of the whole clip)."""
  model_path, _ = tiny_model
  archive = tmp_path / 'archive'
  originals = make_clip(archive / 'reel', 6, seed=12)
  os.remove(archive / 'reel' / 'frame003.png')
  common = [f'--times_to_interpolate={N}', '--pairs_per_unit=2']
  dense_out, out = str(tmp_path / 'dense'), str(tmp_path / 'retimed')
  assert run_job(str(archive), dense_out, model_path, *common)[0] == 0  # the gap: a notice
  dense = _frames(os.path.join(dense_out, 'reel'))
  assert len(dense) == 4 * 2 ** N + 1
  status, run_id = run_job(str(archive), out, model_path, *common, '--input_fps=16',
                           '--output_fps=24')
  assert status == 0  # the gap's record is a notice: the run did all it could
  error, = run_records(out, run_id, 'errors')
  assert 'later frames keep their times' in error['message'] and error['severity'] == 'notice'
  assert (_summary(out, run_id)['errors'], _summary(out, run_id)['notices']) == (0, 1)
  # The dense frames' times in frame intervals, by brute force: pair 2 is two intervals long.
  step = 2 ** N
  times = [start + F(p, step) * length for start, length in ((0, 1), (1, 1), (2, 2), (4, 1))
           for p in range(step)] + [5]
  names = _frames(os.path.join(out, 'reel'))
  assert len(names) == 8  # up to 5 frame intervals: 4.67 at output 7 (one fewer if read as 4)
  for k, name in enumerate(names):
    time = F(k * 16, 24)
    d = min(range(len(times)), key=lambda c: (abs(times[c] - time), -c))
    np.testing.assert_array_equal(read_png(os.path.join(out, 'reel', name)),
                                  read_png(os.path.join(dense_out, 'reel', dense[d])),
                                  err_msg=f'{name} should be dense frame {d}')
  np.testing.assert_array_equal(read_png(os.path.join(out, 'reel', names[6])), originals[4])
  calls = {p['pair']: p['model_calls'] for p in run_records(out, run_id, 'pairs')}
  assert calls == {0: 2, 1: 2, 2: 3, 3: 2}  # pair 2 shows 1/4 and 3/4: both halving paths
  again = run_module.run([f'--input={archive}', f'--output={out}', f'--model_path={model_path}',
                          *common, '--input_fps=16', '--output_fps=24', '--run_id=again'])
  assert metric(again, 'model_calls') == 0 and metric(again, 'pairs_skipped') == 4

  make_clip(tmp_path / 'whole' / 'reel', 6, seed=12)
  os.replace(tmp_path / 'whole' / 'reel' / 'frame003.png', archive / 'reel' / 'frame003.png')
  whole = str(tmp_path / 'whole_out')
  retimed = [*common, '--input_fps=16', '--output_fps=24']
  status, restored = run_job(str(archive), out, model_path, *retimed)
  assert status == 0
  assert _summary(out, restored)['pairs'] == {'total': 5, 'ok': 3, 'skipped': 2, 'failed': 0}
  assert run_job(str(archive), whole, model_path, *retimed)[0] == 0
  assert _frames(os.path.join(out, 'reel')) == _frames(os.path.join(whole, 'reel'))
  for name in _frames(os.path.join(whole, 'reel')):
    np.testing.assert_array_equal(read_png(os.path.join(out, 'reel', name)),
                                  read_png(os.path.join(whole, 'reel', name)), err_msg=name)


def test_retimed_to_its_own_rate_a_clip_gets_its_lost_scan_back(tmp_path, tiny_model):
  """--input_fps 24 --output_fps 24 at N = 1 repairs a reel: every frame is its original,
  copied, and the lost one is the mid frame of its neighbours; one model call in all."""
  model_path, _ = tiny_model
  folder = tmp_path / 'archive' / 'reel'
  originals = make_clip(folder, 6, seed=15)
  os.remove(folder / 'frame003.png')
  out = str(tmp_path / 'out')
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path,
                           '--times_to_interpolate=1', '--input_fps=24', '--output_fps=24')
  assert status == 0  # the gap's record, a notice, fails nothing
  names = _frames(os.path.join(out, 'reel'))
  assert names == [f'frame_{k:06d}.png' for k in range(6)]
  for k in (0, 1, 2, 4, 5):
    np.testing.assert_array_equal(read_png(os.path.join(out, 'reel', names[k])), originals[k])
  floats = [f.astype(np.float32) / 255 for f in (originals[2], originals[4])]
  model = Interpolator.from_path(model_path)
  mid = (np.clip(model(*floats), 0, 1) * 255 + 0.5).astype(np.uint8)
  assert np.abs(read_png(os.path.join(out, 'reel', names[3])).astype(int) - mid).max() <= 1
  assert _summary(out, run_id)['model_calls'] == 1


def test_slower_delivery_drops_pairs_without_model_calls(tmp_path, tiny_model):
  """24 to 8 fps at N = 0: every third original, no model at all; pairs that write nothing are
  still done (and skipped by a re-run), and read only the originals they show."""
  model_path, _ = tiny_model
  originals = make_clip(tmp_path / 'archive' / 'clip', 7, seed=4)
  out = str(tmp_path / 'out')
  argv = ['--times_to_interpolate=0', '--input_fps=24', '--output_fps=8']
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path, *argv)
  assert status == 0
  names = _frames(os.path.join(out, 'clip'))
  assert names == ['frame_000000.png', 'frame_000001.png', 'frame_000002.png']
  for k, name in enumerate(names):
    np.testing.assert_array_equal(read_png(os.path.join(out, 'clip', name)), originals[3 * k])
  summary = _summary(out, run_id)
  assert summary['model_calls'] == 0 and summary['pairs']['ok'] == 6
  # A pair's size is that of the frames it read: pair 2 reads its second alone (frame 3).
  sizes = {r['pair']: r['size'] for r in run_records(out, run_id, 'pairs')}
  assert sizes == {p: [64, 48] if p in (0, 2, 3, 5) else None for p in range(6)}
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path, *argv)
  assert _summary(out, run_id)['pairs']['skipped'] == 6
  # A frame no output shows is not read: its being unreadable stops nothing.
  (tmp_path / 'archive' / 'clip' / 'frame004.png').write_bytes(b'not a png')
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path, *argv)
  assert status == 0 and run_records(out, run_id, 'errors') == []
  assert _summary(out, run_id)['pairs'] == {'total': 6, 'ok': 2, 'skipped': 4, 'failed': 0}


@pytest.mark.parametrize('argv,odd', [
    (['--times_to_interpolate=0', '--input_fps=24', '--output_fps=8'], 3),
    (['--times_to_interpolate=1', '--input_fps=24', '--output_fps=24'], 2)],
    ids=['24_to_8_N0', '24_to_24_N1'])
def test_a_retimed_clip_of_two_sizes_fails_where_they_meet(tmp_path, tiny_model, argv, odd):
  """Frames copied, not interpolated, were not checked: a retimed sequence held 64x48 frames
  and one 80x56, exit 0 and no record. At 24 to 8 fps frame 3 is the only frame its unit (pairs
  2-3) shows: the last frame shown before the unit's (frame 0), read for its size, is what it is
  checked against. (The odd frame, a readable original, is still written at its index.)"""
  model_path, _ = tiny_model
  folder = tmp_path / 'archive' / 'clip'
  make_clip(folder, 9, seed=5)
  make_clip(tmp_path / 'odd', odd + 1, width=80, height=56, seed=6)
  os.replace(tmp_path / 'odd' / f'frame{odd:03d}.png', folder / f'frame{odd:03d}.png')
  out = str(tmp_path / 'out')
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path, '--pairs_per_unit=2',
                           *argv)
  assert status == 1
  errors = run_records(out, run_id, 'errors')
  assert errors and all('frames differ in size' in e['message'] for e in errors)
  assert all(any(u.endswith(f'frame{odd:03d}.png') for u in e['uris']) for e in errors)
  failed = {r['pair'] for r in run_records(out, run_id, 'pairs') if r['status'] == 'failed'}
  assert failed == ({2, 5} if odd == 3 else {1, 2})  # those showing the odd frame and the next
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path, '--pairs_per_unit=2',
                           *argv)
  assert status == 1 and _summary(out, run_id)['pairs']['failed'] == 2  # tried again


@pytest.mark.parametrize('pairs_per_unit', [2, 16])
def test_retimed_only_the_frames_shown_are_size_checked_whatever_the_units(tmp_path, tiny_model,
                                                                        pairs_per_unit):
  """24 to 8 fps at N=0 shows frames 0, 3 and 6. An odd frame no output shows (4) is no error;
  a change of size between shown frames (3 on) is found across an unreadable frame no output
  shows (2). Units of two pairs read their first and last frames for the check, so both came
  out the other way round there (pairs failed over frame 4; frames 0 and 3 never compared)."""
  model_path, _ = tiny_model
  argv = ['--times_to_interpolate=0', '--input_fps=24', '--output_fps=8',
          f'--pairs_per_unit={pairs_per_unit}']
  hidden = tmp_path / 'hidden' / 'clip'
  make_clip(hidden, 9, seed=5)
  make_clip(tmp_path / 'odd', 5, width=80, height=56, seed=6)
  os.replace(tmp_path / 'odd' / 'frame004.png', hidden / 'frame004.png')
  status, run_id = run_job(str(tmp_path / 'hidden'), str(tmp_path / 'out_hidden'), model_path,
                           *argv)
  assert status == 0 and run_records(str(tmp_path / 'out_hidden'), run_id, 'errors') == []
  changed = tmp_path / 'changed' / 'clip'
  make_clip(changed, 3, seed=7)
  make_clip(tmp_path / 'later', 9, width=80, height=56, seed=8)
  for i in range(3, 9):
    os.replace(tmp_path / 'later' / f'frame{i:03d}.png', changed / f'frame{i:03d}.png')
  (changed / 'frame002.png').write_bytes(b'not a png')
  out = str(tmp_path / 'out_changed')
  status, run_id = run_job(str(tmp_path / 'changed'), out, model_path, *argv)
  assert status == 1
  error, = run_records(out, run_id, 'errors')
  assert error['uris'] == [str(changed / 'frame000.png'), str(changed / 'frame003.png')]
  assert 'frames differ in size' in error['message']


def test_a_pair_that_writes_nothing_between_missing_frames_stays_done(tmp_path, tiny_model):
  """24 to 12 fps at N=0 with frames 2 and 4 corrupt: pairs 1 and 3 fail every night, and
  output frames 1 and 2 stay missing. Pair 2 writes nothing (its marker's span is empty, between
  those frames): the planning's clean-up of markers over missing frames deleted it each night,
  and the pair was made again instead of skipped."""
  model_path, _ = tiny_model
  folder = tmp_path / 'archive' / 'clip'
  make_clip(folder, 7, seed=8)
  for i in (2, 4):
    (folder / f'frame{i:03d}.png').write_bytes(b'not a png')
  out = str(tmp_path / 'out')
  argv = ['--times_to_interpolate=0', '--input_fps=24', '--output_fps=12']
  for night in range(2):
    status, run_id = run_job(str(tmp_path / 'archive'), out, model_path, *argv)
    assert status == 1
  status_of = {r['pair']: r['status'] for r in run_records(out, run_id, 'pairs')}
  assert status_of == {0: 'skipped', 1: 'failed', 2: 'skipped', 3: 'failed', 4: 'skipped',
                       5: 'skipped'}


def test_a_failing_pair_leaves_no_frame_of_an_earlier_timing(tmp_path, tiny_model):
  """A retimed run over a folder an earlier run at another rate filled: a pair whose frame is
  corrupt writes nothing, and what the earlier run wrote in its span goes (it would show the
  wrong time). Units of one pair: each boundary frame is the earlier unit's to write."""
  model_path, _ = tiny_model
  archive = tmp_path / 'archive'
  make_clip(archive / 'clip', 6, seed=11)
  out, reference = str(tmp_path / 'out'), str(tmp_path / 'reference')
  common = [f'--times_to_interpolate={N}', '--pairs_per_unit=1', '--input_fps=16']
  assert run_job(str(archive), reference, model_path, *common, '--output_fps=24')[0] == 0
  assert run_job(str(archive), out, model_path, *common, '--output_fps=20')[0] == 0
  good = (archive / 'clip' / 'frame004.png').read_bytes()
  (archive / 'clip' / 'frame004.png').write_bytes(good[:100])  # cut short
  status, run_id = run_job(str(archive), out, model_path, *common, '--output_fps=24')
  assert status == 1
  error, = run_records(out, run_id, 'errors')  # reported once, by the unit owning the frame
  assert error['uris'][0].endswith('frame004.png') and error['stage'] == 'decode'
  timing = retime.timing(N, 16, 24)
  # Pairs 3 (frames 3-4) and 4 (4-5) failed: dense 13 .. 20, outputs 5 .. 7.
  assert [k for k, _ in timing.outputs(13, 20)] == [5, 6, 7]
  names = _frames(os.path.join(out, 'clip'))
  assert names == [f'frame_{k:06d}.png' for k in range(8) if k not in (5, 6, 7)]
  for name in names:
    np.testing.assert_array_equal(read_png(os.path.join(out, 'clip', name)),
                                  read_png(os.path.join(reference, 'clip', name)))
  (archive / 'clip' / 'frame004.png').write_bytes(good)
  status, run_id = run_job(str(archive), out, model_path, *common, '--output_fps=24')
  assert status == 0 and _summary(out, run_id)['pairs'] == {'total': 5, 'ok': 2, 'skipped': 3,
                                                            'failed': 0}
  assert _frames(os.path.join(out, 'clip')) == _frames(os.path.join(reference, 'clip'))


def test_held_pairs_keep_the_nearer_original_when_retimed(tmp_path, tiny_model):
  """A frame repeated by a transfer (one image twice) under --scene_cuts: its retimed
  in-between is the original itself, with no model call."""
  model_path, _ = tiny_model
  folder = tmp_path / 'archive' / 'clip'
  frames = make_clip(folder, 3, seed=5)
  os.replace(folder / 'frame001.png', folder / 'frame001.bak')
  (folder / 'frame001.png').write_bytes((folder / 'frame000.png').read_bytes())
  os.remove(folder / 'frame001.bak')
  out = str(tmp_path / 'out')
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path,
                           f'--times_to_interpolate={N}', '--input_fps=16', '--output_fps=24',
                           '--scene_cuts')
  assert status == 0
  # Output 1 (dense 3: pair 0, 3/4) holds frame 1 (= frame 0); output 2 (dense 5: pair 1, 1/4)
  # is the model's.
  np.testing.assert_array_equal(read_png(os.path.join(out, 'clip', 'frame_000001.png')),
                                frames[0])
  pairs = sorted(run_records(out, run_id, 'pairs'), key=lambda p: p['pair'])
  assert pairs[0]['identical'] is True and pairs[0]['model_calls'] == 0
  assert pairs[1]['identical'] is False and pairs[1]['model_calls'] == 2


def test_a_manifest_clip_with_a_gap_is_refused_and_the_others_run(tmp_path, tiny_model):
  model_path, _ = tiny_model
  make_clip(tmp_path / 'frames', 4, seed=6)
  manifest = tmp_path / 'clips.csv'
  manifest.write_text('clip,frame0,frame1\n'
                      'whole,frames/frame000.png,frames/frame001.png\n'
                      'whole,frames/frame001.png,frames/frame002.png\n'
                      'gappy,frames/frame000.png,frames/frame001.png\n'
                      'gappy,frames/frame002.png,frames/frame003.png\n')
  # 16 to 32 fps at N = 1 is the dense sequence: the gap has no times there either (the frame
  # after it came 1/32 s after the one before, all later frames early).
  for output_fps, whole in (('24', 4), ('32', 5)):
    out = str(tmp_path / f'out{output_fps}')
    status, run_id = run_job(str(manifest), out, model_path, '--input_fps=16',
                             f'--output_fps={output_fps}')
    assert status == 1
    error, = run_records(out, run_id, 'errors')
    assert error['stage'] == 'plan' and 'clip gappy' in error['message']
    assert error['uris'][0].endswith('frame001.png') and error['uris'][1].endswith('frame002.png')
    assert 'no times for --output_fps' in error['message']
    assert not os.path.exists(os.path.join(out, 'gappy'))
    assert _frames(os.path.join(out, 'whole')) == [f'frame_{k:06d}.png' for k in range(whole)]


@pytest.mark.parametrize('flags, message', [
    (['--output_fps=24'], '--input_fps and --output_fps go together'),
    (['--input_fps=16', '--output_fps=48'], 'use --times_to_interpolate 2 or more'),
    (['--input_fps=16', '--output_fps=0'], 'must be a positive frame rate'),
    (['--input_fps=1e400', '--output_fps=24'], 'from 0.000001 to 1000000, got \'1e400\''),
])
def test_frame_rate_usage_errors(tmp_path, capsys, flags, message):
  status = run_module.main([f'--input={tmp_path}', f'--output={tmp_path / "out"}', *flags])
  assert status == 2 and message in capsys.readouterr().err


def test_a_manifest_clip_keeps_its_lost_scans_times_as_its_folder_does(tmp_path, tiny_model):
  """A manifest's clip of one folder's frames 0 1 2 _ 4 5 had no notice of the lost scan and,
  retimed, showed frame 4 a source frame early, where the folder itself keeps its time. Frames
  of several folders (takes joined) say nothing by their numbers."""
  model_path, _ = tiny_model
  archive = tmp_path / 'archive'
  make_clip(archive / 'reel', 6, seed=12)
  os.remove(archive / 'reel' / 'frame003.png')
  make_clip(tmp_path / 'take2', 2, seed=13)
  rows = [f'reel,archive/reel/frame{a:03d}.png,archive/reel/frame{b:03d}.png'
          for a, b in ((0, 1), (1, 2), (2, 4), (4, 5))]
  rows += ['takes,archive/reel/frame000.png,archive/reel/frame001.png',
           'takes,archive/reel/frame001.png,take2/frame000.png',
           'takes,take2/frame000.png,take2/frame001.png']
  manifest = tmp_path / 'clips.csv'
  manifest.write_text('clip,frame0,frame1\n' + '\n'.join(rows) + '\n')
  retimed = [f'--times_to_interpolate={N}', '--input_fps=16', '--output_fps=24']
  folder_out, manifest_out = str(tmp_path / 'folder'), str(tmp_path / 'manifest')
  assert run_job(str(archive), folder_out, model_path, *retimed)[0] == 0
  status, run_id = run_job(str(manifest), manifest_out, model_path, *retimed)
  assert status == 0
  notice, = run_records(manifest_out, run_id, 'errors')
  assert notice['severity'] == 'notice' and notice['message'].startswith(
      f"clip 'reel' of {manifest}: frame numbers skip from frame002.png to frame004.png")
  names = _frames(os.path.join(folder_out, 'reel'))
  assert _frames(os.path.join(manifest_out, 'reel')) == names and len(names) == 8
  for name in names:
    np.testing.assert_array_equal(read_png(os.path.join(manifest_out, 'reel', name)),
                                  read_png(os.path.join(folder_out, 'reel', name)))
  assert len(_frames(os.path.join(manifest_out, 'takes'))) == 5  # 3 frame intervals at 24/16


def test_a_pair_that_shows_no_frame_is_skipped_again_after_its_input_or_rate_changed(
    tmp_path, tiny_model):
  """Its marker meets no output index, so none of its earlier markers was ever deleted: with
  another key beside it (a frame no output shows replaced; 24->8 then 24->6 fps) the pair was
  taken for contested and made again every night, and the markers piled up."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  originals = make_clip(archive / 'c', 13, seed=4)
  markers = os.path.join(output, '_markers', 'c')

  def night(*rates):
    status, run_id = run_job(str(archive), output, model_path, '--times_to_interpolate=1',
                             '--input_fps=24', *rates)
    assert status == 0
    return _summary(output, run_id)['pairs']

  assert night('--output_fps=8')['ok'] == 12
  make_clip(archive / 'other', 2, seed=9)  # frame 1, which no 8 fps frame shows, is replaced
  os.replace(archive / 'other' / 'frame000.png', archive / 'c' / 'frame001.png')
  assert night('--output_fps=8')['ok'] >= 1
  assert night('--output_fps=8')['skipped'] == 12
  night('--output_fps=6')
  assert night('--output_fps=6')['skipped'] == 12
  assert len(os.listdir(markers)) == 12
  np.testing.assert_array_equal(read_png(os.path.join(output, 'c', 'frame_000000.png')),
                                originals[0])


def test_retimed_frames_too_large_for_the_model_are_still_shown_as_originals(
    tmp_path, tiny_model, monkeypatch):
  """A frame the model could not run on in the machine's memory fails the pairs that would
  interpolate it; a pair that shows it as an original alone needs no model and is made."""
  from film_net import interpolator, memory  # pylint: disable=import-outside-toplevel
  model_path, model = tiny_model
  originals = make_clip(tmp_path / 'archive' / 'clip', 7, seed=6)  # 64x48, 6 pairs
  room = memory.frame_bytes(model.options, 32, 32, model.flip_average)
  monkeypatch.setattr(memory, 'machine_bytes', lambda: room)
  monkeypatch.setattr(interpolator, '_on_gpu', lambda: False)
  out = str(tmp_path / 'out')
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path,
                           '--times_to_interpolate=1', '--input_fps=24', '--output_fps=32')
  # Dense frames (2 to the pair) shown: 0 2 3 5 6 8 9 11 12; odd ones are in-betweens.
  timing = retime.timing(1, 24, 32)
  shown = {p: timing.outputs(2 * p + (p > 0), 2 * p + 2) for p in range(6)}
  interpolating = {p for p, outs in shown.items() if any(d % 2 for _, d in outs)}
  assert interpolating == {1, 2, 4, 5}
  assert status == 1 and _summary(out, run_id)['model_calls'] == 0
  for record in run_records(out, run_id, 'pairs'):
    if record['pair'] in interpolating:
      assert record['status'] == 'failed'
      assert 'a 64x48 frame is too large for this machine' in record['error']
    else:
      assert record['status'] == 'ok' and record['frames_written'] == len(shown[record['pair']])
  originals_shown = {k: d // 2 for p in (0, 3) for k, d in shown[p]}
  assert _frames(os.path.join(out, 'clip')) == [f'frame_{k:06d}.png' for k in originals_shown]
  for k, frame in originals_shown.items():
    np.testing.assert_array_equal(read_png(os.path.join(out, 'clip', f'frame_{k:06d}.png')),
                                  originals[frame])


def test_an_unreadable_frame_after_a_pair_that_shows_nothing_is_reported_once(tmp_path,
                                                                               tiny_model):
  """A unit's first frame is the earlier unit's to report, unless that unit's last pair shows
  no frame and so never reads it: then this unit says it (once), or no record named it."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 6, seed=8)
  bad = tmp_path / 'archive' / 'clip' / 'frame002.png'
  bad.write_bytes(b'not a png')
  timing = retime.timing(1, 24, 10)  # dense frames shown: 0 5 10 14 19 (2 to a pair)
  assert timing.outputs(3, 4) == [] and [d for _, d in timing.outputs(5, 6)] == [5]
  out = str(tmp_path / 'out')
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path, '--pairs_per_unit=1',
                           '--times_to_interpolate=1', '--input_fps=24', '--output_fps=10')
  assert status == 1
  (error,) = run_records(out, run_id, 'errors')
  assert error['stage'] == 'decode' and error['uris'] == [str(bad)]
  pairs = {r['pair']: r['status'] for r in run_records(out, run_id, 'pairs')}
  assert pairs == {0: 'ok', 1: 'ok', 2: 'failed', 3: 'ok', 4: 'ok'}
