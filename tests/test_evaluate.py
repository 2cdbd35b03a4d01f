"""Tests for the quality evaluation: FILM's metrics, the baselines, and the Beam job's reports."""

import csv
import datetime
import glob
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import tool_lines
from film_net.render import TRIPLET_NAMES
from pipeline import evaluate
from transforms import quality
from transforms.clips import sanitise_clip_name

MIDDLEBURY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..',
                          'shared', 'data', 'middlebury-other')


def _smooth_texture(h, w, seed=0):
  """A blurry random colour texture (block matching and flow need structure, not noise)."""
  rng = np.random.default_rng(seed)
  coarse = rng.random((h // 8 + 3, w // 8 + 3, 3)).astype(np.float32)
  big = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize(
      ((w // 8 + 3) * 8, (h // 8 + 3) * 8), Image.Resampling.BICUBIC), np.float32) / 255
  return big


needs_ffmpeg = pytest.mark.skipif(quality.find_ffmpeg() is None, reason=quality.NO_FFMPEG)


def _shift_triplet(h=64, w=96, shift=4):
  big = _smooth_texture(h, w + shift)
  return (big[:h, shift:w + shift], big[:h, shift // 2:w + shift // 2], big[:h, :w])


@pytest.mark.parametrize('shape', [(40, 56, 3), (23, 31, 3)])
def test_psnr_and_ssim_agree_with_tensorflow(shape):
  tf = pytest.importorskip('tensorflow')
  rng = np.random.default_rng(1)
  truth = rng.random(shape).astype(np.float32)
  prediction = np.clip(truth + rng.normal(0, 0.1, shape), 0, 1).astype(np.float32)
  assert quality.psnr(prediction, truth) == pytest.approx(
      float(tf.image.psnr(prediction, truth, max_val=1.0)), abs=1e-4)
  assert quality.ssim(prediction, truth) == pytest.approx(
      float(tf.image.ssim(prediction, truth, max_val=1.0)), abs=1e-5)


def test_ssim_is_tensorflows_on_smooth_bright_frames_too():
  """FILM scores with tf.image.ssim in float32. A float64 copy of it agreed on noise but not on
  smooth, bright frames (Middlebury's MiniCooper: 0.91032 against 0.91076), where float32's
  rounding moves SSIM by ~1e-4: the table's numbers were not FILM's."""
  tf = pytest.importorskip('tensorflow')
  y, x = np.mgrid[0:64, 0:80].astype(np.float32)
  truth = np.stack([0.97 + 0.02 * np.sin(x / 9) * np.cos(y / 7)] * 3, axis=-1)
  prediction = np.clip(truth + 0.004 * np.sin(x / 2 + y / 3)[..., None], 0, 1)
  expected = float(tf.image.ssim(prediction, truth, max_val=1.0))
  assert quality.ssim(prediction, truth) == pytest.approx(expected, abs=1e-7)
  assert quality.metrics(prediction, truth)['ssim'] == pytest.approx(expected, abs=1e-7)
  gray = float(tf.image.ssim(prediction[..., :1], truth[..., :1], max_val=1.0))
  assert quality.ssim(prediction[..., 0], truth[..., 0]) == pytest.approx(gray, abs=1e-7)


def test_metrics_clip_the_prediction_first():
  truth = np.full((16, 16, 3), 1.0, np.float32)
  scores = quality.metrics(truth + 0.5, truth)
  assert scores['psnr'] == math.inf and scores['l1'] == 0 and scores['ssim'] == pytest.approx(1)


def test_heat_map_is_black_without_error_and_white_at_the_scale():
  truth = np.zeros((4, 4, 3), np.float32)
  prediction = truth.copy()
  prediction[0, 0] = quality.HEAT_MAX
  heat = quality.heat_map(prediction, truth)
  np.testing.assert_allclose(heat[0, 0], [1, 1, 1], atol=1e-6)
  np.testing.assert_array_equal(heat[1:, 1:], 0)


@needs_ffmpeg
@needs_ffmpeg
@pytest.mark.parametrize('shift', [4, 10])  # 10: ffmpeg's scene-change detection would fire
def test_minterpolate_returns_the_middle_not_an_input(shift):
  x0, mid, x1 = _shift_triplet(h=96, w=128, shift=shift)
  middle = quality.minterpolate(x0, x1)
  inner = (slice(8, -8), slice(8, -8))
  to_mid = quality.psnr(middle[inner], mid[inner])
  assert to_mid > quality.psnr(middle[inner], x0[inner]) + 3
  assert to_mid > quality.psnr(middle[inner], x1[inner]) + 3
  assert to_mid > quality.psnr(quality.average(x0, x1)[inner], mid[inner])


def test_minterpolate_on_frames_it_cannot_take_says_so_in_one_line():
  """Under 32 px the error row was ffmpeg's whole log, ten lines."""
  x0, _, x1 = _shift_triplet(h=20, w=24, shift=2)
  with pytest.raises(ValueError, match=r'^frames of 24x20: ffmpeg minterpolate takes frames of '
                                       r'at least 32x32$'):
    quality.minterpolate(x0, x1)


def test_dis_flow_baseline_recovers_a_translation():
  pytest.importorskip('cv2', reason='OpenCV is a benchmark extra: pip install '
                                    'opencv-python-headless')
  x0, mid, x1 = _shift_triplet(shift=6)
  inner = (slice(8, -8), slice(8, -8))
  assert quality.psnr(quality.dis(x0, x1)[inner], mid[inner]) > 35
  assert quality.psnr(quality.average(x0, x1)[inner], mid[inner]) < 30


def test_dis_on_frames_it_cannot_take_says_so_instead_of_crashing():
  """OpenCV's DIS flow on frames 11-15 px high crashed the process (the whole evaluation
  died, no results), or raised, or gave NaN."""
  x0, _, x1 = _shift_triplet(h=12, w=64, shift=2)
  with pytest.raises(ValueError, match=r'^frames of 64x12: DIS flow takes frames of at least '
                                       r'16x16$'):
    quality.dis(x0, x1)


def test_a_prediction_with_nan_is_an_error_row_not_an_exact_score(tmp_path, monkeypatch,
                                                                   capsys):
  """A method's NaN frame stayed NaN through the clipping, its PSNR was left out of the mean
  as if exact, and the evaluation ended with status 0."""
  _black_to_gray_triplets(tmp_path / 'in')
  def nan_in_the_corner(x0, x1):
    out = quality.average(x0, x1)
    out[0, 0] = np.nan
    return out
  monkeypatch.setattr(quality, 'available_baselines',
                      lambda: {'repeat': quality.repeat, 'average': nan_in_the_corner})
  out = tmp_path / 'out'
  status = evaluate.main(['--input', str(tmp_path / 'in'), '--output', str(out), '--no_model',
                          '--baselines', 'repeat,average'])
  assert status == 1 and 'exact' not in capsys.readouterr().out
  report = json.load(open(out / 'results.json'))
  assert sorted(r['error'] for r in report['errors']) == [
      f'{k}: average failed: ValueError: 3 NaN or infinite values of {24 * 32 * 3} in its frame'
      for k in 'ab']
  assert 'average' not in report['mean'] and report['mean']['repeat']['count'] == 2


def _save(path, image):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def test_sigterm_after_the_evaluation_ended_is_one_line_naming_its_results(tmp_path,
                                                                          monkeypatch, capsys):
  """A stop while the ended evaluation's table was printed was a traceback (Ctrl-C) or no line
  at all (SIGTERM, then the process's default again)."""
  gray = np.full((24, 32, 3), 102 / 255, np.float32)
  for name in TRIPLET_NAMES:
    _save(str(tmp_path / 'in' / 'a' / name), gray)

  def terminated(report):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)  # the handler interrupts this
  monkeypatch.setattr(evaluate, 'format_table', terminated)
  out = str(tmp_path / 'out')
  status = evaluate.main(['--input', str(tmp_path / 'in'), '--output', out, '--no_model',
                          '--baselines', 'repeat'])
  stderr = capsys.readouterr().err
  assert status == 143 and 'Traceback' not in stderr
  results = os.path.join(out, 'results.json')
  assert f'interrupted: the evaluation had ended; its results are in {results}' in stderr
  assert json.load(open(results))['mean']['repeat']['count'] == 1
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_stop_that_comes_out_of_a_method_as_another_error_still_stops_the_evaluation(
    tmp_path, monkeypatch, capsys):
  """SIGTERM's KeyboardInterrupt raised inside a library call can come out as another error:
  it was scored as the method's failure, and the evaluation went on to its end."""
  gray = np.full((24, 32, 3), 102 / 255, np.float32)
  for name in TRIPLET_NAMES:
    _save(str(tmp_path / 'in' / 'a' / name), gray)

  def stopped_inside_a_library_call(x0, x1):
    try:
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(10)  # the handler interrupts this
    except KeyboardInterrupt:
      raise SystemError('bad argument to internal function') from None
  monkeypatch.setattr(quality, 'available_baselines',
                      lambda: {'repeat': stopped_inside_a_library_call})
  out = tmp_path / 'out'
  status = evaluate.main(['--input', str(tmp_path / 'in'), '--output', str(out), '--no_model',
                          '--baselines', 'repeat'])
  stderr = capsys.readouterr().err
  assert status == 143 and 'interrupted: the evaluation stopped before its results' in stderr
  assert not (out / 'results.json').exists() and 'repeat failed' not in stderr


def test_a_rerun_stopped_before_its_report_leaves_no_earlier_report_beside_its_pictures(
    tmp_path, monkeypatch, capsys):
  """The earlier run's results.json and .csv stayed beside the comparison PNGs the stopped
  re-run had drawn of other frames, a folder that looked whole. With --no_png, whose re-run
  draws nothing, the earlier report stays until the new one replaces it."""
  _black_to_gray_triplets(tmp_path / 'in')
  out = tmp_path / 'out'
  for no_png, left in (([], set()), (['--no_png'], {'results.json', 'results.csv'})):
    assert evaluate.main(['--input', str(tmp_path / 'in'), '--output', str(out), '--no_model',
                          '--baselines', 'repeat', *no_png]) == 0

    def stopped(x0, x1):
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(10)  # the handler interrupts this
    with monkeypatch.context() as patched:
      patched.setattr(quality, 'available_baselines', lambda: {'repeat': stopped})
      assert evaluate.main(['--input', str(tmp_path / 'in'), '--output', str(out), '--no_model',
                            '--baselines', 'repeat', *no_png]) == 143
    assert {p.name for p in out.iterdir()} & {'results.json', 'results.csv'} == left
  capsys.readouterr()


def _black_to_gray_triplets(folder):
  """Triplets a and b: frame0 black, frame1 and the truth mid-gray (102/255)."""
  gray = np.full((24, 32, 3), 102 / 255, np.float32)
  for name in ('a', 'b'):
    _save(str(folder / name / 'frame10.png'), np.zeros_like(gray))
    _save(str(folder / name / 'frame10i11.png'), gray)
    _save(str(folder / name / 'frame11.png'), gray)


def test_job_on_triplet_folders_gives_the_analytic_baseline_scores(tmp_path):
  # frame0 black, frame1 mid-gray (102/255), truth the same gray: repeat misses by 0.4 and
  # average by 0.2, so PSNR = -20 log10(error) exactly.
  _black_to_gray_triplets(tmp_path / 'in')
  out = str(tmp_path / 'out')
  evaluate.run(['--input', str(tmp_path / 'in'), '--output', out, '--no_model',
                '--baselines', 'repeat,average'])
  report = json.load(open(os.path.join(out, 'results.json')))
  assert report['mean']['repeat']['psnr'] == pytest.approx(-20 * math.log10(0.4), abs=1e-4)
  assert report['mean']['average']['psnr'] == pytest.approx(-20 * math.log10(0.2), abs=1e-4)
  assert report['mean']['average']['count'] == 2
  rows = list(csv.DictReader(open(os.path.join(out, 'results.csv'))))
  assert [(r['key'], r['method']) for r in rows] == [
      ('a', 'repeat'), ('a', 'average'), ('b', 'repeat'), ('b', 'average'),
      ('mean', 'repeat'), ('mean', 'average')]
  png = Image.open(os.path.join(out, 'comparisons', 'a.png'))
  assert png.size == (3 * 32, 3 * 24)  # inputs and truth, then a row per method


@needs_ffmpeg
def test_job_scores_the_minterpolate_baseline(tmp_path):
  x0, mid, x1 = _shift_triplet(shift=6)
  for name, image in (('frame10', x0), ('frame10i11', mid), ('frame11', x1)):
    _save(str(tmp_path / 'in' / 'shift' / f'{name}.png'), image)
  out = str(tmp_path / 'out')
  evaluate.run(['--input', str(tmp_path / 'in'), '--output', out, '--no_model',
                '--baselines', 'average,minterpolate', '--no_png'])
  report = json.load(open(os.path.join(out, 'results.json')))
  # The job's row is ffmpeg's frame scored as FILM does, from the PNGs it read (8-bit).
  def load(name):
    return np.asarray(Image.open(tmp_path / 'in' / 'shift' / f'{name}.png'), np.float32) / 255

  expected = quality.psnr(quality.minterpolate(load('frame10'), load('frame11')),
                          load('frame10i11'))
  assert report['mean']['minterpolate']['psnr'] == pytest.approx(expected, abs=1e-4)
  assert report['mean']['minterpolate']['psnr'] > report['mean']['average']['psnr'] + 3


def test_model_and_leave_one_out_on_clips(tmp_path):
  from film_net import Interpolator, Options
  model_path = str(tmp_path / 'tiny_model.npz')
  model = Interpolator.random(options=Options.tiny(), seed=0, align=64)
  model.save(model_path)
  # Two clips of flat frames brightening by a constant step: repeat misses by one step.
  for clip, step in (('clip_a', 20), ('clip_b', 40)):
    for i in range(4):
      _save(str(tmp_path / 'footage' / clip / f'f{i}.png'),
            np.full((20, 28, 3), i * step / 255, np.float32))
  out = str(tmp_path / 'out')
  evaluate.run(['--input', str(tmp_path / 'footage'), '--output', out, '--leave_one_out',
                '--model_path', model_path, '--baselines', 'repeat', '--no_png'])
  report = json.load(open(os.path.join(out, 'results.json')))
  assert set(report['clips']) == {'clip_a', 'clip_b'}
  for clip, step in (('clip_a', 20), ('clip_b', 40)):
    repeat = report['clips'][clip]['repeat']
    assert repeat['count'] == 2
    assert repeat['psnr'] == pytest.approx(-20 * math.log10(step / 255), abs=1e-4)
  # The model's row is the clipped prediction of the model itself, scored the same way.
  row = next(r for r in report['triplets'] if r['method'] == 'model' and r['key'].endswith('0'))
  assert row['truth'] == str(tmp_path / 'footage' / row['clip'] / 'f1.png')  # what it predicts
  frames = [np.full((1, 20, 28, 3), i * 20 / 255, np.float32) for i in range(3)]
  expected = quality.metrics(model(frames[0], frames[2])[0], frames[1][0])
  assert row['l1'] == pytest.approx(expected['l1'], rel=1e-4)
  assert not os.path.exists(os.path.join(out, 'comparisons'))


def test_held_frames_score_as_the_tool_writes_them_and_psnr_means_share_their_triplets(
    tmp_path):
  """A freeze (A A A B C): the model's score was its near copy of A (the tool writes A itself),
  and each method's PSNR mean left out only its own exact triplets: repeat averaged 1 triplet,
  average 2 and the model 3, so the model's lead held the freeze's ~50 dB."""
  from film_net import Interpolator, Options
  model_path = str(tmp_path / 'tiny_model.npz')
  Interpolator.random(options=Options.tiny(), seed=0, align=64).save(model_path)
  a, b, c = (_smooth_texture(24, 32, seed) for seed in (1, 2, 3))
  for i, frame in enumerate((a, a, a, b, c)):
    _save(str(tmp_path / 'footage' / 'reel' / f'f{i}.png'), frame)
  out = str(tmp_path / 'out')
  evaluate.run(['--input', str(tmp_path / 'footage'), '--output', out, '--leave_one_out',
                '--model_path', model_path, '--baselines', 'repeat,average', '--no_png'])
  report = json.load(open(os.path.join(out, 'results.json')))
  psnr = {(r['key'][-1], r['method']): r['psnr'] for r in report['triplets']}
  assert psnr['0', 'model'] is None and psnr['0', 'repeat'] is None  # exact: JSON null
  assert psnr['1', 'repeat'] is None and psnr['1', 'average'] is not None
  for method, mean in report['mean'].items():  # the PSNR of (A B C) alone, for each method
    assert (mean['count'], mean['psnr_count']) == (3, 1), method
    assert mean['psnr'] == pytest.approx(psnr['2', method], abs=1e-9), method
  assert '(PSNR of 1: a method predicts the others exactly)' in evaluate.format_table(report)


def test_leave_one_out_leaves_out_triplets_across_a_cut_or_with_a_repeated_frame(tmp_path,
                                                                                capsys):
  """Footage is edited and transfers repeat frames: a triplet spanning two shots, or whose
  middle frame repeats a neighbour, measures the edit or the transfer, not the interpolator."""
  from film_net import render  # pylint: disable=import-outside-toplevel
  frames = []
  for seed in (1, 2):
    frames += render.render_triplet(np.random.default_rng([seed, 5]), 48, 64, max_motion_px=6)
  frames.append(frames[-1])  # the last frame twice
  for i, frame in enumerate(frames):
    _save(str(tmp_path / 'reel' / f'f{i}.png'), frame)
  argv = ['--input', str(tmp_path / 'reel'), '--leave_one_out', '--no_model', '--baselines',
          'average', '--no_png']
  assert evaluate.main(argv + ['--output', str(tmp_path / 'cuts'), '--scene_cuts']) == 0
  report = json.load(open(tmp_path / 'cuts' / 'results.json'))
  assert [r['key'] for r in report['triplets']] == ['reel_000000', 'reel_000003']
  assert [(r['key'], r['left_out']) for r in report['left_out']] == [
      ('reel_000001', 'scene cut'), ('reel_000002', 'scene cut'),
      ('reel_000004', 'repeated frame')]
  assert all(r['cut_score'] > 0.2 for r in report['left_out'][:2])
  assert report['left_out'][2]['cut_score'] is None
  assert report['mean']['average']['count'] == 2 and report['scene_cut_threshold'] == 0.2
  out = capsys.readouterr().out
  assert 'left out, scene cut: 2 triplets (reel_000001, reel_000002)' in out
  assert 'left out, repeated frame: 1 triplet (reel_000004)' in out
  assert evaluate.main(argv + ['--output', str(tmp_path / 'all')]) == 0  # off by default
  report = json.load(open(tmp_path / 'all' / 'results.json'))
  assert len(report['triplets']) == 5 and report['left_out'] == []
  assert report['scene_cut_threshold'] is None


def test_leave_one_out_takes_a_glob_of_clips_as_the_pipeline_does(tmp_path):
  """`--input 'archive/reel_*'` ran the pipeline on those clips, but the evaluation's
  leave-one-out, on the same input, said 'no such folder'."""
  for clip in ('reel_1', 'reel_2', 'other'):
    for i in range(3):
      _save(str(tmp_path / 'in' / clip / f'f{i}.png'), np.full((24, 32, 3), i / 4, np.float32))
  assert evaluate.main(['--input', str(tmp_path / 'in' / 'reel_*'), '--leave_one_out',
                        '--no_model', '--baselines', 'average', '--no_png', '--output',
                        str(tmp_path / 'out')]) == 0
  report = json.load(open(tmp_path / 'out' / 'results.json'))
  assert [(r['key'], r['clip']) for r in report['triplets']] == [
      ('reel_1_000000', 'reel_1'), ('reel_2_000000', 'reel_2')]


def test_leave_one_out_leaves_out_triplets_whose_frame_numbers_skip(tmp_path, capsys):
  """A scan lost (reel_0003 missing): the triplets around the gap have a middle frame that is
  not the midpoint in time, known from the names alone, with or without --scene_cuts. A number
  repeated elsewhere (reel_0006 twice, as reel_006: one scan twice) did hide the gap, and the
  triplets over it are left out too."""
  for number in (1, 2, 4, 5, 6):
    _save(str(tmp_path / 'reel' / f'reel_{number:04d}.png'),
          np.full((24, 32, 3), (number * 30 + number % 2 * 7) / 255, np.float32))
  _save(str(tmp_path / 'reel' / 'reel_006.png'), np.full((24, 32, 3), 187 / 255, np.float32))
  assert evaluate.main(['--input', str(tmp_path / 'reel'), '--leave_one_out', '--no_model',
                        '--baselines', 'average', '--no_png', '--output',
                        str(tmp_path / 'out')]) == 0
  report = json.load(open(tmp_path / 'out' / 'results.json'))
  # Triplets (1, 2, 4) and (2, 4, 5) straddle the gap; (4, 5, 6) is whole.
  assert [(r['key'], r['left_out']) for r in report['left_out']] == [
      ('reel_000000', 'frame numbers skip'), ('reel_000001', 'frame numbers skip'),
      ('reel_000003', 'frame number repeated')]
  assert [r['key'] for r in report['triplets']] == ['reel_000002']
  assert report['triplets'][0]['psnr'] == pytest.approx(-20 * math.log10(7 / 255), abs=1e-3)
  printed = capsys.readouterr().out
  assert 'left out, frame numbers skip: 2 triplets (reel_000000, reel_000001)' in printed
  assert 'left out, frame number repeated: 1 triplet (reel_000003)' in printed
  # With every triplet left out, nothing is scored: said, and not exit status 0 (it was: an
  # empty report a script would take for a good one).
  (tmp_path / 'reel' / 'reel_0006.png').unlink()
  (tmp_path / 'reel' / 'reel_006.png').unlink()
  assert evaluate.main(['--input', str(tmp_path / 'reel'), '--leave_one_out', '--no_model',
                        '--baselines', 'average', '--no_png', '--output',
                        str(tmp_path / 'out')]) == 1
  printed = capsys.readouterr()
  assert 'left out, frame numbers skip: 2 triplets' in printed.out
  assert printed.err.strip() == 'error: nothing scored: all 2 triplets were left out (see above)'


def test_flip_average_scores_the_averaged_prediction(tmp_path):
  from film_net import Interpolator, Options
  model_path = str(tmp_path / 'tiny_model.npz')
  Interpolator.random(options=Options.tiny(), seed=0, align=64).save(model_path)
  triplet = _shift_triplet()
  for name, frame in zip(('frame10.png', 'frame10i11.png', 'frame11.png'), triplet):
    _save(str(tmp_path / 'in' / 'shift' / name), frame)
  x0, truth, x1 = (np.asarray(Image.open(tmp_path / 'in' / 'shift' / n), np.float32) / 255
                   for n in ('frame10.png', 'frame10i11.png', 'frame11.png'))
  scores = {}
  for flip in (False, True):
    out = str(tmp_path / f'out_{flip}')
    evaluate.run(['--input', str(tmp_path / 'in'), '--output', out, '--model_path', model_path,
                  '--baselines', '', '--no_png'] + (['--flip_average'] if flip else []))
    report = json.load(open(os.path.join(out, 'results.json')))
    assert report['flip_average'] is flip and report['precision'] == 'float32'
    model = Interpolator.from_path(model_path, align=64, flip_average=flip)
    # Which weights were scored, and when (a training run's latest.npz changes under its name).
    assert report['model_fingerprint'] == model.fingerprint and 'stride' not in report
    assert report['started_at'] <= report['finished_at'] and (
        datetime.datetime.fromisoformat(report['finished_at']).tzinfo is not None)
    expected = quality.metrics(model(x0, x1), truth)
    scores[flip] = report['mean']['model']['l1']
    assert scores[flip] == pytest.approx(expected['l1'], rel=1e-4)
  assert scores[True] != pytest.approx(scores[False], rel=1e-3)
  # A weight file that asks for flip averaging gets it unless --no_flip_average says otherwise.
  from film_net import weights as weights_lib
  flip_file = str(tmp_path / 'flip_model.npz')
  weights, options = weights_lib.read_npz(model_path)
  weights_lib.save(flip_file, weights, options, meta={'inference': {'flip_average': True}})
  for flags, flip in (([], True), (['--no_flip_average'], False)):
    out = str(tmp_path / f'out_file_{flip}')
    evaluate.run(['--input', str(tmp_path / 'in'), '--output', out, '--model_path', flip_file,
                  '--baselines', '', '--no_png'] + flags)
    report = json.load(open(os.path.join(out, 'results.json')))
    assert report['flip_average'] is flip and report['padding'] == 'zeros'  # as the file says
    assert report['flip_weights'] == ('equal' if flip else None)
    assert report['mean']['model']['l1'] == pytest.approx(scores[flip], rel=1e-6)


def test_tiles_score_the_tiled_prediction_and_are_recorded(tmp_path):
  from film_net import Interpolator, Options
  model_path = str(tmp_path / 'tiny_model.npz')
  Interpolator.random(options=Options.tiny(), seed=0, align=64).save(model_path)
  for name, frame in zip(('frame10.png', 'frame10i11.png', 'frame11.png'),
                         _shift_triplet(h=64, w=160)):
    _save(str(tmp_path / 'in' / 'shift' / name), frame)
  x0, truth, x1 = (np.asarray(Image.open(tmp_path / 'in' / 'shift' / n), np.float32) / 255
                   for n in ('frame10.png', 'frame10i11.png', 'frame11.png'))
  out = str(tmp_path / 'out')
  evaluate.run(['--input', str(tmp_path / 'in'), '--output', out, '--model_path', model_path,
                '--baselines', '', '--no_png', '--tile', '64', '--tile_overlap', '16'])
  report = json.load(open(os.path.join(out, 'results.json')))
  assert report['tile'] == [64, 16]
  tiled = Interpolator.from_path(model_path, align=64, tile=64, tile_overlap=16)
  whole = Interpolator.from_path(model_path, align=64)
  assert report['mean']['model']['l1'] == pytest.approx(
      quality.metrics(tiled(x0, x1), truth)['l1'], rel=1e-5)
  assert report['mean']['model']['l1'] != pytest.approx(
      quality.metrics(whole(x0, x1), truth)['l1'], rel=1e-5)


def test_leave_one_out_on_a_folder_that_is_itself_one_clip(tmp_path):
  for i in range(4):
    _save(str(tmp_path / 'reel 7' / f'{i}.png'), np.zeros((8, 8, 3), np.float32))
  triplets = evaluate.list_triplets(str(tmp_path / 'reel 7'), leave_one_out=True, stride=2)
  # Named as pipeline.run names its output folder, so the two join.
  name = sanitise_clip_name('reel 7')
  assert name.startswith('reel_7-')
  assert [(t['clip'], t['key']) for t in triplets] == [(name, f'{name}_000000')]
  assert triplets[0]['truth'].endswith('1.png')


def test_triplet_folders_linked_into_the_input_are_evaluated(tmp_path):
  """A triplet set linked in from elsewhere (a benchmark's folders) is read like a folder; a
  triplet deeper than one folder down is not one of the input's."""
  for folder in ('sets/Urban', 'in/Grove', 'in/deep/er'):
    for name in TRIPLET_NAMES:
      _save(str(tmp_path / folder / name), np.zeros((8, 8, 3), np.float32))
  os.symlink(tmp_path / 'sets' / 'Urban', tmp_path / 'in' / 'Urban')
  triplets = evaluate.list_triplets(str(tmp_path / 'in'))
  assert [(t['key'], t['truth']) for t in triplets] == [
      (key, str(tmp_path / 'in' / key / TRIPLET_NAMES[1])) for key in ('Grove', 'Urban')]


def test_a_triplet_set_named_as_glob_escape_writes_it_is_that_folder(tmp_path):
  """`Set [2]` escaped (`Set [[]2]`, as glob.escape and the pipeline's --input take it) said 'no
  such folder'; unescaped it is read as it is."""
  for name in TRIPLET_NAMES:
    _save(str(tmp_path / 'Set [2]' / 'Grove' / name), np.zeros((8, 8, 3), np.float32))
  folder = str(tmp_path / 'Set [2]')
  for spec in (folder, glob.escape(folder), glob.escape(folder) + '/'):
    triplets = evaluate.list_triplets(spec)
    assert [(t['key'], t['truth']) for t in triplets] == [
        ('Grove', os.path.join(folder, 'Grove', TRIPLET_NAMES[1]))]


def test_manifest_paths_are_relative_to_the_manifest(tmp_path):
  (tmp_path / 'm.jsonl').write_text(
      '{"key": "one", "frame0": "x/a.png", "truth": "x/b.png", "frame1": "/abs/c.png"}\n')
  (tmp_path / 'm.csv').write_text('frame0,truth,frame1\na.png,b.png,c.png\n')
  [one] = evaluate.list_triplets(str(tmp_path / 'm.jsonl'))
  assert (one['key'], one['frame0'], one['frame1']) == (
      'one', str(tmp_path / 'x' / 'a.png'), '/abs/c.png')
  [row] = evaluate.list_triplets(str(tmp_path / 'm.csv'))
  assert row['truth'] == str(tmp_path / 'b.png')
  (tmp_path / 'bad.csv').write_text('frame0,truth\na.png,b.png\n')
  with pytest.raises(ValueError, match='frame1'):
    evaluate.list_triplets(str(tmp_path / 'bad.csv'))


@pytest.mark.skipif(not os.path.isdir(MIDDLEBURY),
                    reason='../shared/data/middlebury-other is not here (evaluation data only)')
def test_middlebury_repeat_and_average_baselines(tmp_path):
  out = str(tmp_path / 'out')
  evaluate.run(['--input', MIDDLEBURY, '--output', out, '--no_model',
                '--baselines', 'repeat,average', '--no_png'])
  report = json.load(open(os.path.join(out, 'results.json')))
  assert report['mean']['repeat']['count'] == 12
  assert report['mean']['repeat']['psnr'] == pytest.approx(24.75, abs=0.01)
  assert report['mean']['average']['psnr'] == pytest.approx(28.02, abs=0.01)


def test_the_command_prints_progress_its_table_and_no_beam_chatter(tmp_path):
  """An INFO line of Beam's state cache came before the table; and nothing came before it, for
  the whole evaluation (hours for --leave_one_out over an archive)."""
  for clip in ('a', 'b'):
    for name in TRIPLET_NAMES:
      _save(str(tmp_path / 'in' / clip / name), np.zeros((16, 16, 3), np.float32))
  result = subprocess.run(
      [sys.executable, '-m', 'pipeline.evaluate', '--input', str(tmp_path / 'in'), '--output',
       str(tmp_path / 'out'), '--no_model', '--baselines', 'repeat', '--no_png'],
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True,
      text=True, timeout=300)
  progress, table = result.stdout.split('\n', 1)
  assert result.returncode == 0 and table.startswith('method'), result
  assert re.fullmatch(r'progress: 2/2 triplets, elapsed \d+s, ETA 0s', progress), result
  assert tool_lines(result.stderr) == []  # (SSIM is TensorFlow's: its load notices remain)


def test_a_triplet_that_cannot_be_scored_is_an_error_row_and_the_rest_complete(tmp_path, capsys):
  gray = np.full((24, 32, 3), 0.4, np.float32)
  for name in ('good', 'same'):  # 'same': the truth equals frame 0, repeat's PSNR is infinite
    _save(str(tmp_path / 'in' / name / 'frame10.png'), gray if name == 'same' else gray / 2)
    _save(str(tmp_path / 'in' / name / 'frame10i11.png'), gray)
    _save(str(tmp_path / 'in' / name / 'frame11.png'), np.zeros_like(gray))
  _save(str(tmp_path / 'in' / 'sizes' / 'frame10.png'), gray)
  _save(str(tmp_path / 'in' / 'sizes' / 'frame10i11.png'), gray[:20])
  _save(str(tmp_path / 'in' / 'sizes' / 'frame11.png'), gray)
  os.makedirs(tmp_path / 'in' / 'broken')
  for name in ('frame10.png', 'frame11.png'):
    _save(str(tmp_path / 'in' / 'broken' / name), gray)
  (tmp_path / 'in' / 'broken' / 'frame10i11.png').write_bytes(b'not a png')
  for name in TRIPLET_NAMES:  # SSIM's window is 11 px a side: no SSIM for a 10x12 frame
    _save(str(tmp_path / 'in' / 'tiny' / name), gray[:10, :12])
  for name in ('frame10.png', 'frame11.png'):  # a grey truth scored ~20 dB below its colour twin
    _save(str(tmp_path / 'in' / 'mixed' / name), gray * [1.0, 0.8, 0.6])
  Image.fromarray(np.full((24, 32), 102, np.uint8)).save(tmp_path / 'in' / 'mixed' /
                                                          'frame10i11.png')
  for name in TRIPLET_NAMES:  # grey pictures, one of them saved as RGB: grey, scored
    _save(str(tmp_path / 'in' / 'grey_in_rgb' / name), gray * (0.5 if name == 'frame10.png' else 1))
  Image.fromarray(np.full((24, 32), 102, np.uint8)).save(tmp_path / 'in' / 'grey_in_rgb' /
                                                          'frame10i11.png')
  out = str(tmp_path / 'out')
  status = evaluate.main(['--input', str(tmp_path / 'in'), '--output', out, '--no_model',
                          '--baselines', 'repeat,average'])
  assert status == 1
  text = open(os.path.join(out, 'results.json')).read()
  report = json.loads(text, parse_constant=lambda c: pytest.fail(f'{c} is not JSON'))
  assert sorted({r['key'] for r in report['triplets']}) == ['good', 'grey_in_rgb', 'same']
  errors = {e['key']: e['error'] for e in report['errors']}
  assert 'frame10i11.png' in errors['broken'] and 'not a readable image' in errors['broken']
  assert 'frame sizes differ' in errors['sizes'] and '32x20' in errors['sizes']
  assert "is 12x10, smaller than SSIM's 11x11 window" in errors['tiny']
  assert errors['mixed'].startswith('mixed: grey and colour frames mixed: ')
  assert f'{tmp_path / "in" / "mixed" / "frame10i11.png"} is grey' in errors['mixed']
  assert report['mean']['repeat']['count'] == 3 and report['mean']['repeat']['psnr_count'] == 2
  same_repeat = [r for r in report['triplets'] if r['key'] == 'same' and r['method'] == 'repeat']
  assert same_repeat[0]['psnr'] is None  # infinite: JSON null
  assert 'error: broken' in capsys.readouterr().err
  rows = list(csv.DictReader(open(os.path.join(out, 'results.csv'))))
  assert {r['key'] for r in rows if r['error']} == {'broken', 'sizes', 'tiny', 'mixed'}
  mean, = [r for r in rows if r['key'] == 'mean' and r['method'] == 'repeat']
  assert (mean['count'], mean['psnr_count']) == ('3', '2')
  assert 'repeat' in evaluate.format_table(report).splitlines()[1]
  # A method that failed where others scored says its mean is over fewer triplets.
  fewer = dict(report, mean={**report['mean'], 'average': {**report['mean']['repeat'], 'count': 1}})
  assert evaluate.format_table(fewer).splitlines()[3] == (
      'average scored 1 of 3 triplets (see the errors): its mean is not over the same frames as '
      'the others')
  assert 'scored' not in evaluate.format_table(report)
  assert evaluate.format_table(report).splitlines()[1].endswith(
      '(PSNR of 2: a method predicts the others exactly)')
  assert sorted(os.listdir(os.path.join(out, 'comparisons'))) == [
      'good.png', 'grey_in_rgb.png', 'same.png']
  with pytest.raises(ValueError, match="12x10 frames are smaller than SSIM's 11x11 window"):
    quality.ssim(gray[:10, :12], gray[:10, :12])


def test_a_rerun_into_the_same_output_keeps_its_own_comparisons_only(tmp_path):
  """comparisons/ holds the PNGs of the last report's triplets; and an evaluation's output
  inside the footage is not footage to a later leave-one-out run."""
  for clip, seed in (('alpha', 1), ('beta', 2)):
    for i in range(3):
      _save(str(tmp_path / 'in' / clip / f'f{i}.png'), _smooth_texture(16, 16, seed + i))
  base = ['--leave_one_out', '--no_model', '--baselines', 'repeat']
  monday, tuesday = str(tmp_path / 'in' / 'eval_monday'), str(tmp_path / 'in' / 'eval_tuesday')
  evaluate.run(['--input', str(tmp_path / 'in'), '--output', monday] + base)
  assert sorted(os.listdir(os.path.join(monday, 'comparisons'))) == [
      'alpha_000000.png', 'beta_000000.png']
  report = evaluate.run(['--input', str(tmp_path / 'in'), '--output', tuesday] + base)
  assert sorted(json.load(open(os.path.join(tuesday, 'results.json')))['clips']) == [
      'alpha', 'beta']  # not monday's comparisons
  del report
  evaluate.run(['--input', str(tmp_path / 'in' / 'beta'), '--output', monday] + base)
  assert os.listdir(os.path.join(monday, 'comparisons')) == ['beta_000000.png']
  evaluate.run(['--input', str(tmp_path / 'in' / 'beta'), '--output', monday, '--no_png'] + base)
  assert os.listdir(os.path.join(monday, 'comparisons')) == []
  assert not json.load(open(os.path.join(monday, 'results.json')))['comparison_pngs']


def test_a_rerun_stopped_between_its_two_reports_leaves_no_csv_of_the_earlier_numbers(
    tmp_path, monkeypatch):
  """results.json and results.csv are written one after the other: a rerun stopped between
  them left the new JSON beside the last run's CSV, two reports of different numbers."""
  _black_to_gray_triplets(tmp_path / 'in')
  out = str(tmp_path / 'out')
  flags = ['--input', str(tmp_path / 'in'), '--output', out, '--no_model']
  evaluate.run(flags + ['--baselines', 'repeat'])
  assert os.path.exists(os.path.join(out, 'results.csv'))
  write_atomic = evaluate.files.write_atomic

  def stopped_before_the_csv(path, data, *args):
    if path.endswith('results.csv'):
      raise OSError('no space left on device')  # or the run was killed here
    return write_atomic(path, data, *args)

  monkeypatch.setattr(evaluate.files, 'write_atomic', stopped_before_the_csv)
  with pytest.raises(Exception, match='no space left on device'):
    evaluate.run(flags + ['--baselines', 'average'])
  assert list(json.load(open(os.path.join(out, 'results.json')))['mean']) == ['average']
  assert not os.path.exists(os.path.join(out, 'results.csv'))


def test_what_cannot_work_is_one_line_and_status_2_before_any_work(tmp_path, capsys):
  gray = np.full((8, 8, 3), 0.4, np.float32)
  for name in TRIPLET_NAMES:
    _save(str(tmp_path / 'in' / 'a' / name), gray)
  (tmp_path / 'broken.jsonl').write_text('{"frame0": "a.png",\n')
  (tmp_path / 'numbers.jsonl').write_text('{"frame0": "a.png", "truth": 5, "frame1": "c.png"}\n')
  (tmp_path / 'a_file').write_text('not a folder')
  (tmp_path / 'no_truth.csv').write_text('frame0,frame1\na.png,c.png\n')
  (tmp_path / 'header_only.csv').write_text('frame0,truth,frame1\n')
  (tmp_path / 'shifted.csv').write_text('frame0,truth,frame1\na.png,b.png,c.png,,\n'
                                        'a,1.png,b.png,c.png\n')
  # Excel's plain "CSV" on Windows is cp1252, not UTF-8.
  (tmp_path / 'cp1252.csv').write_bytes('frame0,truth,frame1\nSzène/a.png,b.png,c.png\n'
                                        .encode('cp1252'))
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'Set [2]').mkdir()
  (tmp_path / 'model.npz').write_bytes(b'not a model')
  out = tmp_path / 'out'
  for flags, says in (
      (['--input', str(tmp_path / 'broken.jsonl')], 'broken.jsonl line 1: not JSON'),
      (['--input', str(tmp_path / 'numbers.jsonl')],
       'numbers.jsonl line 1: truth must be a path (a JSON string), got 5'),
      (['--input', str(tmp_path / 'no_truth.csv'), '--leave_one_out'],
       '--leave_one_out takes a folder of clips, not a manifest'),
      (['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'a_file')],
       'a_file is a file, not a folder'),
      (['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'a_file' / 'out')],
       f'out: {tmp_path / "a_file"} is a file, not a folder'),
      (['--input', str(tmp_path / 'no_truth.csv')], 'no_truth.csv line 2 lacks truth'),
      (['--input', str(tmp_path / 'gone.csv')], 'gone.csv: the manifest does not exist'),
      (['--input', str(tmp_path / 'gone')], 'gone: no such folder'),
      (['--input', str(tmp_path / 'gone' / 'reel_*'), '--leave_one_out'], 'no such folder'),
      (['--input', str(tmp_path / 'in' / 'x*'), '--leave_one_out'],
       'x*: no clip of 3 or more frames matches'),
      (['--input', str(tmp_path / 'in' / '*')],  # (it said 'no such folder' of the folder)
       '*: a glob selects clips for --leave_one_out; triplets are a folder of triplet folders'),
      (['--input', str(tmp_path / 'empty')], 'empty: no triplet folders'),
      (['--input', str(tmp_path / 'empty'), '--leave_one_out'], 'no clip of 3 or more frames'),
      # Escaped as glob.escape writes it, the folder it names (it said 'no such folder').
      (['--input', glob.escape(str(tmp_path / 'Set [2]'))], 'no triplet folders'),
      (['--input', glob.escape(str(tmp_path / 'Set [2]')), '--leave_one_out'],
       'no clip of 3 or more frames'),
      (['--input', str(tmp_path / 'header_only.csv')], 'the manifest has no rows'),
      (['--input', str(tmp_path / 'shifted.csv')],  # (it was scored on shifted cells)
       'shifted.csv line 3 has 4 fields, its header 3: a comma in a path? Quote the path'),
      (['--input', str(tmp_path / 'cp1252.csv')], 'cp1252.csv line 2: not UTF-8 text'),
      (['--input', str(tmp_path / 'in'), '--baselines', 'foo'], '--baselines: unknown foo'),
      (['--input', str(tmp_path / 'in'), '--baselines', ''], 'nothing to evaluate'),
  ):
    status = evaluate.main(['--output', str(out), '--no_model', '--baselines', 'repeat'] + flags)
    err = capsys.readouterr().err.strip()
    assert (status, len(err.splitlines())) == (2, 1) and err.startswith('error: ') and says in err
  for model in ('model.npz', 'gone.npz'):
    status = evaluate.main(['--input', str(tmp_path / 'in'), '--output', str(out),
                            '--model_path', str(tmp_path / model), '--baselines', 'repeat'])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.splitlines() == [err] and 'cannot load the film_net model' in err
    assert model in err
  assert not out.exists()
  evaluate.run(['--input', str(tmp_path / 'in'), '--output', str(out / 'deep'), '--no_model',
                '--baselines', 'repeat', '--dry_run'])
  assert not out.exists()  # (its write check made the folders)
  # An --output it cannot write (no one may write in /proc, root included): a traceback of
  # the first write, exit 1, or with --no_png the job's whole work lost at the reports.
  if os.path.isdir('/proc/self'):
    for no_png in ([], ['--no_png']):
      status = evaluate.main(['--input', str(tmp_path / 'in'), '--output', '/proc/film-test',
                              '--no_model', '--baselines', 'repeat', *no_png])
      err = capsys.readouterr().err.strip()
      assert status == 2 and re.fullmatch(
          r'error: --output /proc/film-test: cannot write there \(.+\)', err), err


def test_leave_one_out_lists_what_it_cannot_score_and_keeps_clips_apart(tmp_path):
  flat = np.zeros((8, 8, 3), np.float32)
  for clip, count in (('Rolle Ä', 3), ('Rolle Ö', 3), ('Take [2]', 3), ('short', 2)):
    for i in range(count):
      _save(str(tmp_path / 'in' / clip / f'f{i}.png'), flat)
  (tmp_path / 'in' / 'Take [2]' / '._f1.png').write_bytes(b'macOS resource fork')
  too_short = []
  triplets = evaluate.list_triplets(str(tmp_path / 'in'), leave_one_out=True,
                                    too_short=too_short)
  # Named as pipeline.run names their output folders (Ä and Ö do not merge into 'Rolle_').
  assert sorted(t['clip'] for t in triplets) == sorted(
      sanitise_clip_name(name) for name in ('Rolle Ä', 'Rolle Ö', 'Take [2]'))
  take = [t for t in triplets if t['clip'] == sanitise_clip_name('Take [2]')][0]
  assert take['frame0'].endswith('f0.png') and take['truth'].endswith('f1.png')
  assert too_short == ['short']
  report = {'mean': {}, 'clips': {}, 'clips_too_short': too_short}  # printed too, not only JSON
  assert evaluate.format_table(report).splitlines()[-1] == (
      'not scored, fewer than 3 frames: 1 clip (short)')
  # A folder whose name reads as a glob is still that folder.
  [one] = evaluate.list_triplets(str(tmp_path / 'in' / 'Take [2]'), leave_one_out=True)
  assert one['truth'] == str(tmp_path / 'in' / 'Take [2]' / 'f1.png')
  for flag in ('--stride=0', '--align=-5'):
    with pytest.raises(SystemExit):
      evaluate.parse_known_args(['--input', 'x', '--output', 'y', '--leave_one_out', flag])


def test_a_csv_manifest_from_excel_with_a_bom_and_capitalised_headers_is_read(tmp_path):
  (tmp_path / 'm.csv').write_bytes('\ufeffFrame0, Truth ,FRAME1,Key\na.png,b.png,c.png,x y\n'
                                   'd.png,e.png,f.png,x_y\n'.encode('utf-8'))
  rows = evaluate.list_triplets(str(tmp_path / 'm.csv'))
  assert [r['truth'] for r in rows] == [str(tmp_path / 'b.png'), str(tmp_path / 'e.png')]
  assert len({r['key'] for r in rows}) == 2  # 'x y' and 'x_y' would both read 'x_y'
  (tmp_path / 'spaced.csv').write_text('frame0, truth, frame1\na.png, b.png, c.png\n')
  assert [r['truth'] for r in evaluate.list_triplets(str(tmp_path / 'spaced.csv'))] == [
      str(tmp_path / 'b.png')]  # (' b.png' was a missing frame)


def test_what_a_triplet_folder_set_holds_besides_triplets(tmp_path):
  """Hidden folders (the `.0002.partial` a killed film_net.render leaves) are no triplets; a
  folder missing its truth is an error row like one missing a frame (it was dropped silently);
  a triplet named `mean` is not taken for the CSV's mean rows."""
  gray = np.full((16, 16, 3), 0.4, np.float32)
  for folder in ('good', 'mean', '.0002.partial', '__MACOSX'):
    for name in TRIPLET_NAMES:
      _save(str(tmp_path / 'in' / folder / name), gray)
  for name in (TRIPLET_NAMES[0], TRIPLET_NAMES[2]):
    _save(str(tmp_path / 'in' / 'no_truth' / name), gray)
  out = str(tmp_path / 'out')
  assert evaluate.main(['--input', str(tmp_path / 'in'), '--output', out, '--no_model',
                        '--baselines', 'repeat']) == 1
  report = json.load(open(os.path.join(out, 'results.json')))
  keys = sorted({r['key'] for r in report['triplets']})
  assert keys[0] == 'good' and keys[1].startswith('mean-') and len(keys) == 2
  (error,) = report['errors']
  assert error['key'] == 'no_truth' and error['error'] == (
      f"no_truth: cannot read {tmp_path / 'in' / 'no_truth' / 'frame10i11.png'}: no such file or "
      f"directory")  # (the OS's words without the path a second time)
  rows = list(csv.DictReader(open(os.path.join(out, 'results.csv'))))
  assert [r['count'] for r in rows if r['key'] == evaluate.MEAN_KEY] == ['2']


def test_names_are_the_folders_and_fit_a_file_name(tmp_path, monkeypatch):
  """`--input .` named the clip '.', its PNGs hidden (`._000000.png`); a long nested clip name
  or manifest key made a PNG name the filesystem refused: a traceback and no report."""
  frames = [_smooth_texture(16, 16, i) for i in range(3)]
  for i, frame in enumerate(frames):
    _save(str(tmp_path / 'reel1' / f'f{i}.png'), frame)
    _save(str(tmp_path / 'long' / ('r' * 140) / ('s' * 140) / f'f{i}.png'), frame)
  monkeypatch.chdir(tmp_path / 'reel1')
  evaluate.run(['--input', '.', '--output', '../out_dot', '--leave_one_out', '--no_model',
                '--baselines', 'repeat'])
  assert os.listdir(tmp_path / 'out_dot' / 'comparisons') == ['reel1_000000.png']
  evaluate.run(['--input', str(tmp_path / 'long'), '--output', str(tmp_path / 'out_long'),
                '--leave_one_out', '--no_model', '--baselines', 'repeat'])
  (png,) = os.listdir(tmp_path / 'out_long' / 'comparisons')
  assert png.startswith('r' * 140 + '_' + 's' * 40) and len(png.encode()) <= 255
  (tmp_path / 'long.csv').write_text(
      f'key,frame0,truth,frame1\n{"k" * 260},reel1/f0.png,reel1/f1.png,reel1/f2.png\n')
  evaluate.run(['--input', str(tmp_path / 'long.csv'), '--output', str(tmp_path / 'out_csv'),
                '--no_model', '--baselines', 'repeat'])
  (png,) = os.listdir(tmp_path / 'out_csv' / 'comparisons')
  assert png.startswith('k' * 100) and len(png.encode()) <= 255


def test_leave_one_out_into_its_own_input_or_above_it_finds_the_clips(tmp_path, capsys):
  """Every clip lay under an --output at or above the input: 'no clip of 3 or more frames'."""
  for i in range(3):
    _save(str(tmp_path / 'project' / 'reel1' / f'f{i}.png'), _smooth_texture(16, 16, i))
  for output in ('project/reel1', 'project'):
    evaluate.run(['--input', str(tmp_path / 'project' / 'reel1'), '--output',
                  str(tmp_path / output), '--leave_one_out', '--no_model', '--baselines', 'repeat'])
    report = json.load(open(tmp_path / output / 'results.json'))
    assert list(report['clips']) == ['reel1'] and report['stride'] == 1
    assert report['model_fingerprint'] is None  # (--no_model)
  # Read again, the comparisons in the clip's folder are not frames of it.
  evaluate.run(['--input', str(tmp_path / 'project' / 'reel1'), '--output',
                str(tmp_path / 'project' / 'reel1'), '--leave_one_out', '--no_model',
                '--baselines', 'repeat'])
  assert json.load(open(tmp_path / 'project' / 'reel1' / 'results.json'))['triplets_listed'] == 1


def test_a_killed_evaluations_comparisons_are_not_footage(tmp_path):
  """Known by the report beside them, a killed evaluation's (none yet) were scored as a clip."""
  for i in range(5):
    _save(str(tmp_path / 'project' / 'reel1' / f'f{i}.png'), _smooth_texture(16, 16, i))
  argv = ['--input', str(tmp_path / 'project'), '--leave_one_out', '--no_model',
          '--baselines', 'repeat']
  evaluate.run(argv + ['--output', str(tmp_path / 'project' / 'a')])
  for name in ('results.json', 'results.csv'):  # as a killed run leaves it
    os.remove(tmp_path / 'project' / 'a' / name)
  assert len(os.listdir(tmp_path / 'project' / 'a' / 'comparisons')) == 3
  evaluate.run(argv + ['--output', str(tmp_path / 'project' / 'b')])
  assert list(json.load(open(tmp_path / 'project' / 'b' / 'results.json'))['clips']) == ['reel1']


def test_flags_for_footage_alone_are_refused_on_curated_triplets(tmp_path, capsys):
  for name in TRIPLET_NAMES:
    _save(str(tmp_path / 'in' / 'a' / name), np.zeros((16, 16, 3), np.float32))
  for flags, says in ((['--stride=2'], '--stride only works with'),
                      (['--scene_cuts'], '--scene_cuts only works with'),
                      (['--stride=2', '--scene_cuts'], '--stride and --scene_cuts only work with')):
    with pytest.raises(SystemExit) as stop:
      evaluate.main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                     '--no_model', *flags])
    assert stop.value.code == 2
    assert f'{says} --leave_one_out' in capsys.readouterr().err
  with pytest.raises(SystemExit) as stop:
    evaluate.main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                   '--no_model', '--leave_one_out', '--scene_cut_threshold=0.3'])
  assert stop.value.code == 2
  assert '--scene_cut_threshold only works with --scene_cuts' in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


def test_leave_one_out_names_clips_as_the_pipeline_names_their_output_folders(tmp_path):
  """The scores join the pipeline's output by clip name: a root clip beside a subfolder of its
  name without frames, a glob-like name and a nested clip, each as the pipeline's folder."""
  from conftest import run_job  # pylint: disable=import-outside-toplevel
  flat = np.zeros((8, 8, 3), np.float32)
  root = tmp_path / 'reel'
  for clip in ('', 'Take [2]', 'box/a b'):
    for i in range(3):
      _save(str(root / clip / f'f{i}.png'), flat)
  (root / 'reel').mkdir()
  (root / 'reel' / 'notes.txt').write_text('no frames here')
  status, _ = run_job(str(root), str(tmp_path / 'out'), None, '--times_to_interpolate=0')
  assert status == 0  # (the folder of notes is a notice: no frames in it)
  made = {os.path.relpath(folder, tmp_path / 'out') for folder, _, names
          in os.walk(tmp_path / 'out') if any(n.startswith('frame_') for n in names)}
  triplets = evaluate.list_triplets(str(root), leave_one_out=True)
  assert {t['clip'] for t in triplets} == made and len(made) == 3


def test_names_that_are_not_utf8_are_error_rows_and_the_rest_is_scored(tmp_path, capsys):
  """A Latin-1 `café` from an old volume: a triplet folder so named stopped the evaluation in a
  traceback; a clip or a frame so named was left out of --leave_one_out unsaid (a frame's
  neighbours then read as a lost scan)."""
  _black_to_gray_triplets(tmp_path / 'in')
  os.rename(tmp_path / 'in' / 'b', os.fsencode(tmp_path / 'in') + b'/caf\xe9')
  out = str(tmp_path / 'out')
  assert evaluate.main(['--input', str(tmp_path / 'in'), '--output', out, '--no_model',
                        '--baselines', 'repeat', '--no_png']) == 1
  report = json.load(open(os.path.join(out, 'results.json')))
  assert [r['key'] for r in report['triplets']] == ['a']
  (error,) = report['errors']
  assert error['truth'] == f'{tmp_path}/in/caf\\xe9/frame10i11.png'
  assert error['error'].startswith(f'caf_: cannot read {tmp_path}/in/caf\\xe9/frame10.png: its '
                                   f'name is not UTF-8')
  for number in range(5):
    _save(str(tmp_path / 'reels' / 'reel' / f'reel_{number:04d}.png'),
          np.full((24, 32, 3), number * 40 / 255, np.float32))
  os.rename(tmp_path / 'reels' / 'reel' / 'reel_0004.png',
            os.fsencode(tmp_path / 'reels' / 'reel') + b'/reel_0004\xe9.png')
  shutil.copytree(tmp_path / 'reels' / 'reel', tmp_path / 'reels' / 'other')
  os.rename(tmp_path / 'reels' / 'other', os.fsencode(tmp_path / 'reels') + b'/\xe9t\xe9')
  capsys.readouterr()
  assert evaluate.main(['--input', str(tmp_path / 'reels'), '--leave_one_out', '--no_model',
                        '--baselines', 'average', '--no_png', '--output', out]) == 1
  report = json.load(open(os.path.join(out, 'results.json')))
  assert [r['key'] for r in report['triplets']] == ['reel_000000', 'reel_000001']
  assert [e['error'] for e in report['errors']] == [
      f'_xe9t_xe9: cannot read {tmp_path}/reels/\\xe9t\\xe9/reel_0000.png and 4 more frame(s) '
      f'in {tmp_path}/reels/\\xe9t\\xe9: its name is not UTF-8 (written on a system of another '
      'code page?), which Beam cannot carry between its steps (rename it); not scored',
      f'reel: cannot read {tmp_path}/reels/reel/reel_0004\\xe9.png: its name is not UTF-8 '
      '(written on a system of another code page?), which Beam cannot carry between its steps '
      '(rename it); not scored']
  assert 'error: reel: cannot read' in capsys.readouterr().err


def test_folders_that_cannot_be_listed_are_error_rows_not_left_out_unsaid(
    tmp_path, capsys, unreadable_folders):
  """A triplet folder or clip of another user's (mode 0700) was missing from the report, which
  scored the rest with exit status 0; an input folder so is a usage error that says why."""
  _black_to_gray_triplets(tmp_path / 'in')
  _black_to_gray_triplets(tmp_path / 'in' / 'b' / 'deeper')  # (two down: no triplets, unsaid)
  unreadable_folders.extend([str(tmp_path / 'in' / 'b'), str(tmp_path / 'in' / 'b' / 'deeper')])
  out = str(tmp_path / 'out')
  assert evaluate.main(['--input', str(tmp_path / 'in'), '--output', out, '--no_model',
                        '--baselines', 'repeat', '--no_png']) == 1
  report = json.load(open(os.path.join(out, 'results.json')))
  assert [r['key'] for r in report['triplets']] == ['a']
  assert [e['error'] for e in report['errors']] == [
      f'b: cannot list {tmp_path}/in/b: Permission denied; not scored']
  for number in range(4):
    for clip in ('reel', 'locked'):
      _save(str(tmp_path / 'reels' / clip / f'reel_{number:04d}.png'),
            np.full((24, 32, 3), number * 40 / 255, np.float32))
  unreadable_folders.append(str(tmp_path / 'reels' / 'locked'))
  assert evaluate.main(['--input', str(tmp_path / 'reels'), '--leave_one_out', '--no_model',
                        '--baselines', 'repeat', '--no_png', '--output', out]) == 1
  report = json.load(open(os.path.join(out, 'results.json')))
  assert {r['clip'] for r in report['triplets']} == {'reel'}
  assert [e['error'] for e in report['errors']] == [
      f'locked: cannot list {tmp_path}/reels/locked: Permission denied; not scored']
  unreadable_folders.append(str(tmp_path / 'reels'))
  capsys.readouterr()
  for spelled in ('reels', 'reels/*'):  # (a glob's said no files match)
    assert evaluate.main(['--input', str(tmp_path / spelled), '--leave_one_out', '--no_model',
                          '--output', str(tmp_path / 'out2')]) == 2
    assert capsys.readouterr().err == (f'error: --input: cannot list {tmp_path}/reels: '
                                       f'Permission denied\n')
  unreadable_folders.append(str(tmp_path / 'in'))
  assert evaluate.main(['--input', str(tmp_path / 'in'), '--no_model', '--output',
                        str(tmp_path / 'out2')]) == 2
  assert capsys.readouterr().err == (f'error: --input: cannot list {tmp_path}/in: Permission '
                                     f'denied\n')
  assert not os.path.exists(tmp_path / 'out2')
