"""`python -m film_net.interpolate` on one pair writes the whole sequence, inputs included; every
command line reads `--flip_average` alike."""
import argparse
import errno
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from film_net import Interpolator, Options
from film_net import interpolate
from film_net import interpolator
from film_net import memory
from film_net.flags import add_flip_average_flags
from pipeline import options as pipeline_flags
from conftest import tool_lines

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('model_flag', ['--model', '--model_path'])
def test_cli_writes_inputs_and_in_betweens(tmp_path, model_flag):
  """(--model_path, as the pipeline's commands name it, is the same flag.)"""
  model = str(tmp_path / 'tiny.npz')
  interp = Interpolator.random(Options.tiny(), seed=0)
  interp.save(model)
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 256, (30, 44, 3), dtype=np.uint8) for _ in range(2)]
  paths = []
  for i, image in enumerate(images):
    paths.append(str(tmp_path / f'in{i}.png'))
    Image.fromarray(image).save(paths[-1])
  out_dir = tmp_path / 'out'
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}  # as a user's shell
  result = subprocess.run(
      [sys.executable, '-m', 'film_net.interpolate', *paths, '--times_to_interpolate', '2',
       '--output_dir', str(out_dir), model_flag, model],
      cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
  assert result.returncode == 0, result.stderr
  assert tool_lines(result.stderr) == []  # TensorFlow's start-up INFO lines are off
  names = sorted(n for n in os.listdir(out_dir) if n != interpolate.RECORD)
  assert names == [f'frame_{i:03d}.png' for i in range(5)]
  written = [np.asarray(Image.open(out_dir / n)) for n in names]
  np.testing.assert_array_equal(written[0], images[0])
  np.testing.assert_array_equal(written[4], images[1])
  expected = interp.recursive([im.astype(np.float32) / 255 for im in images], 2)
  for got, want in zip(written[1:4], expected[1:4]):
    assert np.abs(got.astype(int) - np.clip(want * 255 + 0.5, 0, 255).astype(int)).max() <= 1
  # A shallower run into the same folder leaves no frames of the deeper one trailing it.
  assert interpolate.main([*paths, '--times_to_interpolate', '1', '--output_dir', str(out_dir),
                           '--model', model]) == 0
  assert sorted(os.listdir(out_dir)) == [interpolate.RECORD] + [f'frame_{i:03d}.png'
                                                                for i in range(3)]
  record = json.loads((out_dir / interpolate.RECORD).read_text())
  assert record == {'frames': [f'frame_{i:03d}.png' for i in range(3)], 'complete': True}


def _tiny_model_and_flat_pair(tmp_path):
  """(a tiny random model's path, [in0.png, in1.png]): two flat 44x30 frames."""
  model = str(tmp_path / 'tiny.npz')
  Interpolator.random(Options.tiny(), seed=0).save(model)
  paths = [str(tmp_path / f'in{i}.png') for i in range(2)]
  for i, path in enumerate(paths):
    Image.fromarray(np.full((30, 44, 3), 80 * i, np.uint8)).save(path)
  return model, paths


def test_cli_never_replaces_or_removes_frames_it_did_not_write(tmp_path, capsys):
  """Pointed at the folder of an extracted sequence, it overwrote frames 0-2 and deleted every
  later one as "left by a deeper run": the inputs among them."""
  model = str(tmp_path / 'tiny.npz')
  Interpolator.random(Options.tiny(), seed=0).save(model)
  folder = tmp_path / 'sequence'
  folder.mkdir()
  for i in range(12):  # as `ffmpeg -i clip.mp4 frame_%03d.png` leaves them
    Image.fromarray(np.full((30, 44, 3), 20 * i, np.uint8)).save(folder / f'frame_{i:03d}.png')
  before = {p.name: p.read_bytes() for p in folder.iterdir()}
  argv = [str(folder / 'frame_005.png'), str(folder / 'frame_006.png'), '--model', model]
  assert interpolate.main([*argv, '--output_dir', str(folder)]) == 2
  assert 'holds frames this command did not write (frame_000.png' in capsys.readouterr().err
  assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
  # Its own earlier run's folder, with one of that run's frames as an input: refused as well.
  out = tmp_path / 'out'
  assert interpolate.main([*argv, '--output_dir', str(out)]) == 0
  status = interpolate.main([str(out / 'frame_000.png'), str(out / 'frame_002.png'), '--model',
                             model, '--output_dir', str(out)])
  assert status == 2 and 'frame_000.png is a frame this run would replace' in (
      capsys.readouterr().err)
  # A record that names other files (hand-edited, forged) is refused: `../x` and `notes.txt`
  # were deleted as frames of an earlier run, and `"frames": "ab"` read as files a and b.
  (tmp_path / 'victim.txt').write_text('keep')
  (out / 'a').write_text('keep')
  for frames in (['../victim.txt', 'frame_000.png'], str(tmp_path / 'victim.txt'), 'ab'):
    (out / interpolate.RECORD).write_text(json.dumps({'frames': frames, 'complete': True}))
    assert interpolate.main([*argv, '--output_dir', str(out)]) == 2
    assert 'not this command\'s record of its frames' in capsys.readouterr().err
  assert (tmp_path / 'victim.txt').exists() and (out / 'a').exists()


def test_cli_names_both_frames_of_a_pair_of_two_sizes(tmp_path, capsys):
  model, paths = _tiny_model_and_flat_pair(tmp_path)
  Image.fromarray(np.zeros((40, 44, 3), np.uint8)).save(paths[1])
  assert interpolate.main([*paths, '--output_dir', str(tmp_path / 'out'), '--model', model]) == 1
  assert capsys.readouterr().err == (f'error: frames differ in size: {paths[0]} is 44x30, '
                                     f'{paths[1]} is 44x40; interpolation needs frames of one '
                                     f'size\n')


def test_cli_on_a_full_disk_names_the_frame_it_could_not_write(tmp_path, capsys, monkeypatch):
  """A write's error names no file: `error: [Errno 28] No space left on device`, which disk?"""
  model, paths = _tiny_model_and_flat_pair(tmp_path)
  real_fsync, out = os.fsync, tmp_path / 'out'

  def fsync(fd):
    if os.readlink(f'/proc/self/fd/{fd}').endswith('.png'):
      raise OSError(errno.ENOSPC, 'No space left on device')
    return real_fsync(fd)
  monkeypatch.setattr(os, 'fsync', fsync)
  assert interpolate.main([*paths, '--output_dir', str(out), '--model', model]) == 1
  assert capsys.readouterr().err == (f'error: [Errno 28] cannot write {out}/frame_000.png: No '
                                     f'space left on device\n')
  assert [p.name for p in out.iterdir()] == [interpolate.RECORD]  # (no temporary left)


def test_cli_writes_each_frame_as_it_is_made_and_names_sort_in_time_order(tmp_path,
                                                                           monkeypatch):
  """Every frame was held in memory until the last was made (1025 1080p frames: ~25 GB, and a
  late stop lost them all); past 1000 frames the names' widths mixed (frame_1000 < frame_101)."""
  model, paths = _tiny_model_and_flat_pair(tmp_path)
  out = tmp_path / 'out'
  real = Interpolator.iter_recursive
  written_while_making = []

  def watched(self, frames, times_to_interpolate):
    for i, frame in enumerate(real(self, frames, times_to_interpolate)):
      written_while_making.append(len(list(out.glob('frame_*.png'))) == i)
      yield frame

  monkeypatch.setattr(Interpolator, 'iter_recursive', watched)
  assert interpolate.main([*paths, '--output_dir', str(out), '--model', model,
                           '--times_to_interpolate', '3']) == 0
  assert written_while_making == [True] * 9
  assert interpolate.frame_names(1025)[-2:] == ['frame_1023.png', 'frame_1024.png']
  assert interpolate.frame_names(1025)[999] == 'frame_0999.png'
  assert interpolate.frame_names(513)[-1] == 'frame_512.png'


def test_cli_frames_stopped_mid_write_stay_whole_or_old(tmp_path, monkeypatch):
  """A stop (Ctrl-C, a full disk) while a frame is written leaves the earlier frame of that
  name as it was and no temporary: the frame was written in place, cut short under its name."""
  model, paths = _tiny_model_and_flat_pair(tmp_path)
  out_dir = tmp_path / 'out'
  assert interpolate.main([*paths, '--output_dir', str(out_dir), '--model', model]) == 0
  earlier = (out_dir / 'frame_000.png').read_bytes()
  Image.fromarray(np.full((30, 44, 3), 200, np.uint8)).save(paths[0])
  replace = os.replace

  def stopped(src, dst):
    if str(dst).endswith('.png'):
      raise KeyboardInterrupt
    replace(src, dst)

  monkeypatch.setattr(interpolate.os, 'replace', stopped)
  with pytest.raises(KeyboardInterrupt):
    interpolate.main([*paths, '--output_dir', str(out_dir), '--model', model])
  assert sorted(os.listdir(out_dir)) == [interpolate.RECORD] + [f'frame_{i:03d}.png'
                                                                for i in range(3)]
  assert (out_dir / 'frame_000.png').read_bytes() == earlier
  assert not json.loads((out_dir / interpolate.RECORD).read_text())['complete']


def test_cli_runs_large_frames_as_tiles(tmp_path):
  model = str(tmp_path / 'tiny.npz')
  Interpolator.random(Options.tiny(), seed=0).save(model)
  rng = np.random.default_rng(1)
  images = [rng.integers(0, 256, (64, 160, 3), dtype=np.uint8) for _ in range(2)]
  paths = [str(tmp_path / f'in{i}.png') for i in range(2)]
  for path, image in zip(paths, images):
    Image.fromarray(image).save(path)
  assert interpolate.main([*paths, '--output_dir', str(tmp_path / 'out'), '--model', model,
                           '--tile', '64']) == 0
  tiled = Interpolator.from_path(model, tile=64)  # overlap: a quarter of the tile, 16
  assert tiled.tile_overlap == 16
  want = tiled(*(im.astype(np.float32) / 255 for im in images))
  got = np.asarray(Image.open(tmp_path / 'out' / 'frame_001.png')).astype(int)
  assert np.abs(got - np.clip(want * 255 + 0.5, 0, 255).astype(int)).max() <= 1


def test_cli_reads_frames_as_the_pipeline_does_and_refuses_what_it_cannot(tmp_path, capsys):
  """Float TIFF, which PIL reads as black, is refused, naming the file (one decoder for both)."""
  model = str(tmp_path / 'tiny.npz')
  Interpolator.random(Options.tiny(), seed=0).save(model)
  gray = np.linspace(0, 1, 30 * 44, dtype=np.float32).reshape(30, 44)
  Image.fromarray(gray, mode='F').save(tmp_path / 'float.tif')
  status = interpolate.main([str(tmp_path / 'float.tif'), str(tmp_path / 'float.tif'),
                             '--output_dir', str(tmp_path / 'o'), '--model', model])
  err = capsys.readouterr().err
  assert status == 1 and 'float.tif' in err and 'floating-point TIFF' in err
  assert not (tmp_path / 'o').exists()  # (the empty folder it made was left behind)
  (tmp_path / 'o').mkdir()  # a folder that was there stays
  assert interpolate.main([str(tmp_path / 'float.tif'), str(tmp_path / 'float.tif'),
                           '--output_dir', str(tmp_path / 'o'), '--model', model]) == 1
  assert (tmp_path / 'o').is_dir() and not os.listdir(tmp_path / 'o')


def test_cli_writes_frames_at_the_depth_of_its_inputs_as_the_pipeline_does(tmp_path):
  """Every frame came out 8-bit RGB: a 10-bit scan's copy kept 255 of its codes, alpha went."""
  from transforms import images  # pylint: disable=import-outside-toplevel
  model = str(tmp_path / 'tiny.npz')
  interp = Interpolator.random(Options.tiny(), seed=0)
  interp.save(model)
  rng = np.random.default_rng(3)
  scans = [rng.integers(0, 65536, (30, 44, 2), dtype=np.uint16) for _ in range(2)]  # gray+alpha
  paths = [str(tmp_path / f'scan{i}.png') for i in range(2)]
  for path, scan in zip(paths, scans):
    with open(path, 'wb') as f:
      f.write(images.encode_png(scan))
  out = tmp_path / 'out'
  assert interpolate.main([*paths, '--output_dir', str(out), '--model', model]) == 0
  written = [images.decode((out / f'frame_{i:03d}.png').read_bytes()) for i in range(3)]
  for got, scan in zip(written[::2], scans):
    np.testing.assert_array_equal(got.pixels, scan)
  frames = [images.decode(open(p, 'rb').read()) for p in paths]
  mid = interp.recursive([f.rgb() for f in frames], 1)[1]
  want = images.inbetween_pixels(mid, *frames, 0.5)
  assert written[1].pixels.dtype == np.uint16 and written[1].pixels.shape == (30, 44, 2)
  assert np.abs(written[1].pixels.astype(int) - want.astype(int)).max() <= 1


def test_cli_reports_a_missing_frame(tmp_path):
  """At once: TensorFlow, seconds to import, loads only once the flags and frames are good."""
  result = subprocess.run(
      [sys.executable, '-m', 'film_net.interpolate', str(tmp_path / 'nope.png'),
       str(tmp_path / 'nope2.png'), '--output_dir', str(tmp_path / 'o')],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPROFILEIMPORTTIME='1'))
  assert result.returncode == 1
  said = [line for line in result.stderr.splitlines() if not line.startswith('import time:')]
  assert len(said) == 1 and said[0].startswith('error: ') and 'nope.png' in said[0], said
  assert 'tensorflow' not in result.stderr  # (each import is listed: none of TensorFlow's)
  # An --output_dir that is a file, or a --model that is not there, is a usage error (before
  # any work), not a traceback; it was exit status 1, the file 'File exists'.
  blocker = tmp_path / 'a_file'
  blocker.write_text('')
  for flags, message in (
      (['--output_dir', str(blocker)], f'--output_dir {blocker} is a file, not a folder'),
      (['--output_dir', str(tmp_path / 'o'), '--model', str(tmp_path / 'gone.npz')],
       f'--model {tmp_path / "gone.npz"}: no such file or folder')):
    result = subprocess.run(
        [sys.executable, '-m', 'film_net.interpolate', str(tmp_path / 'nope.png'),
         str(tmp_path / 'nope2.png'), *flags], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 2 and message in result.stderr


def test_an_install_without_tensorflow_says_which_extra_brings_it(tmp_path):
  """As the pipeline's commands say it: it was ModuleNotFoundError's traceback."""
  model, paths = _tiny_model_and_flat_pair(tmp_path)
  hidden = ("import runpy, sys; sys.modules['tensorflow'] = None; "
            "sys.argv[0] = 'film_net.interpolate'; "
            "runpy.run_module('film_net.interpolate', run_name='__main__')")
  done = subprocess.run([sys.executable, '-c', hidden, *paths, '--model', model, '--output_dir',
                         str(tmp_path / 'out')], capture_output=True, text=True, cwd=ROOT,
                        timeout=300)
  assert done.returncode == 2 and done.stderr == (
      'error: TensorFlow is not installed, an extra: pip install .[cpu] (or .[gpu], .[tf])\n')
  assert not (tmp_path / 'out').exists()


def test_cli_refused_before_its_first_frame_leaves_no_folder_or_record(tmp_path, capsys,
                                                                      monkeypatch):
  """Frames too small for the model were refused after the record of the frames 'being written'
  was made (the folder stayed, listing three frames never written, exit 1); a new nested
  `--output_dir` left its parents; and a gs:// one was a local folder named 'gs:'."""
  model, paths = _tiny_model_and_flat_pair(tmp_path)
  small = [str(tmp_path / f'small{i}.png') for i in range(2)]
  for path in small:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
  out = tmp_path / 'new' / 'sub' / 'leaf'
  assert interpolate.main([*small, '--model', model, '--align', '0',
                           '--output_dir', str(out)]) == 2
  assert '8x8' in capsys.readouterr().err and not (tmp_path / 'new').exists()
  assert interpolate.main([paths[0], str(tmp_path / 'gone.png'), '--model', model,
                           '--output_dir', str(out)]) == 1
  assert 'gone.png' in capsys.readouterr().err and not (tmp_path / 'new').exists()
  # Frames too large for the machine's memory (on CPU the operating system would end it).
  with monkeypatch.context() as patch:
    patch.setattr(memory, 'machine_bytes', lambda: memory.BASE_BYTES)
    patch.setattr(interpolator, '_on_gpu', lambda: False)
    assert interpolate.main([*paths, '--model', model, '--output_dir', str(out)]) == 2
  assert 'too large for this machine' in capsys.readouterr().err
  assert not (tmp_path / 'new').exists()
  # Stopped (Ctrl-C) while the model loads: the new folder, still empty, goes too.
  def stopped_while_loading(*args, **kwargs):
    raise KeyboardInterrupt
  monkeypatch.setattr(interpolator.Interpolator, 'from_path', stopped_while_loading)
  with pytest.raises(KeyboardInterrupt):
    interpolate.main([*paths, '--model', model, '--output_dir', str(out)])
  assert not (tmp_path / 'new').exists()
  monkeypatch.undo()
  os.chdir(tmp_path)
  with pytest.raises(SystemExit) as stopped:
    interpolate.main([*paths, '--model', model, '--output_dir', 'gs://bucket/out'])
  assert stopped.value.code == 2 and not (tmp_path / 'gs:').exists()
  assert '--output_dir must be a local folder' in capsys.readouterr().err


@pytest.mark.parametrize('flags, expected', [
    ([], None), (['--flip_average'], True), (['--flip_average=true'], True),
    (['--flip_average=false'], False), (['--no_flip_average'], False)])
def test_every_command_line_reads_flip_average_the_same_way(flags, expected):
  # pipeline.run once took --no_flip_average for a Beam flag, discarded it, and ran flip-averaged.
  from pipeline import evaluate, options  # pylint: disable=import-outside-toplevel
  known, beam_args = options.parse_known_args(['--input', 'in', '--output', 'out'] + flags)
  assert known.flip_average is expected and beam_args == []
  known, beam_args = evaluate.parse_known_args(['--input', 'in', '--output', 'out'] + flags)
  assert known.flip_average is expected and beam_args == []
  parser = argparse.ArgumentParser()
  add_flip_average_flags(parser)
  assert parser.parse_args(flags).flip_average is expected


def test_flip_average_rejects_a_value_that_is_not_a_truth_value(capsys):
  parser = argparse.ArgumentParser()
  add_flip_average_flags(parser)
  with pytest.raises(SystemExit) as stopped:
    parser.parse_args(['--flip_average=sometimes'])
  assert stopped.value.code == 2
  assert "expected true or false, got 'sometimes'" in capsys.readouterr().err


def test_flip_average_help_says_files_trained_from_the_built_in_model_keep_its_default(
    tmp_path):
  """A file fine-tuned from the built-in model carries its meta, so it runs flip-averaged by
  default too; the help said 'off for others', which led users to expect the plain run."""
  from film_net import weights  # pylint: disable=import-outside-toplevel
  tuned = str(tmp_path / 'tuned.npz')
  loaded, options = weights.read_npz(weights.DEFAULT_MODEL)
  weights.save(tuned, loaded, options, meta={'inference': weights.inference_defaults(
      weights.DEFAULT_MODEL)})  # what film_net.train carries over (test_train checks that)
  assert weights.inference_defaults(tuned)['flip_average']
  parser = argparse.ArgumentParser()
  add_flip_average_flags(parser)
  assert 'built-in model and the files trained on from it' in ' '.join(
      parser.format_help().split())


def test_the_pytorch_trainer_without_pytorch_says_how_to_get_it():
  """PyTorch is an optional extra; without it the trainer ended in a ModuleNotFoundError
  traceback."""
  blocked = ('import runpy, sys; sys.modules["torch"] = None; sys.argv[1:] = ["--help"]; '
             'runpy.run_module("film_net.train_torch", run_name="__main__")')
  done = subprocess.run([sys.executable, '-c', blocked], capture_output=True, text=True,
                        cwd=ROOT)
  assert done.returncode == 1 and 'Traceback' not in done.stderr
  assert done.stderr.strip() == ('film_net.train_torch needs PyTorch, an optional extra: '
                                 'pip install .[train-gpu]')
  imported = subprocess.run([sys.executable, '-c', blocked.replace(
      'runpy.run_module("film_net.train_torch", run_name="__main__")',
      'import film_net.train_torch')], capture_output=True, text=True, cwd=ROOT)
  assert 'ImportError: film_net.train_torch needs PyTorch' in imported.stderr  # as importers expect


def test_a_recursion_too_deep_to_write_is_a_usage_error(tmp_path, capsys):
  """--times_to_interpolate 30 was taken: a pipeline planned 2^30 frames per pair in memory,
  printed `0/2 pairs` for a minute and was killed for memory, having written nothing."""
  from pipeline import run as run_module  # pylint: disable=import-outside-toplevel
  assert run_module.main(['--input', str(tmp_path), '--output', str(tmp_path / 'out'),
                          '--times_to_interpolate', '11']) == 2
  assert 'argument --times_to_interpolate: must be in [0, 10], got 11' in capsys.readouterr().err
  huge = '9' * 400  # past a float's range: an integer flag of no upper bound takes it
  assert pipeline_flags.parse_known_args(['--input', str(tmp_path), '--output', 'out',
                                          '--max_pixels', huge])[0].max_pixels == int(huge)
  with pytest.raises(SystemExit) as stop:
    interpolate.main(['a.png', 'b.png', '--output_dir', str(tmp_path / 'o'),
                      '--times_to_interpolate', '30'])
  assert stop.value.code == 2 and 'must be in [0, 10], got 30' in capsys.readouterr().err
  assert not (tmp_path / 'out').exists() and not (tmp_path / 'o').exists()


def _every_command_line():
  """(module, main) of every command line with a parser."""
  from film_net import average, export, render, train  # pylint: disable=import-outside-toplevel
  from pipeline import evaluate, run, sample_footage  # pylint: disable=import-outside-toplevel
  return [('film_net.interpolate', interpolate.main), ('film_net.render', render.main),
          ('film_net.export', export.main), ('film_net.average', average.main),
          ('film_net.train', train.main), ('pipeline.evaluate', evaluate.main),
          ('pipeline.run', run.main), ('pipeline.sample_footage', sample_footage.main)]


@pytest.mark.parametrize('module, main', _every_command_line())
def test_every_command_line_names_itself_and_takes_flags_whole(capsys, module, main):
  """Usage lines said `evaluate.py`, `train.py`; and an abbreviation was taken silently for
  another flag in five of them (`--worker 2` set train_torch's --workers)."""
  try:
    status = main(['--outp', 'x', '--help_me'])  # (pipeline.run's returns its exit status)
  except SystemExit as stop:
    status = stop.code
  err = capsys.readouterr().err
  assert status == 2 and err.startswith(f'usage: python -m {module} ')
  error = err.splitlines()[-1]  # --outp is not --output: unknown, or --output still missing
  assert error.startswith(f'python -m {module}: error: ')
  assert 'unrecognized arguments: --outp' in error or '--output' in error.split('required: ')[1]


@pytest.mark.parametrize('module', ['pipeline.run', 'pipeline.evaluate'])
def test_the_job_commands_help_names_the_beam_flags_they_read(capsys, module):
  """--dry_run, --runner and the local workers' flags went on to Beam, so --help named none of
  them: a user learnt of a dry run from the README alone."""
  main = dict(_every_command_line())[module]
  try:
    status = main(['--help'])  # (pipeline.run's returns its exit status)
  except SystemExit as stop:
    status = stop.code
  shown = ' '.join(capsys.readouterr().out.split())
  assert status == 0
  for flag in ('--dry_run[=true|false]', '--runner DirectRunner', 'DataflowRunner',
               '--direct_running_mode multi_processing', '--direct_num_workers N'):
    assert flag in shown, flag


@pytest.mark.parametrize('argv, message', [
    (['--size', '160'], "argument --size: must be WIDTHxHEIGHT (e.g. 160x96), got '160'"),
    (['--size', '0x0'], 'argument --size: each side must be 8 to 8192 px, got 0x0'),
    (['--frames', '1'], 'argument --frames: must be >= 2, got 1'),
    (['--clips', '-2'], 'argument --clips: must be >= 0, got -2'),
    (['--clips', '0', '--edits', '0'], '--clips 0 and --edits 0 write nothing'),
    (['--output', __file__], f'--output {__file__} is a file, not a folder'),
    (['--output', '/proc/film-test'], '--output /proc/film-test: cannot write there (')])
def test_sample_footage_refuses_what_it_cannot_write(tmp_path, capsys, argv, message):
  """Each was a traceback, an empty clip folder or nothing at all, with exit status 0 or 1."""
  from pipeline import sample_footage  # pylint: disable=import-outside-toplevel
  with pytest.raises(SystemExit) as stop:
    sample_footage.main(['--output', str(tmp_path / 'out'), *argv])
  assert stop.value.code == 2 and message in capsys.readouterr().err


def test_sample_footage_again_into_its_folder_writes_the_new_set_alone(tmp_path):
  """A smaller set over a larger one left the larger one's frames and clips: a clip of frames of
  two sizes, which the README's next command refused. What is not its own stays."""
  from pipeline import sample_footage  # pylint: disable=import-outside-toplevel
  out = tmp_path / 'sf'
  sample_footage.main(['--output', str(out), '--frames', '5', '--clips', '2', '--size', '64x48'])
  (out / 'notes.txt').write_text('mine')
  (out / 'clip_01' / 'mine.txt').write_text('mine')
  for name in ('clip_000/frame000.png', 'clip_01/frame0001.png', 'clip_01/frame009.png/x'):
    (out / name).parent.mkdir(exist_ok=True)  # names it never writes: left alone
    (out / name).write_text('mine')
  sample_footage.main(['--output', str(out), '--frames', '3', '--clips', '1', '--edits', '0',
                       '--size', '96x64'])
  assert sorted(p.name for p in out.iterdir()) == ['clip_00', 'clip_000', 'clip_01', 'notes.txt']
  assert sorted(p.name for p in (out / 'clip_00').iterdir()) == [
      f'frame{i:03d}.png' for i in range(3)]
  assert {Image.open(p).size for p in (out / 'clip_00').iterdir()} == {(96, 64)}
  assert sorted(p.name for p in (out / 'clip_01').iterdir()) == [
      'frame0001.png', 'frame009.png', 'mine.txt']
  assert (out / 'clip_000' / 'frame000.png').read_text() == 'mine'


@pytest.mark.parametrize('argv, message', [
    (['--tile', 'abc'], "argument --tile: invalid int value: 'abc'"),
    (['--direct_running_mode', 'bogus'], "argument --direct_running_mode: invalid choice: "
                                         "'bogus'")])
def test_a_bad_value_is_one_line_under_the_commands_own_usage(tmp_path, capsys, argv, message):
  """--tile named a function ('invalid tile_size value'); a bad value of a Beam flag printed the
  usage of Beam's 120-odd flags under `run.py`."""
  from pipeline import run  # pylint: disable=import-outside-toplevel
  assert run.main(['--input', str(tmp_path), '--output', str(tmp_path / 'out'), *argv]) == 2
  err = capsys.readouterr().err
  assert f'python -m pipeline.run: error: {message}' in err and len(err.splitlines()) < 25


@pytest.mark.parametrize('argv, message', [
    (['--direct_num_workers', '-1'], 'argument --direct_num_workers: must be >= 0'),
    (['--model_path', ''], 'argument --model_path: may not be empty')])
def test_a_bad_value_is_refused_before_the_model_loads(tmp_path, capsys, argv, message):
  """A negative worker count was Beam's IndexError, 50 lines after the model load; an empty
  --model_path (`--model_path "$MODEL"`, unset) ran the built-in model and redid every pair."""
  from pipeline import run  # pylint: disable=import-outside-toplevel
  assert run.main(['--input', str(tmp_path), '--output', str(tmp_path / 'out'), *argv]) == 2
  assert f'python -m pipeline.run: error: {message}' in capsys.readouterr().err


@pytest.mark.parametrize('module, argv', [
    ('film_net.interpolate', ['a.png', 'b.png', '--output_dir', 'o', '--model', '']),
    ('film_net.interpolate', ['a.png', 'b.png', '--output_dir', '']),
    ('film_net.export', ['--output', '']),
    ('film_net.export', ['--output', 'o', '--model_path', ' ']),
    ('film_net.average', ['default', '', '--output', 'o.npz']),
    ('film_net.average', ['default', 'default', '--output', '']),
    ('film_net.render', ['--output', '']),
    ('pipeline.sample_footage', ['--output', '']),
    ('film_net.train', ['--output_dir', '']),
    ('film_net.train', ['--output_dir', 'o', '--clips', '']),  # (trained on renders alone)
    ('film_net.train', ['--output_dir', 'o', '--init', '']),
    ('pipeline.run', ['--input', '', '--output', 'o']),
    ('pipeline.run', ['--input', 'i', '--output', '']),
    ('pipeline.evaluate', ['--input', 'i', '--output', 'o', '--model_path', '']),
    ('pipeline.evaluate', ['--input', 'i', '--output', '']),
    ('pipeline.evaluate', ['--input', '', '--output', 'o'])])
def test_an_empty_path_is_a_usage_error(tmp_path, monkeypatch, capsys, module, argv):
  """An unset variable in a script (`--output "$OUT"`): an empty output wrote clips, markers and
  records into the current folder; an empty model was the built-in one, which redid every pair
  of the user's model with it."""
  monkeypatch.chdir(tmp_path)
  try:
    status = dict(_every_command_line())[module](argv)  # (pipeline.run's returns its status)
  except SystemExit as stop:
    status = stop.code
  assert status == 2 and 'may not be empty' in capsys.readouterr().err
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize('module, argv', [
    ('film_net.train', ['--output_dir', os.devnull, '--steps', '1']),
    ('film_net.interpolate', ['a.png', 'b.png', '--output_dir', os.devnull]),
    ('film_net.export', ['--output', os.devnull]),
    ('pipeline.sample_footage', ['--output', os.devnull])])
def test_a_folder_flag_naming_a_device_or_pipe_is_a_usage_error(capsys, module, argv):
  """`/dev/null` or a FIFO passed the check that --output_dir is no file, then failed in
  `os.makedirs` with a traceback."""
  main = dict(_every_command_line())[module]
  with pytest.raises(SystemExit) as stop:
    main(argv)
  assert stop.value.code == 2 and f'{os.devnull} is a file, not a folder' in (
      capsys.readouterr().err)


def test_export_refuses_a_folder_of_other_files_before_loading_a_model(tmp_path, capsys,
                                                                      monkeypatch):
  """It was refused after the model was loaded and traced, exit 1, where the command's other
  refusals of its paths exit 2 at once."""
  from film_net import export  # pylint: disable=import-outside-toplevel
  mine = tmp_path / 'mine'
  mine.mkdir()
  (mine / 'notes.txt').write_text('keep')
  monkeypatch.setattr(export.Interpolator, 'from_path', lambda *a, **k: pytest.fail('loaded'))
  assert export.main(['--output', str(mine)]) == 2
  assert capsys.readouterr().err == (
      f'error: cannot write a SavedModel to {mine}: {mine} holds files other than a SavedModel '
      '(notes.txt): name a new or empty folder, or an earlier export to replace\n')
  assert [p.name for p in mine.iterdir()] == ['notes.txt']


# Runs a command as `python -m` would, and sends it Ctrl-C (SIGINT) at its body's first import of
# a module not loaded yet: in the middle of the imports that take the first seconds of a command.
_INTERRUPTED_WHILE_IMPORTING = """
import os, runpy, signal, sys

class InterruptAtTheModulesFirstImport:
  sent = False

  def find_spec(self, name, path=None, target=None):
    frame = sys._getframe(1)
    while frame is not None and not self.sent:
      if frame.f_globals.get('__name__') == '__main__' and frame.f_globals.get('__spec__'):
        self.sent = True  # (the -c script's own frame has no __spec__)
        os.kill(os.getpid(), signal.SIGINT)
      frame = frame.f_back
    return None

sys.meta_path.insert(0, InterruptAtTheModulesFirstImport())
sys.argv = [sys.argv[1], '--help']
runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
"""


@pytest.mark.parametrize('module', [module for module, _ in _every_command_line()] +
                         ['film_net.train_torch'])
def test_ctrl_c_while_a_command_imports_ends_it_without_a_traceback(module):
  """Ctrl-C in a command's first seconds printed 30-50 lines of import machinery ending in
  KeyboardInterrupt."""
  done = subprocess.run([sys.executable, '-c', _INTERRUPTED_WHILE_IMPORTING, module], cwd=ROOT,
                        capture_output=True, text=True, timeout=120,
                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  # (as a terminal starts it: where a script started the tests in the background, SIGINT is
  # ignored, and so, rightly, by the command)
  assert done.returncode == -signal.SIGINT, (done.returncode, done.stderr[-2000:])
  assert done.stdout == '' and done.stderr == ''


def test_a_command_started_with_ctrl_c_ignored_goes_on_ignoring_it():
  """A command started in the background by a shell script ignores SIGINT: so must its imports
  (and what follows, as before)."""
  done = subprocess.run([sys.executable, '-c', _INTERRUPTED_WHILE_IMPORTING, 'pipeline.run'],
                        cwd=ROOT, capture_output=True, text=True, timeout=120,
                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
  assert done.returncode == 0 and 'usage: python -m pipeline.run' in done.stdout, done.stderr


def test_once_a_command_started_ctrl_c_raises_a_keyboard_interrupt_again():
  from film_net import flags  # pylint: disable=import-outside-toplevel
  inherited = signal.getsignal(signal.SIGINT)
  try:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as the module run as a command left it
    flags.start_command()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # started in the background: left alone
    flags.start_command()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
  finally:
    signal.signal(signal.SIGINT, inherited)


# The start of a script that sends itself Ctrl-C (SIGINT) when it first imports Beam.
_INTERRUPT_AT_THE_FIRST_BEAM_IMPORT = """
import os, signal, sys

class InterruptAtTheFirstBeamImport:
  def find_spec(self, name, path=None, target=None):
    if name == 'apache_beam':
      sys.meta_path.remove(self)
      os.kill(os.getpid(), signal.SIGINT)
    return None

sys.meta_path.insert(0, InterruptAtTheFirstBeamImport())
"""


def test_ctrl_c_while_a_command_works_is_one_line_and_status_130(tmp_path):
  """film_net.interpolate imports Beam's file systems when it reads its first frame: Ctrl-C
  then printed 39-123 lines of traceback (so did one during the model's call)."""
  frame = tmp_path / 'a.png'
  Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(frame)
  script = _INTERRUPT_AT_THE_FIRST_BEAM_IMPORT + """
import runpy
sys.argv = ['film_net.interpolate'] + sys.argv[1:]
runpy.run_module('film_net.interpolate', run_name='__main__', alter_sys=True)
"""
  done = subprocess.run([sys.executable, '-c', script, str(frame), str(frame), '--output_dir',
                         str(tmp_path / 'out')], cwd=ROOT, capture_output=True, text=True,
                        timeout=300, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                      signal.SIG_DFL))
  assert done.returncode == 130, done.stderr[-3000:]
  assert done.stderr.splitlines()[-1] == 'interrupted' and 'Traceback' not in done.stderr
  assert not list(tmp_path.glob('out/*.png'))


def test_the_installed_command_ends_quietly_on_ctrl_c_while_it_imports_too():
  """pip's wrapper for `film-interpolate` imports the entry point named in setup.py, where
  pipeline.run's own first lines do not run: Ctrl-C there printed 47 lines of traceback."""
  with open(os.path.join(ROOT, 'setup.py'), encoding='utf-8') as setup:
    module, function = re.search(r"'film-interpolate=([\w.]+):(\w+)'", setup.read()).groups()
  wrapper = _INTERRUPT_AT_THE_FIRST_BEAM_IMPORT + f"""
from {module} import {function}  # as pip's console-script wrapper does
sys.argv = ['film-interpolate', '--help']
sys.exit({function}())
"""
  done = subprocess.run([sys.executable, '-c', wrapper], cwd=ROOT, capture_output=True,
                        text=True, timeout=120,
                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  assert done.returncode == -signal.SIGINT, (done.returncode, done.stderr[-2000:])
  assert done.stdout == '' and done.stderr == ''


def test_the_installed_command_runs_pipeline_run(capsys, monkeypatch):
  from pipeline import film_interpolate  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(sys, 'argv', ['film-interpolate', '--help'])
  try:
    status = film_interpolate()
  except SystemExit as stop:
    status = stop.code
  assert status == 0 and 'usage: python -m pipeline.run' in capsys.readouterr().out


def test_plain_log_lines_read_as_the_tools_once_per_command_and_keep_every_error():
  script = """
import logging
from film_net import flags
for night in (1, 2):
  flags.plain_log_lines()
  for _ in range(2):
    logging.getLogger('pipeline.run').warning('nothing pruned')
    logging.getLogger('pipeline.run').error('cannot list gs://b')
"""
  done = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  assert done.stderr.splitlines() == ['warning: nothing pruned', 'error: cannot list gs://b',
                                      'error: cannot list gs://b'] * 2
