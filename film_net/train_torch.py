"""Train film_net with PyTorch: the same training as `film_net.train`, for CUDA GPU machines.

    python -m film_net.train_torch --output_dir checkpoints/gpu --options compact \
        --steps 30000 --batch_size 16 --crop 256 --workers 15

GPU machines here carry PyTorch but not TensorFlow, so this trainer runs the model of
`film_net.torch_model` on the batches of `training.make_batch` (rendered in `--workers`
processes), with the same flags, L1 loss, Adam (Keras' epsilon), learning-rate decay on the
global step, weight averaging and weight files as the TensorFlow trainer. A run resumes from its
own checkpoint (`ckpt.pt`) to the same weights as an uninterrupted one, or starts from `--init`
(the built-in model by default, or another run's latest.npz), so it can continue a TensorFlow
run from its weight file and the other way round.
Nothing else depends on it: it also runs on CPU, slowly.
"""
from __future__ import annotations

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import argparse
import contextlib
import io
import math
import os
import pickle
import sys

_NEEDS_TORCH = 'film_net.train_torch needs PyTorch, an optional extra: pip install .[train-gpu]'
try:
  import torch
except ImportError as error:  # run as a command, one line (a traceback said no more)
  if __name__ == '__main__':
    sys.exit(_NEEDS_TORCH)
  raise ImportError(_NEEDS_TORCH) from error

from film_net import flags
from film_net import render
from film_net import specs
from film_net import training
from film_net import weights as weights_lib
from film_net.options import Options
from film_net.torch_model import FilmNetTorch

KERAS_ADAM_EPSILON = 1e-7


class StepBatches(torch.utils.data.Dataset):
  """Item i is the batch of global step `first + i`: workers render it, order is kept."""

  def __init__(self, args, first: int, clips):
    self.args, self.first, self.clips = args, first, clips
    self.scenes = render.scene_options(args)

  def __len__(self):
    return max(0, self.args.steps - self.first)

  def __getitem__(self, i):
    a = self.args
    batch = training.make_batch(a.seed, self.first + i, a.batch_size, a.crop, a.max_motion,
                                self.clips, a.clips_fraction, a.views_per_scene, **self.scenes)
    return tuple(torch.from_numpy(f).permute(0, 3, 1, 2).contiguous() for f in batch)


def _one_thread_per_worker(_):
  torch.set_num_threads(1)  # the renderer is numpy; workers must not oversubscribe the cores
  # A stop sent to the whole process group (systemd, Slurm's scancel, a VM's shutdown, Ctrl-C)
  # is the trainer's to take, once a save is whole: a worker it killed made PyTorch raise in
  # the trainer wherever it was, a save included (cut short, exit 1 with a traceback). The
  # trainer ends its workers itself (`_ending_workers`).
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _ending_workers(batches):
  """`batches` (a DataLoader's iterator), whose rendering workers are told to end when the loop
  does, however it ends. Left to the iterator's garbage collection, a stop's exception kept it
  alive to the interpreter's exit, whose SIGTERM the workers ignore: the trainer hung."""
  try:
    yield batches
  finally:
    end = getattr(batches, '_shutdown_workers', None)  # (no workers: nothing to end)
    if end is not None:
      end()


class Trainer:
  """Model, optimiser, weight average and checkpoint of one run."""

  def __init__(self, options: Options, args, device: torch.device):
    self.options, self.args, self.device = options, args, device
    self.net = FilmNetTorch(options, args.precision).to(device)
    self.optimizer = torch.optim.Adam(self.net.parameters(), lr=args.lr,
                                      eps=KERAS_ADAM_EPSILON)
    self.ema: list[torch.Tensor] = []  # set by restore, with the weights
    self.step = 0
    self.meta: dict = {}
    self.path = os.path.join(args.output_dir, 'ckpt.pt')

  def learning_rate(self) -> float:
    """Keras' ExponentialDecay (not staircase) on the global step, as the TF trainer."""
    a = self.args
    return a.lr * a.lr_decay_rate ** (self.step / a.lr_decay_steps)

  def _keras_epsilon(self, group) -> float:
    """Keras adds Adam's epsilon to sqrt(v) before the bias correction, torch after it: for the
    same update (weights whose gradients are small moved up to 6x more in the first steps after
    every start, and so every move between the trainers), torch's epsilon is Keras' divided by
    sqrt(1 - beta_2^t), t the count of the step about to be taken."""
    state = self.optimizer.state.get(group['params'][0], {})
    count = int(state['step']) + 1 if 'step' in state else 1
    return KERAS_ADAM_EPSILON / math.sqrt(1.0 - group['betas'][1] ** count)

  def restore(self, init: str | None) -> str:
    if os.path.exists(self.path):
      try:
        state = torch.load(self.path, map_location=self.device, weights_only=False)
      except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:  # cut short, empty
        raise SystemExit(f'error: cannot read the checkpoint {self.path} '
                         f'({str(e).splitlines()[0]}): copy it whole, or continue in a new '
                         f'--output_dir with --init '
                         f'{os.path.join(os.path.dirname(self.path), "latest.npz")}') from None
      try:
        self.net.load_state_dict(state['net'])
      except RuntimeError as e:  # its latest.npz gone, else refused before
        lines = str(e).splitlines()  # (torch's says each mismatch on a line: the first tells)
        first = next((line.strip() for line in lines if 'size mismatch' in line), lines[0])
        raise SystemExit(f'error: cannot resume {self.path} with --options '
                         f'{self.options.to_json()} ({first}, ...); pass the run\'s own '
                         f'--options, or a new --output_dir') from None
      self.optimizer.load_state_dict(state['optimizer'])
      self.ema = [t.to(self.device) for t in state['ema']]
      self.step, self.meta = state['step'], state['meta']
      message = f'resumed {self.path} at step {self.step}'
      if self.args.ema_decay > 0 and not self.meta.get('ema_decay'):
        # The run had no weight average: one started now, not from its first weights.
        self.ema = [p.detach().clone() for p in self.net.parameters()]
        message += '; the weight average (--ema_decay) starts here'
      return message
    start = training.read_init(init, self.options) if init else None
    if start:
      weights, self.meta = start
      self.net.load_released_weights(weights)
      self.step = int(self.meta.get('steps', 0))
      message = f'started from {init} (step {self.step})'
    else:
      blended = training.blend_initialised(self.net.released_weights(), self.options,
                                           self.args.init_scheme)
      message = 'started from random weights (Glorot)'
      if blended is not None:
        self.net.load_released_weights(blended)
        message += ', blend-initialised (average of warped frames)'
    self.ema = [p.detach().clone() for p in self.net.parameters()]
    return message

  def train_step(self, x0, y, x1) -> torch.Tensor:
    for group in self.optimizer.param_groups:
      group['lr'] = self.learning_rate()
      group['eps'] = self._keras_epsilon(group)
    loss = torch.mean(torch.abs(self.net(x0, x1) - y))
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self.optimizer.step()
    decay = self.args.ema_decay
    if decay > 0:
      with torch.no_grad():
        for average, parameter in zip(self.ema, self.net.parameters()):
          average.lerp_(parameter, 1.0 - decay)
    self.step += 1
    return loss.detach()

  def save(self, seconds: float, data: str) -> str:
    """Checkpoint and `latest.npz`, each written whole (temp file renamed into place)."""
    self.meta = training.run_meta(
        self.meta, self.step, seconds, data, training.run_flags(self.args),
        f'film_net.train_torch on {_device_name(self.device)}', self.args.ema_decay,
        self.net.precision)
    checkpoint = io.BytesIO()
    torch.save({'net': self.net.state_dict(), 'optimizer': self.optimizer.state_dict(),
                'ema': self.ema, 'step': self.step, 'meta': self.meta}, checkpoint)
    weights_lib.write_local_whole(self.path, checkpoint.getvalue())
    exported = self.ema if self.args.ema_decay > 0 else None
    path = os.path.join(self.args.output_dir, 'latest.npz')
    weights_lib.save(path, self.net.released_weights(exported), self.options, meta=self.meta)
    return path


def _bfloat16_is_native(device: torch.device) -> bool:
  """As `model.bfloat16_is_native`: Ampere or later GPUs, CPUs with AVX512_BF16 or AMX."""
  if device.type == 'cuda':
    return torch.cuda.get_device_capability(device) >= (8, 0)
  return specs.cpu_multiplies_bfloat16()


def _device_name(device: torch.device) -> str:
  return torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'


def parse_args(argv):
  p = flags.command_line('film_net.train_torch', __doc__.splitlines()[0])
  training.add_arguments(p)
  p.add_argument('--device', type=_device, default='cuda' if torch.cuda.is_available() else 'cpu',
                 help='where the model trains: cpu, cuda or cuda:N (default: cuda where this '
                      'PyTorch sees a GPU, else cpu)')
  p.add_argument('--workers', type=flags.non_negative_int,
                 default=max(1, (os.cpu_count() or 2) - 1),
                 help='processes rendering batches (0: render in the training process; default: '
                      'the CPU count less one)')
  args = p.parse_args(argv)
  training.check_arguments(p, args)
  return args


def _device(name):
  """A device this PyTorch can train on (argparse says why not, with the usage)."""
  try:
    device = torch.device(name)
  except RuntimeError:
    raise argparse.ArgumentTypeError(f'{name!r}: use cpu, cuda or cuda:N') from None
  if device.type == 'cuda' and not torch.cuda.is_available():
    raise argparse.ArgumentTypeError(f'{name!r}: this PyTorch sees no CUDA GPU; use cpu')
  count = torch.cuda.device_count()
  if device.type == 'cuda' and device.index is not None and device.index >= count:
    raise argparse.ArgumentTypeError(f'{name!r}: this machine has {count} CUDA GPU(s)')
  if device.type not in ('cpu', 'cuda'):
    raise argparse.ArgumentTypeError(f'{name!r}: use cpu, cuda or cuda:N')
  return device


def main(argv=None) -> int:
  flags.start_command()
  args = parse_args(argv)
  options = Options.parse(args.options)
  device = args.device
  torch.manual_seed(args.seed)
  # TF32 convolutions: float32 range with a 10-bit mantissa, as TensorFlow uses on such GPUs.
  torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
  torch.backends.cudnn.benchmark = True
  with training.run_folder(args.output_dir):
    return _train(args, options, device)


def _train(args, options: Options, device) -> int:
  """The run, once its folder is made; its exit status."""
  trainer = Trainer(options, args, device)
  resumed = os.path.exists(trainer.path)
  export = lambda path: weights_lib.save(path, trainer.net.released_weights(
      trainer.ema if args.ema_decay > 0 else None), options, meta=trainer.meta)
  clips, data = training.begin(args, options, resumed, trainer.path,
                               lambda: trainer.restore(training.resolve_init(args.init)),
                               lambda: trainer.step, export, lambda: trainer.meta)
  if args.precision == 'bfloat16' and not _bfloat16_is_native(device):
    print('warning: precision bfloat16: this device has no bfloat16 arithmetic, so it is '
          'emulated and likely slower than float32', flush=True)
  print(f'device {_device_name(device)}, {len(render.natural_images())} natural images, '
        f'{args.workers} workers', flush=True)

  batches = torch.utils.data.DataLoader(
      StepBatches(args, trainer.step, clips), batch_size=None, shuffle=False,
      num_workers=args.workers, worker_init_fn=_one_thread_per_worker,
      pin_memory=device.type == 'cuda', prefetch_factor=4 if args.workers else None)

  def train_step(batch):
    return trainer.train_step(*(t.to(device, non_blocking=True) for t in batch))

  with _ending_workers(iter(batches)) as steps:
    training.run_steps(args, steps, train_step, current_step=lambda: trainer.step,
                       learning_rate=trainer.learning_rate,
                       save=lambda seconds: trainer.save(seconds, data),
                       seconds_before=(float(trainer.meta.get('seconds', 0.0)) if resumed
                                       else 0.0),
                       weights_finite=lambda: all(bool(torch.isfinite(p).all())
                                                  for p in trainer.net.parameters()))
  return 0


if __name__ == '__main__':
  sys.exit(flags.run_command(main))
