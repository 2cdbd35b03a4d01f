"""Bad input never stops the run: each problem becomes an error record naming the file and the
reason, the other pairs complete, every readable original is still written, and the exit status
is non-zero; what the input merely is (a lost scan, a clip of one frame) is a notice that fails
nothing. A missing or broken model fails before any work."""

import errno
import glob
import io
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, make_clip, read_png, run_job, tool_lines


def _errors(output, run_id):
  rows = []
  for path in glob.glob(os.path.join(output, '_runs', run_id, 'errors-*.jsonl')):
    rows += [json.loads(line) for line in open(path) if line.strip()]
  return rows


def _pairs(output, run_id):
  rows = []
  for path in glob.glob(os.path.join(output, '_runs', run_id, 'pairs-*.jsonl')):
    rows += [json.loads(line) for line in open(path) if line.strip()]
  return rows


def _one_error(errors, needle):
  found = [e for e in errors if needle in json.dumps(e)]
  assert found, f'no error record mentions {needle}: {errors}'
  return found[0]


def test_every_bad_input_is_reported_and_the_rest_completes(tmp_path, tiny_model, capsys):
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  good = make_clip(archive / 'good', 3, seed=1)
  corrupt = make_clip(archive / 'corrupt', 3, seed=2)
  data = (archive / 'corrupt' / 'frame001.png').read_bytes()
  (archive / 'corrupt' / 'frame001.png').write_bytes(data[:len(data) // 2])
  make_clip(archive / 'garbage', 3, seed=3)
  (archive / 'garbage' / 'frame002.png').write_text('this is not a picture')
  make_clip(archive / 'stray', 2, seed=4)
  (archive / 'stray' / 'notes.txt').write_text('shot on 16mm')
  make_clip(archive / 'mismatch', 1, seed=5)
  Image.fromarray(np.zeros((40, 72, 3), np.uint8)).save(archive / 'mismatch' / 'frame001.png')
  single = make_clip(archive / 'single', 1, seed=6)
  (archive / 'empty').mkdir()
  make_clip(archive / 'bomb', 2, seed=7)
  Image.new('RGB', (400, 300)).save(archive / 'bomb' / 'frame002.png')
  gappy = make_clip(archive / 'gappy', 4, seed=8)  # a scan lost: frame002 is missing
  (archive / 'gappy' / 'frame002.png').unlink()
  make_clip(archive / 'twice', 3, seed=9)  # one scan twice under two names
  (archive / 'twice' / 'frame1.png').write_bytes((archive / 'twice' / 'frame001.png').read_bytes())

  status, run_id = run_job(str(archive), output, model_path, '--max_pixels=100000')
  assert status == 1
  printed = capsys.readouterr()
  assert 'FAILED' in printed.err
  errors = _errors(output, run_id)
  # What the input is and the run did all it could with is a notice: listed apart, fails nothing.
  notices = {e['message'] for e in errors if e['severity'] == 'notice'}
  assert len(notices) == 4 and all(any(clip in n for n in notices)
                                   for clip in ('/single ', '/gappy:', '/twice:', '/notes.txt;'))
  assert all(e['severity'] == 'error' for e in errors if e['message'] not in notices)
  assert all(n not in printed.err and n in printed.out for n in notices)
  assert f'{len(errors) - 4} errors and 4 notices' in printed.out
  assert 'truncated' in _one_error(errors, 'corrupt/frame001.png')['message']
  assert _one_error(errors, 'garbage/frame002.png')['stage'] == 'decode'
  assert 'not an image' in _one_error(errors, 'notes.txt')['message']
  assert 'differ in size' in _one_error(errors, 'mismatch/frame001.png')['message']
  assert 'only one frame' in _one_error(errors, 'single/frame000.png')['message']
  assert 'empty clip folder' in _one_error(errors, 'empty')['message']
  assert 'over the limit' in _one_error(errors, 'bomb/frame002.png')['message']
  gap = _one_error(errors, 'frame numbers skip')
  assert gap['uris'] == [str(archive / 'gappy' / f'frame00{k}.png') for k in (1, 3)]
  assert 'from frame001.png to frame003.png (1 frame missing?)' in gap['message']
  twice = _one_error(errors, 'share one frame number')
  assert sorted(twice['uris']) == [str(archive / 'twice' / n) for n in ('frame001.png',
                                                                          'frame1.png')]
  for e in errors:
    assert e['uris'] and e['message'] and e['error_type'] and e['stage']

  def names(clip):
    return sorted(os.listdir(os.path.join(output, clip)))
  assert names('good') == [f'frame_{i:06d}.png' for i in range(5)]
  assert names('stray') == [f'frame_{i:06d}.png' for i in range(3)]
  # Readable originals are written at their index even when their pairs fail.
  assert names('corrupt') == ['frame_000000.png', 'frame_000004.png']
  np.testing.assert_array_equal(read_png(os.path.join(output, 'corrupt/frame_000004.png')),
                                corrupt[2])
  assert names('garbage') == ['frame_000000.png', 'frame_000001.png', 'frame_000002.png']
  assert names('mismatch') == ['frame_000000.png', 'frame_000002.png']
  assert names('bomb') == ['frame_000000.png', 'frame_000001.png', 'frame_000002.png']
  # The clip with the gap still runs whole, its frames taken as consecutive.
  assert names('gappy') == [f'frame_{i:06d}.png' for i in range(5)]
  np.testing.assert_array_equal(read_png(os.path.join(output, 'gappy/frame_000004.png')),
                                gappy[3])
  assert names('single') == ['frame_000000.png']
  assert names('twice') == [f'frame_{i:06d}.png' for i in range(7)]  # used, as the record says
  np.testing.assert_array_equal(read_png(os.path.join(output, 'single/frame_000000.png')),
                                single[0])
  np.testing.assert_array_equal(read_png(os.path.join(output, 'good/frame_000004.png')), good[2])

  pairs = _pairs(output, run_id)
  failed = {(p['clip'], p['pair']) for p in pairs if p['status'] == 'failed'}
  assert failed == {('corrupt', 0), ('corrupt', 1), ('garbage', 1), ('mismatch', 0),
                    ('bomb', 1)}
  summary = json.load(open(os.path.join(output, '_runs', run_id, 'summary.json')))
  assert summary['status'] == 'failed' and summary['pairs']['failed'] == 5
  assert (summary['errors'], summary['notices']) == (len(errors) - 4, 4)
  assert sorted(summary['notice_messages']) == sorted(notices)
  on_disk = sum(len(files) for d, _, files in os.walk(output)
                if not os.path.relpath(d, output).startswith('_'))
  assert summary['frames_written'] == on_disk


def test_a_stray_file_beside_a_clips_frames_is_a_notice_and_the_run_passes(tmp_path, tiny_model,
                                                                          capsys):
  """A scan folder's notes or a scanner's log failed the run (exit 1, FAILED) every night,
  though every pair was made. (What the OS leaves, Thumbs.db say, is passed over unnoted.)"""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'reel', 3, seed=1)
  (archive / 'reel' / 'notes.txt').write_text('shot on 16mm')
  (archive / 'reel' / 'scan_log.csv').write_text('frame,exposure')
  (archive / 'reel' / 'Thumbs.db').write_bytes(b'\0' * 64)
  status, run_id = run_job(str(archive), output, model_path)
  printed = capsys.readouterr()
  assert status == 0 and 'FAILED' not in printed.err
  assert '2 pairs (2 ok, 0 skipped, 0 failed), 0 errors and 2 notices' in printed.out
  errors = _errors(output, run_id)
  assert {e['severity'] for e in errors} == {'notice'}
  for name in ('notes.txt', 'scan_log.csv'):
    assert 'the clip runs without it' in _one_error(errors, name)['message']
  assert sorted(os.listdir(os.path.join(output, 'reel'))) == [
      f'frame_{i:06d}.png' for i in range(5)]


def test_a_named_pipe_among_the_frames_is_an_error_not_a_run_that_never_ends(tmp_path,
                                                                         tiny_model):
  """Read as a frame, a FIFO blocked its unit's reader for ever: the other clips finished and
  the run never ended, a nightly job stuck until killed. Named in a manifest, the same."""
  make_clip(tmp_path / 'archive' / 'good', 3, seed=1)
  make_clip(tmp_path / 'archive' / 'piped', 3, seed=2)
  fifo = tmp_path / 'archive' / 'piped' / 'frame003.png'
  os.mkfifo(fifo)
  os.mkfifo(tmp_path / 'archive' / 'good' / 'capture.fifo')  # no frame: a notice, as any file
  output = str(tmp_path / 'out')
  status, run_id = run_job(str(tmp_path / 'archive'), output, tiny_model[0])
  assert status == 1 and len(glob.glob(os.path.join(output, 'good', '*.png'))) == 5
  errors = [e for e in _errors(output, run_id) if e['severity'] == 'error']
  assert [e for e in errors if 'capture.fifo' in e['message']] == []
  (error,) = [e for e in errors if str(fifo) in e['message']]
  assert 'not a regular file (a named pipe, socket or device)' in error['message']
  from transforms import files, images  # pylint: disable=import-outside-toplevel
  for read in (files.read_bytes, images.header_size):  # (a manifest's row; a size check)
    with pytest.raises(ValueError, match='frame003.png is not a regular file'):
      read(str(fifo))


def test_a_disk_that_fills_up_mid_run_is_one_line_and_the_next_run_finishes(
    tmp_path, tiny_model, monkeypatch, capsys):
  """The run records' writer failing (ENOSPC) ended the run in 160 lines of Beam tracebacks."""
  from apache_beam.io import textio  # pylint: disable=import-outside-toplevel
  from pipeline import launch  # pylint: disable=import-outside-toplevel
  from pipeline import run as run_module  # pylint: disable=import-outside-toplevel
  make_clip(tmp_path / 'archive' / 'clip', 3, seed=1)
  output = str(tmp_path / 'out')

  def full(self, file_handle, encoded_value):
    raise OSError(28, 'No space left on device')
  with monkeypatch.context() as patched:
    sink = textio._TextSink  # pylint: disable=protected-access
    patched.setattr(sink, 'write_encoded_record', full)
    status = run_module.main([f'--input={tmp_path / "archive"}', f'--output={output}',
                              f'--model_path={tiny_model[0]}'])
  err = capsys.readouterr().err
  # Beam's message names no file: the line says where the space is (tmp_path's disk is the
  # temporary folder's, said once).
  assert status == 1 and len(tool_lines(err)) == 1, err
  assert re.fullmatch(
      r'error: the job stopped: \[Errno 28\] No space left on device \(\d+\.\d\d GB free on '
      + re.escape(output) + r'\)\. What it wrote is whole; once that is mended, the same command '
      r'finishes the job', tool_lines(err)[0]), err
  assert re.fullmatch(r'\d+\.\d\d GB free on ' + re.escape(tempfile.gettempdir()),
                      launch.free_space('gs://bucket/out'))  # (no local output)
  status, _ = run_job(str(tmp_path / 'archive'), output, tiny_model[0])
  assert status == 0 and len(glob.glob(os.path.join(output, 'clip', '*.png'))) == 5
  # Any other error of the OS's is a fault to be seen, traceback and all, not "mend the disk".
  assert launch.storage_failure(RuntimeError(
      "OSError: [Errno 2] No such file or directory: 'x' [while running 'Step']")) is None
  assert launch.storage_failure(OSError(errno.EMFILE, 'Too many open files')) is None
  assert launch.storage_failure(OSError(errno.EROFS, 'Read-only file system', '/mnt/o')) == (
      '[Errno 30] Read-only file system: /mnt/o')
  # A quota, a failing disk, a file over the disk's size limit: the storage's, as a full disk.
  for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG):
    assert launch.storage_failure(OSError(code, 'x')) == f'[Errno {code}] x'
    assert launch.storage_failure(RuntimeError(
        f"OSError: [Errno {code}] x [while running 'Step']")) == f'[Errno {code}] x'


def test_frames_of_another_size_are_reported_when_copied_too(tmp_path, tiny_model):
  """At --times_to_interpolate 0 a clip with a frame of another size ran 'ok' with exit 0 and
  delivered a sequence of mixed sizes; each pair is checked, across work units too."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'clip', 3, seed=5)
  Image.fromarray(np.zeros((40, 72, 3), np.uint8)).save(archive / 'clip' / 'frame001.png')
  status, run_id = run_job(str(archive), output, model_path, '--times_to_interpolate=0',
                           '--pairs_per_unit=1')
  assert status == 1
  assert {p['pair']: p['status'] for p in _pairs(output, run_id)} == {0: 'failed', 1: 'failed'}
  messages = [e['message'] for e in _errors(output, run_id)]
  assert len(messages) == 2 and all('differ in size' in m for m in messages)
  assert sorted(os.listdir(os.path.join(output, 'clip'))) == [  # the originals, as they are
      f'frame_{i:06d}.png' for i in range(3)]


def test_a_manifest_row_that_is_not_utf8_is_named_and_the_others_run(tmp_path, tiny_model):
  """A Latin-1 manifest (Excel's plain "CSV") was decoded with U+FFFD in place of its accents:
  its frames then 'did not exist', each a record naming a path nobody wrote."""
  model_path, _ = tiny_model
  make_clip(tmp_path / 'caf\u00e9', 2, seed=3)
  make_clip(tmp_path / 'plain', 2, seed=4)
  manifest = tmp_path / 'pairs.csv'
  manifest.write_bytes('clip,frame0,frame1\n'
                       'a,caf\u00e9/frame000.png,caf\u00e9/frame001.png\n'
                       'b,plain/frame000.png,plain/frame001.png\n'
                       'c,\u20ac/frame000.png,\u20ac/frame001.png\n'.encode('cp1252'))
  output = str(tmp_path / 'out')
  status, run_id = run_job(str(manifest), output, model_path)
  assert status == 1
  assert sorted(e['message'] for e in _errors(output, run_id)) == [  # (0x80: the least such)
      f'{manifest} line {n}: malformed manifest row: not UTF-8 text (byte 0x{b:02X}): save the '
      f'manifest as UTF-8 (Excel: "CSV UTF-8")' for n, b in ((2, 0xE9), (4, 0x80))]
  assert [p['clip'] for p in _pairs(output, run_id)] == ['b']
  assert sorted(os.listdir(output)) == ['_markers', '_runs', 'b']
  lines = manifest.read_bytes().decode('latin-1').splitlines()[1:3]
  manifest = tmp_path / 'pairs.jsonl'
  manifest.write_bytes('\n'.join(json.dumps(dict(zip(('clip', 'frame0', 'frame1'), l.split(','))),
                                             ensure_ascii=False) for l in lines).encode('latin-1'))
  status, run_id = run_job(str(manifest), output, model_path)
  assert status == 1 and [e['message'] for e in _errors(output, run_id)] == [
      f'{manifest} line 1: malformed manifest row: not UTF-8 text (byte 0xE9): save the '
      f'manifest as UTF-8 (Excel: "CSV UTF-8")']
  assert [p['status'] for p in _pairs(output, run_id)] == ['skipped']


def test_missing_input_and_manifest_problems(tmp_path, tiny_model):
  model_path, _ = tiny_model
  output = str(tmp_path / 'out')
  status, run_id = run_job(str(tmp_path / 'nowhere'), output, model_path)
  assert status == 1
  assert 'does not exist' in _one_error(_errors(output, run_id), 'nowhere')['message']
  status, run_id = run_job(str(tmp_path / 'nowhere.csv'), output, model_path)
  assert status == 1
  assert 'manifest does not exist' in _one_error(_errors(output, run_id), 'nowhere.csv')['message']

  frames = make_clip(tmp_path / 'frames', 4, seed=8)
  manifest = tmp_path / 'pairs.jsonl'
  rows = [{'clip': 'shot 1', 'frame0': 'frames/frame000.png', 'frame1': 'frames/frame001.png'},
          {'clip': 'shot 1', 'frame0': 'frames/frame001.png', 'frame1': 'frames/frame002.png'},
          '{"clip": "shot 1", "frame0": broken',
          {'clip': 'other', 'frame0': 'frames/frame002.png'},
          {'clip': '../../escape', 'frame0': str(tmp_path / 'frames/frame002.png'),
           'frame1': 'frames/frame003.png'}]
  manifest.write_text('\n'.join(r if isinstance(r, str) else json.dumps(r) for r in rows))
  status, run_id = run_job(str(manifest), output, model_path)
  assert status == 1
  errors = _errors(output, run_id)
  assert len(errors) == 2
  assert 'line 3' in _one_error(errors, 'not JSON')['message']
  assert 'line 4' in _one_error(errors, 'needs non-empty')['message']
  shot = [d for d in os.listdir(output) if d.startswith('shot_1')]
  assert len(shot) == 1
  assert sorted(os.listdir(os.path.join(output, shot[0]))) == [
      f'frame_{i:06d}.png' for i in range(5)]
  np.testing.assert_array_equal(read_png(os.path.join(output, shot[0], 'frame_000004.png')),
                                frames[2])
  # '../../escape' stays inside --output.
  inside = [d for d in os.listdir(output) if 'escape' in d]
  assert len(inside) == 1 and not os.path.exists(tmp_path / 'escape')
  assert len(os.listdir(os.path.join(output, inside[0]))) == 3

  csv_manifest = tmp_path / 'pairs.csv'
  csv_manifest.write_text('clip,frame0,frame1\nc,frames/frame000.png,frames/frame001.png\n'
                          'c,frames/frame001.png\n')
  status, run_id = run_job(str(csv_manifest), output, model_path)
  assert status == 1
  assert 'line 3' in _one_error(_errors(output, run_id), 'malformed')['message']
  assert len(os.listdir(os.path.join(output, 'c'))) == 3


def test_missing_or_broken_model_fails_before_any_work(tmp_path, capsys):
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'clip', 2)
  status, _ = run_job(str(archive), str(output), str(tmp_path / 'no_model.npz'))
  assert status == 2
  assert 'cannot load the film_net model from' in capsys.readouterr().err
  broken = tmp_path / 'broken.npz'
  buf = io.BytesIO()
  np.savez(buf, nonsense=np.zeros(3))
  broken.write_bytes(buf.getvalue())
  status, _ = run_job(str(archive), str(output), str(broken))
  assert status == 2
  err = capsys.readouterr().err  # the reason once, in words ('ValueError: cannot load ...' twice)
  assert f'cannot load the film_net model from {broken}: ' in err
  assert err.count('cannot load') == 1 and 'ValueError' not in err
  assert not output.exists()


def test_a_tile_the_model_cannot_run_is_blamed_on_the_flag_not_the_model(tmp_path, capsys):
  """A deeper model's least side is more than the least --tile: 'cannot load the film_net
  model from FILE' sent the user to a file that was fine."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from film_net import Interpolator, Options  # pylint: disable=import-outside-toplevel
  deeper = dataclasses.replace(Options.tiny(), pyramid_levels=Options.tiny().pyramid_levels + 4)
  model_path = str(tmp_path / 'deeper.npz')
  Interpolator.random(deeper, align=None).save(model_path)
  make_clip(tmp_path / 'archive' / 'clip', 2)
  status, _ = run_job(str(tmp_path / 'archive'), str(tmp_path / 'out'), model_path,
                      '--tile=64', f'--align={deeper.min_size}')
  assert status == 0
  status, _ = run_job(str(tmp_path / 'archive'), str(tmp_path / 'out'), model_path, '--tile=64')
  err = capsys.readouterr().err
  assert status == 2 and 'error: --tile 64: tile=64 is too small for this model' in err, err
  assert 'cannot load' not in err


def test_names_that_are_not_utf8_are_reported_and_the_rest_completes(tmp_path, tiny_model,
                                                                    capsys):
  """An old volume's Latin-1 `café` (byte 0xe9; Python keeps it as a lone surrogate) could not
  be encoded into Beam's elements: a scanner log so named beside the frames stopped the whole
  run before any clip, frames so named stopped it after writing, a clip folder so named gave an
  error naming no file."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'good', 3, seed=1)
  make_clip(archive / 'logged', 2, seed=2)
  make_clip(archive / 'latin', 2, seed=3, pattern='caf\udce9_{:03d}.png')
  make_clip(archive / 'R\udce9el', 2, seed=4)
  with open(archive / 'logged' / 'notes_caf\udce9.txt', 'w') as f:
    f.write('scanner log')
  status, run_id = run_job(str(archive), output, model_path)
  assert status == 1  # errors: the frames lost to their clips
  assert sorted(os.listdir(output)) == ['_markers', '_runs', 'good', 'logged']
  assert len(os.listdir(os.path.join(output, 'good'))) == 5
  assert len(os.listdir(os.path.join(output, 'logged'))) == 3
  errors = _errors(output, run_id)
  said = {e['uris'][0].rsplit('/', 2)[-2]: e for e in errors}  # by folder
  assert len(errors) == 3 and said['logged']['severity'] == 'notice'
  assert said['logged']['uris'] == [f'{archive}/logged/notes_caf\\xe9.txt']
  assert said['latin']['severity'] == 'error'
  assert sorted(said['latin']['uris']) == [f'{archive}/latin/caf\\xe9_{i:03d}.png' for i in (0, 1)]
  assert said['latin']['message'] == (
      f'cannot read {said["latin"]["uris"][0]} and 1 more file(s) in {archive}/latin: its name '
      'is not UTF-8 (written on a system of another code page?), which Beam cannot carry '
      'between its steps (rename it); not in this run')
  assert said['R\\xe9el']['severity'] == 'error' and len(said['R\\xe9el']['uris']) == 2
  # As --input or --output (a folder, a manifest): a usage error (it was a traceback mid-job).
  (archive / 'notes.csv').write_text('clip,frame0,frame1\n')
  os.rename(archive / 'notes.csv', archive / 'caf\udce9.csv')
  for flags, named in (([str(archive / 'R\udce9el'), str(tmp_path / 'o')], '--input'),
                       ([str(archive / 'caf\udce9.csv'), str(tmp_path / 'o')], '--input'),
                       ([str(archive / 'good'), str(tmp_path / 'o\udce9')], '--output')):
    assert run_job(*flags, model_path)[0] == 2
    shown = flags[named == '--output'].replace('\udce9', '\\xe9')  # (its byte, escaped)
    assert f'{named} {shown}: its name is not UTF-8' in capsys.readouterr().err
  assert not (tmp_path / 'o').exists()


def test_an_install_without_tensorflow_says_which_extra_brings_it(tmp_path):
  """TensorFlow is an extra (`.[cpu]`, `.[gpu]`, `.[tf]`): a plain install said only
  "ModuleNotFoundError: No module named 'tensorflow'"."""
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'clip', 2)
  hidden = ("import runpy, sys; sys.modules['tensorflow'] = None; sys.argv[0] = 'run'; "
            "runpy.run_module('pipeline.run', run_name='__main__')")
  done = subprocess.run([sys.executable, '-c', hidden, '--input', str(archive), '--output',
                         str(output)], capture_output=True, text=True, cwd=ROOT, timeout=300,
                        env=dict(os.environ, PYTHONPATH=ROOT))
  assert done.returncode == 2, done.stderr[-2000:]
  assert tool_lines(done.stderr) == [
      'error: cannot load the film_net model from the built-in default model '
      '(film_net/default_model/): TensorFlow is not installed, an extra: pip install .[cpu] '
      '(or .[gpu], .[tf])']
  assert not output.exists()


def test_a_flag_nobody_defines_stops_the_run_before_any_work(tmp_path, tiny_model, capsys):
  # Beam only warns about flags it cannot parse and drops them: a typo would run with defaults.
  from pipeline import evaluate, options  # pylint: disable=import-outside-toplevel
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'clip', 2)
  status, _ = run_job(str(archive), str(output), tiny_model[0], '--time_to_interpolate=3')
  assert status == 2
  assert 'unrecognized arguments: --time_to_interpolate=3' in capsys.readouterr().err
  assert not output.exists()
  with pytest.raises(SystemExit) as stop:
    evaluate.parse_known_args(['--input', 'in', '--output', 'out', '--no_pngs'])
  assert stop.value.code == 2
  assert 'unrecognized arguments: --no_pngs' in capsys.readouterr().err
  # Nor is a shortened flag taken for a whole one ('--prune' would turn on deletion).
  for parse, short in ((options.parse_known_args, '--prune'),
                       (options.parse_known_args, '--times=2'),
                       (evaluate.parse_known_args, '--leave_one')):
    with pytest.raises(SystemExit) as stop:
      parse(['--input', 'in', '--output', 'out', short])
    assert stop.value.code == 2
    assert f'unrecognized arguments: {short}' in capsys.readouterr().err
  # Beam's own flags still pass, Dataflow's included.
  beam_flags = ['--runner=DataflowRunner', '--project=p',
                '--experiments=no_use_multiple_sdk_containers', '--direct_running_mode=in_memory']
  _, beam_args = evaluate.parse_known_args(['--input', 'in', '--output', 'out'] + beam_flags)
  assert beam_args == beam_flags


def test_a_run_id_that_is_not_one_plain_name_is_refused(tmp_path, tiny_model, capsys):
  # '..' once made the end-of-run cleanup of <output>/_tmp/<run_id> delete the whole output.
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'clip', 2)
  from pipeline import run as run_module  # pylint: disable=import-outside-toplevel
  for bad in ('..', '/tmp/elsewhere', 'a/b', '', 'L' * 300):  # 300: past a file name's length
    status = run_module.main([f'--input={archive}', f'--output={output}',
                              f'--model_path={tiny_model[0]}', f'--run_id={bad}'])
    assert status == 2
    assert 'must be one name' in capsys.readouterr().err
  assert not output.exists()


def test_an_output_folder_with_glob_characters_is_refused_before_any_work(tmp_path, capsys):
  # Beam's record writer globbed it at the end of the run: every frame written, no summary.
  archive = tmp_path / 'archive'
  make_clip(archive / 'clip', 2)
  from pipeline import run as run_module  # pylint: disable=import-outside-toplevel
  for bad in ('out [1]', 'out*', 'out?'):
    assert run_module.main([f'--input={archive}', f'--output={tmp_path / bad}']) == 2
    assert 'may not contain' in capsys.readouterr().err
  assert sorted(os.listdir(tmp_path)) == ['archive']


def test_an_output_that_cannot_be_one_is_a_usage_error(tmp_path, tiny_model, capsys,
                                                        monkeypatch):
  """--output a file gave Beam's traceback at the end of the run; --output the --input folder,
  a report that the input was empty (an output inside the input is never read)."""
  archive = tmp_path / 'archive'
  make_clip(archive / 'clip', 2)
  (tmp_path / 'a_file').write_bytes(b'x')
  os.symlink(archive, tmp_path / 'linked')
  for output, message in ((tmp_path / 'a_file', 'is a file; --output names the folder'),
                          (tmp_path / 'a_file' / 'out',  # (it was Beam's RuntimeError, exit 1)
                           f'out: {tmp_path / "a_file"} is a file, not a folder'),
                          (archive, 'is --output'),
                          (f'{tmp_path / "linked"}/', 'is --output'),
                          (tmp_path, 'is --output')):  # above the input: every clip in it
    status, _ = run_job(str(archive), str(output), tiny_model[0])
    assert status == 2
    assert message in capsys.readouterr().err
  assert sorted(os.listdir(archive)) == ['clip']
  # A link to what is not there (a share not mounted) passed, and so did an output whose run
  # records cannot be written; every pair was done, and Beam's writer failed in 170 lines.
  os.symlink(tmp_path / 'unmounted', tmp_path / 'share')
  records = tmp_path / 'records_blocked'
  records.mkdir()
  (records / '_runs').write_bytes(b'x')
  for output, message in ((tmp_path / 'share' / 'out',
                           f'{tmp_path / "share"} is a link to {tmp_path / "unmounted"}, which '
                           f'is not there'),
                          (records, f'--output {records}: cannot write there')):
    (tmp_path / 'tmp').mkdir(exist_ok=True)
    with monkeypatch.context() as patch:
      patch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))
      status, _ = run_job(str(archive), str(output), tiny_model[0])
    assert status == 2 and message in capsys.readouterr().err
    assert not os.listdir(tmp_path / 'tmp')  # (Beam's folder for the run it was not to make)
  assert os.listdir(records) == ['_runs'] and not os.path.exists(tmp_path / 'unmounted')
  # A frame given as --input is named for what it is.
  status, run_id = run_job(str(archive / 'clip' / 'frame000.png'), str(tmp_path / 'out'),
                           tiny_model[0])
  assert status == 1
  assert _one_error(_errors(str(tmp_path / 'out'), run_id), 'is a file')['message'] == (
      f'input is a file, not a folder of clips or a manifest (.csv, .jsonl): '
      f'{archive / "clip" / "frame000.png"}')


def test_an_output_holding_input_frames_is_a_usage_error(tmp_path, tiny_model, capsys):
  """--output the folder of a manifest's frames wrote the output over the scans (exit 0); an
  --output below a folder or glob input that holds its clips passed them over, wrote beside them,
  and made their folder an earlier output that later runs left out (pruning their output)."""
  archive = tmp_path / 'archive'
  make_clip(archive / 'reel', 3, pattern='frame_{:06d}.png')
  make_clip(tmp_path / 'other' / 'reel', 2)
  (archive / 'list.csv').write_text('clip,frame0,frame1\nreel,reel/frame_000000.png,'
                                    'reel/frame_000001.png\n')
  scans = {p.name: p.read_bytes() for p in (archive / 'reel').iterdir()}
  for input_path, output, message in (
      (archive / 'list.csv', archive, f'holds input frames ({archive / "reel" / "frame_000000.png"})'
                                      f': the run would overwrite them'),
      (f'{tmp_path}/*/reel', archive, 'the run would pass over them'),
      (tmp_path, archive, f'holds input frames ({archive / "reel"}/')):
    status, _ = run_job(str(input_path), str(output), tiny_model[0])
    assert status == 2
    assert message in capsys.readouterr().err
  assert {p.name: p.read_bytes() for p in (archive / 'reel').iterdir()} == scans
  assert sorted(os.listdir(archive)) == ['list.csv', 'reel']
  # An output of its own beside or below the input is taken, and so is that output once written.
  for _ in range(2):
    status, _ = run_job(f'{tmp_path}/*/reel', str(tmp_path / 'out'), tiny_model[0])
    assert status == 0 and sorted(os.listdir(tmp_path / 'out')) == ['_markers', '_runs', 'archive',
                                                                    'other']


def test_runner_names_are_read_as_beam_reads_them(tmp_path, tiny_model, capsys):
  """Beam takes 'direct' or 'dataflow' (any case, 'Runner' optional); taken for remote runners,
  'direct' refused local paths and 'dataflow' went past the Dataflow checks."""
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'clip', 2)
  status, _ = run_job(str(archive), str(output), tiny_model[0], '--runner=direct')
  assert status == 0 and len(os.listdir(output / 'clip')) == 3
  status, _ = run_job(str(archive), str(output), tiny_model[0], '--runner=dataflow')
  assert status == 2
  assert 'DataflowRunner workers cannot read this machine\'s disk' in capsys.readouterr().err
  # Beam's other local runners were refused for what they are not: remote.
  status, _ = run_job(str(archive), str(output), tiny_model[0], '--runner=BundleBasedDirect')
  assert status == 2 and ('--runner BundleBasedDirect: a local runner this tool does not run on; '
                          'the default, DirectRunner, runs here') in capsys.readouterr().err


def test_an_empty_manifest_is_an_error_not_a_quiet_success(tmp_path, tiny_model):
  for name, text in (('header.csv', 'clip,frame0,frame1\n'), ('empty.jsonl', '')):
    (tmp_path / name).write_text(text)
    status, run_id = run_job(str(tmp_path / name), str(tmp_path / f'out_{name}'),
                             tiny_model[0])
    assert status == 1
    (error,) = _errors(str(tmp_path / f'out_{name}'), run_id)
    assert error['message'] == f'manifest has no rows: {tmp_path / name}'


def test_a_file_where_a_clips_output_folder_goes_is_named_so(tmp_path, tiny_model):
  """Each of the clip's frames failed with '[Errno 17] File exists: out/a', naming no cause."""
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'a', 2)
  make_clip(archive / 'b', 2)
  output.mkdir()
  (output / 'a').write_text('a note, not a folder')
  status, run_id = run_job(str(archive), str(output), tiny_model[0])
  assert status == 1
  errors = _errors(str(output), run_id)
  assert errors and all(e['message'].endswith(f'{output / "a"} is a file, not a folder')
                        for e in errors)
  assert len(os.listdir(output / 'b')) == 3
  assert (output / 'a').read_text() == 'a note, not a folder'


def test_a_read_only_part_of_the_output_fails_its_pairs_not_the_job(tmp_path, tiny_model,
                                                                     monkeypatch):
  """A read-only marker folder (earlier markers that must go before frames are rewritten), or a
  clip folder whose frames cannot be replaced nor removed: the delete's PermissionError stopped
  the whole job, with no records of the run. Now those pairs fail with error records, the other
  clip is made, and a re-run once the folder is writable again finishes the job. (The refusals
  are made here as the kernel makes them for a user without write permission: root, which runs
  these tests, has it everywhere.)"""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'a', 3, seed=1)
  make_clip(archive / 'b', 3, seed=2)
  assert run_job(archive, output, model_path)[0] == 0
  make_clip(archive / 'a', 3, seed=3)  # new scans: a's frames and markers are made again
  make_clip(archive / 'b', 3, seed=4)
  locked = _locked_folders(monkeypatch)
  # (b is made beside the first, and skipped beside the second: made already)
  for folder, b in ((os.path.join(output, '_markers', 'a'), 'ok'),
                    (os.path.join(output, 'a'), 'skipped')):
    locked[:] = [folder]
    status, run_id = run_job(archive, output, model_path)
    pairs = {(p['clip'], p['status']) for p in _pairs(output, run_id)}
    assert status == 1 and pairs == {('a', 'failed'), ('b', b)}, pairs
    assert 'permission denied' in _one_error(_errors(output, run_id), folder)['message'].lower()
    assert os.path.exists(os.path.join(output, '_runs', run_id, 'summary.json'))
  locked.clear()
  _same_as_a_fresh_run(archive, output, model_path, tmp_path / 'fresh')


def test_an_output_frame_that_cannot_be_written_is_named_in_its_record(tmp_path, tiny_model):
  """The record named the input frame the output was made from ('cannot write output for
  IN: ...'), never the file that could not be written."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', tmp_path / 'out'
  make_clip(archive / 'a', 3, seed=1)
  (output / 'a' / 'frame_000001.png').mkdir(parents=True)  # (where an in-between goes)
  status, run_id = run_job(archive, str(output), model_path, '--times_to_interpolate=1')
  blocked = str(output / 'a' / 'frame_000001.png')
  [error] = _errors(str(output), run_id)
  assert status == 1 and error['stage'] == 'write' and error['uris'][1] == blocked
  assert error['message'] == (f'cannot write {blocked} (output for {archive / "a" / "frame000.png"}'
                              f'): is a directory')
  pairs = {p['pair']: p for p in _pairs(str(output), run_id)}
  assert pairs[0]['status'] == 'failed' and pairs[1]['status'] == 'ok'
  assert pairs[0]['error'] == f'write failed: {blocked}: is a directory'


def test_an_output_that_cannot_be_tidied_fails_its_clip_not_the_job(tmp_path, tiny_model,
                                                                    monkeypatch):
  """A clip shortened (its frames past the new end go) or an output frame lost (its pair's
  marker goes) where the run may not delete (a colleague's folder in a shared output): the
  planning's PermissionError stopped the whole job, every night, with no records of the run."""
  model_path, _ = tiny_model
  archive, output = tmp_path / 'archive', str(tmp_path / 'out')
  make_clip(archive / 'a', 3, seed=1)
  make_clip(archive / 'c', 3, seed=5)
  assert run_job(archive, output, model_path)[0] == 0
  os.remove(archive / 'a' / 'frame002.png')  # a shortened: its frames 3 and 4 go
  os.remove(os.path.join(output, 'c', 'frame_000001.png'))  # lost: its marker goes
  make_clip(archive / 'b', 3, seed=2)  # and a new clip
  locked = _locked_folders(monkeypatch)
  locked[:] = [os.path.join(output, 'a'), os.path.join(output, '_markers', 'c')]
  status, run_id = run_job(archive, output, model_path)
  assert status == 1
  assert {(p['clip'], p['status']) for p in _pairs(output, run_id)} == {('b', 'ok')}
  for clip, folder in (('a', locked[0]), ('c', locked[1])):
    error = _one_error(_errors(output, run_id), folder)
    assert error['stage'] == 'plan' and error['uris'] == [os.path.join(output, clip)]
    assert error['message'].startswith(f'clip {clip}: cannot remove what an earlier run wrote')
    assert 'Permission denied' in error['message'] and 'its pairs are not made' in error['message']
  assert os.path.exists(os.path.join(output, '_runs', run_id, 'summary.json'))
  locked.clear()
  _same_as_a_fresh_run(archive, output, model_path, tmp_path / 'fresh')


def test_what_a_retry_may_mend_is_not_taken_for_a_refusal():
  """A listing's connection reset or a storage server's 503 fails the bundle, which Dataflow
  retries; a refusal (no permission, a read-only disk, 403) is the clip's error record."""
  from apache_beam.io.filesystem import BeamIOError  # pylint: disable=import-outside-toplevel
  from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel
  for error in (PermissionError(errno.EACCES, 'Permission denied'),
                OSError(errno.EROFS, 'Read-only file system'), exceptions.Forbidden('no'),
                BeamIOError('Delete operation failed', {'gs://b/x': 403, 'gs://b/y': 403})):
    assert files.refused(error), error
  for error in (ConnectionResetError(errno.ECONNRESET, 'Connection reset by peer'),
                exceptions.ServiceUnavailable('busy'), ValueError('a bug'),
                BeamIOError('Delete operation failed', {'gs://b/x': 403, 'gs://b/y': 503})):
    assert not files.refused(error), error


def _locked_folders(monkeypatch):
  """A list of folders whose entries, from now on, cannot be removed or replaced: refused as
  the kernel refuses a user without write permission (root, which runs these tests, has it)."""
  real_remove, real_replace = os.remove, os.replace
  locked = []

  def refused(path):
    return any(os.fspath(path).startswith(folder + os.sep) for folder in locked)

  def remove(path, *args, **kwargs):
    if refused(path):
      raise PermissionError(errno.EACCES, 'Permission denied', os.fspath(path))
    return real_remove(path, *args, **kwargs)

  def replace(src, dst, *args, **kwargs):
    if refused(dst):
      raise PermissionError(errno.EACCES, 'Permission denied', os.fspath(dst))
    return real_replace(src, dst, *args, **kwargs)
  monkeypatch.setattr(os, 'remove', remove)
  monkeypatch.setattr(os, 'replace', replace)
  return locked


def _same_as_a_fresh_run(archive, output, model_path, fresh):
  """A re-run into `output` finishes, and every clip's frames equal a fresh run's."""
  assert run_job(archive, output, model_path)[0] == 0
  fresh = str(fresh)
  assert run_job(archive, fresh, model_path)[0] == 0
  for clip in sorted(os.listdir(archive)):
    names = sorted(os.listdir(os.path.join(fresh, clip)))
    assert sorted(os.listdir(os.path.join(output, clip))) == names
    for name in names:
      assert (open(os.path.join(output, clip, name), 'rb').read() ==
              open(os.path.join(fresh, clip, name), 'rb').read()), (clip, name)


def test_a_job_that_ended_without_a_summary_is_a_failure(monkeypatch, capsys):
  """A nightly scheduler acts on the exit status: a job that left no summary did not succeed."""
  import types  # pylint: disable=import-outside-toplevel
  from pipeline import run as run_module  # pylint: disable=import-outside-toplevel

  def no_summary(*_):
    raise FileNotFoundError('summary.json')
  monkeypatch.setattr(run_module, 'read_summary', no_summary)
  known = types.SimpleNamespace(output='/nonexistent', run_id='r1')
  assert run_module._report(known, 'DONE') == 1  # pylint: disable=protected-access
  assert 'error: the job ended in state DONE without a summary' in capsys.readouterr().err
