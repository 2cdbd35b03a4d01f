"""Output formats. `--output_format dpx`: DPX originals copied as they are (headers and all),
in-betweens in the original's layout with the PNG run's values at its bit depth, other inputs
(a one-frame clip's too) as plain DPX; a switch of format leaves one format in the clip's folder
and redoes its pairs. `--png_compression`: other bytes, the same pixels."""

import os

import numpy as np

from conftest import make_clip, metric, read_png, run_job, run_records, widened, write_dpx
from pipeline import run as run_module
from transforms import dpx, images
from transforms import interpolate
from transforms.interpolate import frame_name


def _scan(codes, frame_number):
  """A 10-bit DPX scan whose header names its own frame (time code) and the reel's film."""
  data = bytearray(write_dpx(codes, 10))
  data[1920:1924] = frame_number.to_bytes(4, 'big')
  data[1680:1712] = b'35mm 4-perf'.ljust(32, b'\0')
  return bytes(data)


def test_dpx_scans_come_back_as_dpx_in_their_own_layout(tmp_path, tiny_model):
  model_path, _ = tiny_model
  plain = make_clip(tmp_path / 'plain', 3, seed=9)
  scans = [(f.astype(np.uint16) << 2) + np.uint16(i + 1) for i, f in enumerate(plain)]
  (tmp_path / 'archive' / 'reel').mkdir(parents=True)
  for i, codes in enumerate(scans):
    (tmp_path / 'archive' / 'reel' / f'reel_{i:04d}.dpx').write_bytes(_scan(codes, 0x10000 + i))
  png_out, dpx_out = str(tmp_path / 'png'), str(tmp_path / 'dpx')
  assert run_job(str(tmp_path / 'archive'), png_out, model_path, '--times_to_interpolate=1')[0] == 0
  status, run_id = run_job(str(tmp_path / 'archive'), dpx_out, model_path,
                           '--times_to_interpolate=1', '--output_format=dpx')
  assert status == 0
  names = sorted(os.listdir(os.path.join(dpx_out, 'reel')))
  assert names == [frame_name(i, 'dpx') for i in range(5)]
  for i in range(3):  # the scans themselves
    assert (open(os.path.join(dpx_out, 'reel', frame_name(2 * i, 'dpx')), 'rb').read()
            == (tmp_path / 'archive' / 'reel' / f'reel_{i:04d}.dpx').read_bytes())
  for k in (1, 3):
    data = open(os.path.join(dpx_out, 'reel', frame_name(k, 'dpx')), 'rb').read()
    png16 = images.decode(open(os.path.join(png_out, 'reel', frame_name(k)), 'rb').read()).pixels
    assert png16.dtype == np.uint16
    codes = np.round(png16.astype(np.float64) * 1023 / 65535).astype(np.uint16)
    np.testing.assert_array_equal(dpx.decode(data), widened(codes, 10))
    assert data[803] == 10 and data[1680:1712] == _scan(scans[0], 0)[1680:1712]
    assert data[1920:1924] == b'\xff' * 4  # no time code of its own
    assert data[36:36 + 16] == frame_name(k, 'dpx').encode()
  summary = run_module.read_summary(dpx_out, run_id)
  assert summary['options']['output_format'] == 'dpx' and summary['frames_written'] == 5


def test_other_inputs_as_plain_dpx_and_a_format_switch_leaves_one_format(tmp_path, tiny_model):
  model_path, _ = tiny_model
  frames = make_clip(tmp_path / 'archive' / 'clip', 3, seed=10)
  lone = make_clip(tmp_path / 'archive' / 'lone', 1, seed=12)
  out, reference = str(tmp_path / 'out'), str(tmp_path / 'reference')
  assert run_job(str(tmp_path / 'archive' / 'clip'), reference, model_path)[0] == 0
  status, run_id = run_job(str(tmp_path / 'archive'), out, model_path, '--output_format=dpx')
  # One frame: nothing to interpolate, still written; a notice, which fails nothing.
  error, = run_records(out, run_id, 'errors')
  assert status == 0 and 'only one frame' in error['message'] and error['severity'] == 'notice'
  folder = os.path.join(out, 'clip')
  assert sorted(os.listdir(folder)) == [frame_name(i, 'dpx') for i in range(5)]
  for i in range(5):
    data = open(os.path.join(folder, frame_name(i, 'dpx')), 'rb').read()
    assert data[803] == 8  # 8-bit inputs, 8-bit DPX
    # Who made it: originals re-encoded said 'in-between', as the made frames do.
    assert data[160:260].rstrip(b'\0') == (dpx.ORIGINAL_CREATOR if i % 2 == 0 else dpx.CREATOR)
    np.testing.assert_array_equal(dpx.decode(data),
                                  read_png(os.path.join(reference, 'clip', frame_name(i))))
  np.testing.assert_array_equal(
      dpx.decode(open(os.path.join(folder, frame_name(2, 'dpx')), 'rb').read()), frames[1])
  np.testing.assert_array_equal(  # a one-frame clip's frame, copied in the output format
      dpx.decode(open(os.path.join(out, 'lone', frame_name(0, 'dpx')), 'rb').read()), lone[0])

  run_module.run([f'--input={tmp_path / "archive"}', f'--output={out}',
                  f'--model_path={model_path}', '--output_format=dpx', '--run_id=again'])
  assert run_module.read_summary(out, 'again')['pairs']['skipped'] == 2
  back = run_module.run([f'--input={tmp_path / "archive" / "clip"}', f'--output={out}',
                         f'--model_path={model_path}', '--run_id=png'])  # back to PNG
  assert sorted(os.listdir(folder)) == [frame_name(i) for i in range(5)]
  assert metric(back, 'stale_frames_removed') == 5 and metric(back, 'pairs_ok') == 2
  for i in range(5):
    np.testing.assert_array_equal(read_png(os.path.join(folder, frame_name(i))),
                                  read_png(os.path.join(reference, 'clip', frame_name(i))))
  # A DPX run stopped right after planning (its switch deleted the PNG frames) must not leave
  # PNG markers vouching for them: they went first, so the next PNG run redoes the pairs.
  assert interpolate.tidy_clip_output(out, 'clip', 4, 'dpx') == 5
  assert os.listdir(folder) == []
  status, run_id = run_job(str(tmp_path / 'archive' / 'clip'), out, model_path)
  assert status == 0 and run_module.read_summary(out, run_id)['pairs']['ok'] == 2
  assert sorted(os.listdir(folder)) == [frame_name(i) for i in range(5)]


def test_png_compression_changes_the_bytes_not_the_pixels(tmp_path, tiny_model):
  model_path, _ = tiny_model
  make_clip(tmp_path / 'archive' / 'clip', 3, 160, 120, seed=13)
  sizes, pixels = {}, {}
  for level in (0, 9):
    out = str(tmp_path / f'level{level}')
    assert run_job(str(tmp_path / 'archive'), out, model_path, f'--png_compression={level}',
                   '--times_to_interpolate=2')[0] == 0
    names = sorted(os.listdir(os.path.join(out, 'clip')))
    inbetweens = [n for i, n in enumerate(names) if i % 4]
    sizes[level] = sum(os.path.getsize(os.path.join(out, 'clip', n)) for n in inbetweens)
    pixels[level] = [read_png(os.path.join(out, 'clip', n)) for n in names]
  assert sizes[9] < sizes[0] / 2  # level 0 stores the pixels as they are
  for a, b in zip(pixels[0], pixels[9]):
    np.testing.assert_array_equal(a, b)
  status, run_id = run_job(str(tmp_path / 'archive'), str(tmp_path / 'level9'), model_path,
                           '--times_to_interpolate=2')  # the default level: nothing to redo
  assert status == 0 and run_module.read_summary(str(tmp_path / 'level9'),
                                                 run_id)['pairs']['skipped'] == 2


def test_each_inbetweens_alpha_is_blended_at_its_own_time(tmp_path, tiny_model):
  """Alpha (a matte, a logo's cut-out) has no motion for the model to follow: each in-between
  blends the pair's linearly at its own time, 1/4, 1/2, 3/4 at N = 2, not all at 1/2."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  rng = np.random.default_rng(21)
  clip = tmp_path / 'archive' / 'matte'
  clip.mkdir(parents=True)
  for k, alpha in enumerate((0, 255)):
    rgba = np.concatenate([rng.integers(0, 256, (48, 64, 3)),
                           np.full((48, 64, 1), alpha)], -1).astype(np.uint8)
    Image.fromarray(rgba, 'RGBA').save(clip / f'frame{k}.png')
  out = str(tmp_path / 'out')
  assert run_job(str(tmp_path / 'archive'), out, model_path, '--times_to_interpolate=2')[0] == 0
  alphas = [np.asarray(Image.open(os.path.join(out, 'matte', frame_name(k))))[..., 3]
            for k in range(5)]
  for k, expected in enumerate((0, 64, 128, 191, 255)):
    assert (alphas[k] == expected).all(), (k, np.unique(alphas[k]))
