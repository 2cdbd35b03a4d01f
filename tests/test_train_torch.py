"""The PyTorch model and trainer (GPU machines): same outputs as the TensorFlow model, same
weight files, and training that lowers the loss and resumes exactly.

PyTorch is an optional extra (`pip install .[train-gpu]`), not part of the test install; these
tests skip without it.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip('torch', reason='PyTorch is not installed (the train-gpu extra)')

# pylint: disable=wrong-import-position
from film_net import Interpolator, Options
from film_net import train_torch
from film_net import training
from film_net import weights as weights_lib
from film_net.model import FilmNet
from film_net.torch_model import FilmNetTorch

TINY = json.dumps(Options.tiny().to_dict())


def _tf_mid_frame(options, weights, x0, x1, precision='float32'):
  net = FilmNet(options, precision=precision)
  net({'x0': x0, 'x1': x1, 'time': np.zeros((len(x0), 1), np.float32)})
  net.set_released_weights(weights)
  return net.interpolate_from_features(*net.features(x0), *net.features(x1))['image'].numpy()


def _torch_mid_frame(options, weights, x0, x1, precision='float32'):
  net = FilmNetTorch(options, precision)
  net.load_released_weights(weights)
  nchw = [torch.from_numpy(x).permute(0, 3, 1, 2) for x in (x0, x1)]
  with torch.no_grad():
    return net(*nchw).permute(0, 2, 3, 1).numpy()


def test_the_built_in_model_gives_the_same_frame_in_both_frameworks():
  weights, options = weights_lib.read_npz(weights_lib.DEFAULT_MODEL)
  x0, y, x1 = training.make_batch(seed=3, step=0, batch_size=2, crop=128, max_motion=24)
  reference = _tf_mid_frame(options, weights, x0, x1)
  assert np.abs(reference - y).mean() < 0.02  # it interpolates, so the flows and warps matter
  np.testing.assert_allclose(_torch_mid_frame(options, weights, x0, x1), reference, atol=2e-5)


def test_bfloat16_rounds_the_same_convolutions_in_both_frameworks():
  """Both round the inputs and kernels of all but the output-resolution convs to bfloat16 and
  add in float32: the frames agree far more closely than either does with float32
  (only the order of the sums differs)."""
  weights, options = weights_lib.read_npz(weights_lib.DEFAULT_MODEL)
  x0, _, x1 = training.make_batch(seed=3, step=0, batch_size=2, crop=128, max_motion=24)
  reference = _tf_mid_frame(options, weights, x0, x1, 'bfloat16')
  rounding = np.abs(reference - _tf_mid_frame(options, weights, x0, x1)).max()
  assert rounding > 1e-3
  difference = np.abs(_torch_mid_frame(options, weights, x0, x1, 'bfloat16') - reference).max()
  assert difference < 0.25 * rounding, (difference, rounding)  # measured: 0.1


def test_random_weights_agree_too():
  options = Options.tiny()
  x0, _, x1 = training.make_batch(seed=4, step=0, batch_size=2, crop=48, max_motion=8)
  net = FilmNet(options, seed=1)
  net({'x0': x0, 'x1': x1, 'time': np.zeros((2, 1), np.float32)})
  weights = net.released_weights()
  np.testing.assert_allclose(_torch_mid_frame(options, weights, x0, x1),
                             _tf_mid_frame(options, weights, x0, x1), atol=2e-5)


def test_warp_agrees_with_the_reference_far_outside_the_frame():
  """Flows up to twice the frame size: the edge clamping and its gradient must agree."""
  from film_net import warp as tf_warp  # pylint: disable=import-outside-toplevel
  from film_net.torch_model import warp  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  image = rng.random((2, 9, 13, 3), np.float32)
  flow = rng.uniform(-26, 26, (2, 9, 13, 2)).astype(np.float32)
  flow[0, :3] = rng.uniform(-1.5, 1.5, (3, 13, 2))  # and some inside, between pixels
  image_t = torch.from_numpy(image).permute(0, 3, 1, 2).requires_grad_()
  flow_t = torch.from_numpy(flow).permute(0, 3, 1, 2).requires_grad_()
  out_t = warp(image_t, flow_t)
  (out_t * out_t).sum().backward()
  image_v, flow_v = tf.Variable(image), tf.Variable(flow)
  with tf.GradientTape() as tape:
    out = tf_warp.warp(image_v, flow_v)
    loss = tf.reduce_sum(out * out)
  grad_image, grad_flow = tape.gradient(loss, [image_v, flow_v])
  np.testing.assert_allclose(out_t.detach().permute(0, 2, 3, 1).numpy(), out.numpy(), atol=1e-5)
  np.testing.assert_allclose(image_t.grad.permute(0, 2, 3, 1).numpy(), grad_image.numpy(),
                             atol=1e-4)
  np.testing.assert_allclose(flow_t.grad.permute(0, 2, 3, 1).numpy(), grad_flow.numpy(),
                             atol=1e-4)


def test_weights_convert_to_the_released_layout_and_back_unchanged():
  weights, options = weights_lib.read_npz(weights_lib.DEFAULT_MODEL)
  net = FilmNetTorch(options)
  net.load_released_weights(weights)
  back = net.released_weights()
  assert back.keys() == weights.keys()
  for name, value in weights.items():
    np.testing.assert_array_equal(back[name], value, err_msg=name)
  with pytest.raises(ValueError, match='does not fit options'):
    FilmNetTorch(Options.tiny()).load_released_weights(weights)


def _train(out_dir, steps, *extra) -> str:
  """Runs the trainer's command line (later flags win) and returns its log.

  In a process of its own, as it is used: PyTorch's backward pass beside a loaded TensorFlow
  (this test process has one) can crash on CPU, and a training run never loads TensorFlow.
  """
  argv = ['--output_dir', str(out_dir), '--options', TINY, '--steps', str(steps),
          '--batch_size', '2', '--crop', '32', '--max_motion', '4', '--lr', '3e-3',
          '--init', 'none', '--log_every', '1', '--checkpoint_every', '3', '--device', 'cpu',
          '--workers', '0', *extra]
  done = subprocess.run([sys.executable, '-m', 'film_net.train_torch', *argv], check=True,
                        capture_output=True, text=True)
  return done.stdout


def test_a_few_steps_lower_the_loss_and_the_tensorflow_model_reads_the_result(tmp_path):
  held_out = training.make_batch(seed=123, step=0, batch_size=8, crop=32, max_motion=4)
  log = _train(tmp_path, 40, '--seed', '2')
  torch.manual_seed(2)
  before = FilmNetTorch(Options.tiny()).released_weights()  # the trainer's initial weights
  after = Interpolator.from_path(str(tmp_path / 'latest.npz'), align=None)
  x0, y, x1 = held_out
  loss_before = np.abs(_tf_mid_frame(Options.tiny(), before, x0, x1) - y).mean()
  assert np.abs(after(x0, x1) - y).mean() < 0.8 * loss_before
  assert 'step 40/40' in log and 'steps/s' in log and 'loss' in log
  assert weights_lib.read_meta(str(tmp_path / 'latest.npz'))['trainer'].endswith('on CPU')


def test_a_bfloat16_run_trains_and_says_so_in_its_file(tmp_path):
  log = _train(tmp_path, 3, '--precision', 'bfloat16')
  assert 'step 3/3' in log
  assert weights_lib.read_meta(str(tmp_path / 'latest.npz'))['precision'] == 'bfloat16'
  with pytest.raises(ValueError, match='precision must be one of'):
    FilmNetTorch(Options.tiny(), 'float16')


def test_a_fresh_run_starts_at_the_frame_average_as_the_tensorflow_trainer_does(tmp_path):
  compact = json.dumps(Options.compact().to_dict())
  x0, _, x1 = training.make_batch(seed=5, step=0, batch_size=2, crop=64, max_motion=8)
  for scheme in ('blend', 'glorot'):
    # One step at learning rate 0 writes the starting weights.
    log = _train(tmp_path / scheme, 1, '--options', compact, '--crop', '64', '--lr', '0',
                 '--init_scheme', scheme)
    start = Interpolator.from_path(str(tmp_path / scheme / 'latest.npz'), align=None)
    error = np.abs(start(x0, x1) - (x0 + x1) / 2).max()
    if scheme == 'blend':
      assert 'blend-initialised' in log and error < 1e-5
    else:
      assert 'blend' not in log and error > 0.05


def test_resume_matches_an_uninterrupted_run_with_rendering_workers(tmp_path):
  ema = ('--ema_decay', '0.9', '--workers', '2')
  straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
  _train(straight, 6, *ema)
  _train(resumed, 3, *ema)                                  # "interrupted" after step 3
  assert 'resumed' in _train(resumed, 6, *ema)              # a new run picks up the checkpoint
  a, _ = weights_lib.read_npz(str(straight / 'latest.npz'))
  b, _ = weights_lib.read_npz(str(resumed / 'latest.npz'))
  assert weights_lib.read_meta(str(resumed / 'latest.npz'))['steps'] == 6
  for name in a:
    np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_save_killed_before_latest_npz_is_mended_by_the_resume(tmp_path):
  """As the TensorFlow trainer: SIGKILL between the checkpoint and latest.npz left it behind."""
  run = tmp_path / 'run'
  _train(run, 6, '--ema_decay', '0.9', '--keep_every', '5')
  finished, _ = weights_lib.read_npz(str(run / 'latest.npz'))
  (run / 'latest.npz').write_bytes((run / 'step_5.npz').read_bytes())  # as the cut save left it
  log = _train(run, 6, '--ema_decay', '0.9', '--keep_every', '2')
  assert 'latest.npz was behind the checkpoint' in log and 'nothing to do' in log
  for mended in ('latest.npz', 'step_6.npz'):
    weights, _ = weights_lib.read_npz(str(run / mended))
    assert weights_lib.read_meta(str(run / mended))['steps'] == 6
    for name in finished:
      np.testing.assert_array_equal(weights[name], finished[name], err_msg=name)


# The trainer with rendering workers, stopped by SIGTERM to its whole process group (as systemd,
# Slurm's scancel or a VM's shutdown stop a job) while latest.npz is being written.
_STOPPED_IN_A_SAVE = """
import os, signal, subprocess, sys
from film_net import train_torch
from film_net import weights
write = weights.write_local_whole
def write_while_stopped(path, data):
  if path.endswith('latest.npz') and not os.environ.pop('STOPPED', ''):
    os.environ['STOPPED'] = '1'
    subprocess.run([sys.executable, '-c', f'import os; os.killpg({os.getpgid(0)}, 15)'],
                   start_new_session=True, check=True)
  write(path, data)
weights.write_local_whole = write_while_stopped
sys.exit(train_torch.main(sys.argv[1:]))
"""


def test_a_stop_sent_to_the_whole_process_group_waits_for_the_save(tmp_path):
  """Each rendering worker died of it first: PyTorch raised in the trainer, inside the save
  (latest.npz steps behind the checkpoint), exit status 1 with a traceback."""
  run = tmp_path / 'run'
  argv = ['--output_dir', str(run), '--options', TINY, '--steps', '50', '--batch_size', '2',
          '--crop', '32', '--max_motion', '4', '--init', 'none', '--log_every', '1',
          '--checkpoint_every', '3', '--device', 'cpu', '--workers', '2']
  done = subprocess.run([sys.executable, '-c', _STOPPED_IN_A_SAVE, *argv], capture_output=True,
                        text=True, start_new_session=True, timeout=300, check=False)
  assert done.returncode == 143, done.stderr[-3000:]
  assert 'Traceback' not in done.stderr and 'Exception ignored' not in done.stderr
  assert done.stderr.strip().splitlines()[-1] == (
      'terminated (SIGTERM) at step 3; the same command resumes from the last checkpoint (saved '
      'every 3 steps)')
  assert weights_lib.read_meta(str(run / 'latest.npz'))['steps'] == 3
  assert torch.load(run / 'ckpt.pt', weights_only=False)['step'] == 3


def test_both_trainers_take_the_same_steps_from_one_weight_file(tmp_path):
  """Adam's epsilon: Keras adds it before the bias correction, torch after, so after every
  --init the small-gradient weights moved up to 6x more in torch (by 2e-3 at lr 3e-3)."""
  _train(tmp_path / 'start', 1)
  start = str(tmp_path / 'start' / 'latest.npz')
  _train(tmp_path / 'torch', 4, '--init', start)
  argv = ['--output_dir', str(tmp_path / 'tf'), '--options', TINY, '--steps', '4',
          '--batch_size', '2', '--crop', '32', '--max_motion', '4', '--lr', '3e-3',
          '--init', start, '--log_every', '1', '--checkpoint_every', '3']
  subprocess.run([sys.executable, '-m', 'film_net.train', *argv], check=True,
                 capture_output=True, text=True)
  before, _ = weights_lib.read_npz(start)
  by_tf, _ = weights_lib.read_npz(str(tmp_path / 'tf' / 'latest.npz'))
  by_torch, _ = weights_lib.read_npz(str(tmp_path / 'torch' / 'latest.npz'))
  moved = max(np.abs(by_tf[name] - before[name]).max() for name in before)
  apart = max(np.abs(by_tf[name] - by_torch[name]).max() for name in before)
  assert moved > 1e-3 and apart < 0.01 * moved, (apart, moved)


def test_a_checkpoint_cut_short_or_of_other_widths_is_one_line(tmp_path):
  """torch.load's traceback for a ckpt.pt copied in part, and load_state_dict's 31 lines for
  one of other widths, where the TensorFlow trainer says one line."""
  run = tmp_path / 'run'
  _train(run, 3)
  (run / 'latest.npz').unlink()  # (else the widths are refused before, from its options)
  wider = json.dumps({**Options.tiny().to_dict(), 'filters': 8})
  with pytest.raises(subprocess.CalledProcessError) as failed:
    _train(run, 4, '--options', wider)
  message = failed.value.stderr.strip()
  assert message.startswith(f'error: cannot resume {run / "ckpt.pt"} with --options')
  assert len(message.splitlines()) == 1 and 'size mismatch' in message
  whole = (run / 'ckpt.pt').read_bytes()
  for cut in (whole[:3000], whole[:20000], b''):  # (torch's errors differ with the length)
    (run / 'ckpt.pt').write_bytes(cut)
    with pytest.raises(subprocess.CalledProcessError) as failed:
      _train(run, 4)
    message = failed.value.stderr.strip()
    assert message.startswith(f'error: cannot read the checkpoint {run / "ckpt.pt"} (')
    assert len(message.splitlines()) == 1 and 'Traceback' not in message
    assert message.endswith(f'--init {run / "latest.npz"}')


def test_a_run_started_from_a_weight_file_goes_on_from_its_step_and_learning_rate(tmp_path):
  first, second = tmp_path / 'first', tmp_path / 'second'
  _train(first, 3)
  start = str(first / 'latest.npz')
  weights, options = weights_lib.read_npz(start)
  weights_lib.save(start, weights, options, meta={**weights_lib.read_meta(start),
                                                  'inference': {'flip_average': True}})
  assert 'started from' in _train(second, 5, '--lr_decay_steps', '2', '--init', start)
  meta = weights_lib.read_meta(str(second / 'latest.npz'))
  assert meta['steps'] == 5 and meta['inference'] == {'flip_average': True}  # kept from start
  state = torch.load(second / 'ckpt.pt', weights_only=False)
  # The rate follows the global step (5), not the two steps this run took.
  assert state['optimizer']['param_groups'][0]['lr'] == pytest.approx(3e-3 * 0.5 ** (4 / 2))


def test_a_run_refused_before_its_first_step_leaves_no_folder(tmp_path):
  """README's example `--steps 30000` from the built-in model (step 42214) was refused, and left
  its empty --output_dir behind (with the folders made above it)."""
  first = tmp_path / 'first'
  _train(first, 3)
  refused = tmp_path / 'new' / 'run'
  with pytest.raises(subprocess.CalledProcessError) as stop:
    _train(refused, 2, '--init', str(first / 'latest.npz'))
  assert stop.value.returncode == 2
  assert 'error: --steps 2 is not past the start step 3' in stop.value.stderr
  assert not (tmp_path / 'new').exists()


def test_real_clips_reach_the_rendering_workers(tmp_path):
  """--clips frames are read in the worker processes; the file's meta names the data."""
  folder = tmp_path / 'clips' / 'clip'
  folder.mkdir(parents=True)
  for i in range(4):
    Image.fromarray(np.full((40, 48, 3), 60 * i, np.uint8)).save(folder / f'f{i}.png')
  log = _train(tmp_path / 'run', 4, '--clips', str(tmp_path / 'clips'), '--clips_fraction', '1',
               '--workers', '2')
  assert 'step 4/4' in log
  meta = weights_lib.read_meta(str(tmp_path / 'run' / 'latest.npz'))
  assert meta['data'].startswith(f'rendered + clips {tmp_path / "clips"} (100%, 2 triplets ')


@pytest.mark.parametrize('workers', ['0', '2'])
def test_a_frame_that_fails_mid_run_stops_training_with_one_line(tmp_path, workers):
  """As film_net.train: a --clips frame cut short past its header was a traceback (with
  rendering workers, two: the worker's and the trainer's)."""
  folder = tmp_path / 'clips' / 'clip'
  folder.mkdir(parents=True)
  rng = np.random.default_rng(0)
  for i in range(3):
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), np.uint8)).save(folder / f'f{i}.png')
  cut = folder / 'f1.png'
  cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
  argv = ['--output_dir', str(tmp_path / 'run'), '--options', TINY, '--steps', '3',
          '--batch_size', '2', '--crop', '32', '--max_motion', '4', '--init', 'none',
          '--device', 'cpu', '--workers', workers, '--clips', str(tmp_path / 'clips'),
          '--clips_fraction', '1']
  done = subprocess.run([sys.executable, '-m', 'film_net.train_torch', *argv],
                        capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 1 and 'Traceback' not in done.stderr, done.stderr[-3000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith(f'--clips: {cut}: ') and 'truncated' in last, last
  assert 'stopped at step 0: replace or remove that frame' in last


def test_rendering_workers_draw_the_batches_of_make_batch_with_views_per_scene():
  args = train_torch.parse_args(['--output_dir', 'x', '--options', TINY, '--steps', '9',
                                 '--batch_size', '4',
                                 '--crop', '32', '--max_motion', '4', '--views_per_scene', '2',
                                 '--seed', '3', '--device', 'cpu'])
  x0, y, x1 = train_torch.StepBatches(args, 5, None)[1]
  expected = training.make_batch(3, 6, 4, 32, 4, views_per_scene=2)
  for got, want in zip((x0, y, x1), expected):
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), want)


@pytest.mark.parametrize('device, message', [
    ('bogus', "'bogus': use cpu, cuda or cuda:N"), ('cuda:99', "'cuda:99': this "),
    ('meta', "'meta': use cpu, cuda or cuda:N")])
def test_a_device_it_cannot_train_on_is_a_usage_error(tmp_path, capsys, device, message):
  """--device bogus, or cuda without a GPU, was a PyTorch traceback after the output folder
  was made."""
  with pytest.raises(SystemExit) as stop:
    train_torch.main(['--output_dir', str(tmp_path / 'run'), '--steps', '1', '--device', device])
  assert stop.value.code == 2 and message in capsys.readouterr().err
  assert not (tmp_path / 'run').exists()
