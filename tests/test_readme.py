"""The README's commands that are not ours to test elsewhere: its ffmpeg retiming recipe picks,
for every delivery frame, the dense frame nearest that frame's time, as `--output_fps` does; its way back to 10-bit DPX
returns a DPX original's codes exactly; its training commands fit the built-in model they
start from."""

import os
import re
import subprocess

import numpy as np
from PIL import Image

from conftest import write_dpx
from film_net import weights as weights_lib
from transforms import images
from transforms import retime

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'README.md')


def test_the_retiming_recipe_picks_the_nearest_dense_frame(ffmpeg, tmp_path):
  text = open(README).read()
  recipe = re.search(r'-vf "settb=1/100000,setpts=PTS-50000/(\d+),fps=(\d+):round=up"', text)
  assert recipe, 'the README no longer has the retiming recipe this test checks'
  readme_dense, readme_rate = map(int, recipe.groups())
  count = 200
  for k in range(count):  # each frame's first pixel holds its index
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[..., 0], pixels[..., 1] = k % 256, k // 256
    Image.fromarray(pixels).save(tmp_path / f'frame_{k:06d}.png')
  # The README's own numbers, then other source and delivery rates the same way.
  for dense, rate in ((readme_dense, readme_rate), (64, 25), (128, 24), (72, 24), (48, 30),
                      (24, 16)):  # 24 to 16: every other time a tie, which goes to the later
    out = tmp_path / f'{dense}_{rate}'
    out.mkdir()
    vf = f'settb=1/100000,setpts=PTS-50000/{dense},fps={rate}:round=up'
    subprocess.run([ffmpeg, '-v', 'error', '-framerate', str(dense), '-i',
                    str(tmp_path / 'frame_%06d.png'), '-vf', vf, str(out / '%04d.png')],
                   check=True)
    picked = [int(a[0, 0, 0]) + 256 * int(a[0, 0, 1])
              for a in (np.asarray(Image.open(out / name)) for name in sorted(os.listdir(out)))]
    # The frames `--output_fps` picks in the pipeline, as many as it writes.
    timing = retime.timing(0, dense, rate)
    assert picked == [timing.dense_index(k) for k in range(timing.last_output(count - 1) + 1)], (
        dense, rate)


def test_the_way_back_to_10_bit_dpx_returns_an_originals_codes(ffmpeg, tmp_path):
  text = open(README).read()
  assert re.search(r'-pix_fmt gbrp10be\s+-start_number 0', text), 'the README lost this command'
  codes = np.random.default_rng(3).integers(0, 1024, (9, 11, 3))
  frame = images.decode(write_dpx(codes, 10))
  (tmp_path / 'frame_000000.png').write_bytes(images.original_png(b'', frame))  # as written
  subprocess.run([ffmpeg, '-v', 'error', '-i', str(tmp_path / 'frame_%06d.png'), '-pix_fmt',
                  'gbrp10be', '-start_number', '0', str(tmp_path / 'frame_%06d.dpx')], check=True)
  back = images.decode((tmp_path / 'frame_000000.dpx').read_bytes()).pixels
  np.testing.assert_array_equal(back >> 6, codes)


def _commands(text, module):
  """The README's code-block commands running `module`, each joined into one line."""
  blocks = re.findall(r'^```[^\n]*\n(.*?)^```', text, re.M | re.S)
  lines = '\n'.join(blocks).replace('\\\n', ' ').splitlines()
  return [line for line in lines if re.search(rf'-m {re.escape(module)}(\s|$)', line)]


def _flag(command, name):
  found = re.search(rf'--{name}[ =](\S+)', command)
  return found and found.group(1)


def test_the_training_commands_train_past_the_built_in_models_step():
  """Commands written when the built-in model was at an earlier step: `--steps 30000` from step
  42214 was refused, and the held-out example scored a `step_30800.npz` no run of the README's
  could keep."""
  text = open(README).read()
  start = int(weights_lib.read_meta(weights_lib.DEFAULT_MODEL)['steps'])
  commands = _commands(text, 'film_net.train') + _commands(text, 'film_net.train_torch')
  assert len(commands) >= 2
  for command in commands:
    if '--init' not in command:  # (from the built-in model)
      assert int(_flag(command, 'steps')) > start, command
  train, = _commands(text, 'film_net.train')
  end, keep = int(_flag(train, 'steps')), int(_flag(train, 'keep_every'))
  kept = [int(n) for n in re.findall(r'checkpoints/run/step_(\d+)\.npz', text)]
  assert kept and all(start < n <= end and n % keep == 0 for n in kept), (kept, start, end)
