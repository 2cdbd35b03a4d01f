"""Train film_net with L1 loss and Adam on rendered triplets (and optionally real clips).

    python -m film_net.train --output_dir checkpoints/compact --options compact \
        --steps 44214 --batch_size 8 --crop 128

From the built-in model, at step 42214, that is 2000 more steps: --steps is the global step to
train until. Every batch is a pure function of (seed, step), so a run interrupted and resumed
from its last checkpoint produces the same weights as one that was not. A run with no
checkpoint of its own starts from `--init` (by default the built-in model, when its options
match), so training can continue on a fresh machine from the shipped weights. Middlebury is for
evaluation only and is never read here.
"""
from __future__ import annotations

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import contextlib
import json
import os
import queue
import sys
import threading

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.training import checkpoint_state_pb2

from film_net import flags
from film_net import render
from film_net import training
from film_net import weights as weights_lib
from film_net.model import FilmNet
from film_net.options import Options


class GlobalStepDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
  """Exponential decay on the run's global step, not on Adam's own step count.

  A run started from a weight file restarts Adam's moments, so Adam's count (its bias
  correction) must restart with them; the learning rate still follows the global step, which
  goes on from the file's.
  """

  def __init__(self, lr: float, decay_steps: int, decay_rate: float, global_step: tf.Variable):
    self.decay = tf.keras.optimizers.schedules.ExponentialDecay(lr, decay_steps, decay_rate)
    self.global_step = global_step

  def __call__(self, adam_count):
    del adam_count  # Adam passes its own count; the rate follows the run's
    return self.decay(self.global_step)

  def get_config(self):
    return self.decay.get_config()


def _refuse_unreadable_checkpoint_state(ckpt_dir: str, output_dir: str) -> None:
  """TensorFlow passes over a checkpoint state file (`ckpt/checkpoint`) it cannot parse with a
  warning, and the run would start afresh over its own folder; an empty one was a traceback.
  Either is a partial copy: refuse in one line naming it, as for the checkpoint's own files; so
  is a state file gone from beside checkpoint files (TensorFlow would see no checkpoint)."""
  state_file = os.path.join(ckpt_dir, 'checkpoint')
  if not os.path.isfile(state_file):
    parts = sorted(n for n in (os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else [])
                   if n.startswith('ckpt-'))
    if parts:
      raise SystemExit(f'error: the checkpoint state {state_file} is gone, beside checkpoint '
                       f'files ({", ".join(parts[:3])}{", ..." if len(parts) > 3 else ""}): copy '
                       f'the run folder\'s ckpt/ whole, or continue in a new --output_dir with '
                       f'--init {os.path.join(output_dir, "latest.npz")}')
    return
  try:
    with open(state_file, encoding='utf-8') as f:
      state = text_format.Parse(f.read(), checkpoint_state_pb2.CheckpointState())
    reason = None if state.model_checkpoint_path else 'it names no checkpoint'
  except (text_format.ParseError, UnicodeDecodeError) as e:
    reason = str(e).splitlines()[0]
  if reason:
    raise SystemExit(f'error: cannot read the checkpoint state {state_file} ({reason}): copy '
                     f'the run folder\'s ckpt/ whole, or continue in a new --output_dir with '
                     f'--init {os.path.join(output_dir, "latest.npz")}')


class Trainer:
  """The model, optimiser and checkpoint of one training run."""

  def __init__(self, options: Options, output_dir: str, lr: float, lr_decay_steps: int,
               lr_decay_rate: float, seed: int, ema_decay: float = 0.0,
               legacy_adam_count: bool = False, precision: str = 'float32'):
    self.options = options
    self.ema_decay = ema_decay
    self.legacy_adam_count = legacy_adam_count
    self.output_dir = output_dir
    self.net = FilmNet(options, seed=seed, name='film_net', precision=precision)
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
    schedule = GlobalStepDecay(lr, lr_decay_steps, lr_decay_rate, self.step)
    self.optimizer = tf.keras.optimizers.Adam(learning_rate=schedule)
    self.optimizer.build(self.net.trainable_variables)
    # An exponential moving average of the weights is what gets exported when ema_decay > 0:
    # single checkpoints of a small-batch run swing by dB; their average does not.
    self.variables = self.net.released_variables()
    self.ema = [tf.Variable(v, trainable=False) for v in self.variables.values()]
    self.meta = {}
    self.checkpoint = tf.train.Checkpoint(net=self.net, optimizer=self.optimizer, step=self.step,
                                          ema=self.ema)
    _refuse_unreadable_checkpoint_state(os.path.join(output_dir, 'ckpt'), output_dir)
    self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(output_dir, 'ckpt'),
                                              max_to_keep=2)

  def restore(self, init: str | None, scheme: str = 'blend') -> str:
    """Resumes the run's own checkpoint, else starts from `init` weights; says which."""
    if self.manager.latest_checkpoint:
      try:
        self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
      except (ValueError, AssertionError) as e:  # its latest.npz gone, else refused before
        raise SystemExit(f'error: cannot resume {self.manager.latest_checkpoint} with --options '
                         f'{self.options.to_json()} ({e}); pass the run\'s own --options, or a '
                         f'new --output_dir') from None
      except (tf.errors.OpError, IndexError) as e:  # files gone or cut short (a partial copy)
        reason = getattr(e, 'message', None) or str(e)
        raise SystemExit(f'error: cannot read the checkpoint {self.manager.latest_checkpoint} '
                         f'({reason.splitlines()[0]}): copy the run folder\'s ckpt/ whole, or '
                         f'continue in a new --output_dir with --init '
                         f'{os.path.join(self.output_dir, "latest.npz")}') from None
      self.meta = self._saved_meta()
      message = f'resumed {self.manager.latest_checkpoint} at step {int(self.step.numpy())}'
      if self.ema_decay > 0 and not self.meta.get('ema_decay'):
        # The run had no weight average: one started now, not from its first weights.
        for average, variable in zip(self.ema, self.variables.values()):
          average.assign(variable)
        message += '; the weight average (--ema_decay) starts here'
      return message
    message = self._start(init, scheme)
    for average, variable in zip(self.ema, self.variables.values()):
      average.assign(variable)
    return message

  def _start(self, init: str | None, scheme: str) -> str:
    """Sets the starting weights of a run without a checkpoint of its own."""
    start = training.read_init(init, self.options) if init else None
    if start:
      weights, self.meta = start
      self.net.set_released_weights(weights)
      # Adam's moments are not in the weight file: they restart, and so does Adam's own step
      # count (else its bias correction is off and the first ~1000 steps are up to 3x too
      # large); the global step, which sets the learning rate, goes on.
      steps = int(self.meta.get('steps', 0))
      self.step.assign(steps)
      if self.legacy_adam_count:
        self.optimizer.iterations.assign(steps)
      return f'started from {init} (step {steps})'
    blended = training.blend_initialised(self.net.released_weights(), self.options, scheme)
    if blended is None:
      return 'started from random weights'
    self.net.set_released_weights(blended)
    return 'started from random weights, blend-initialised (average of warped frames)'

  @tf.function(reduce_retracing=True, autograph=False)
  def train_step(self, x0, y, x1):
    with tf.GradientTape() as tape:
      pyr0, feat0 = self.net.features(x0)
      pyr1, feat1 = self.net.features(x1)
      image = self.net.interpolate_from_features(pyr0, feat0, pyr1, feat1)['image']
      loss = tf.reduce_mean(tf.abs(image - y))
    grads = tape.gradient(loss, self.net.trainable_variables)
    self.optimizer.apply_gradients(zip(grads, self.net.trainable_variables))
    if self.ema_decay > 0:
      for average, variable in zip(self.ema, self.variables.values()):
        average.assign(self.ema_decay * average + (1.0 - self.ema_decay) * variable)
    self.step.assign_add(1)
    return loss

  def exported_weights(self) -> dict:
    """Released-name weights: the moving average when enabled, else the current weights."""
    values = self.ema if self.ema_decay > 0 else self.variables.values()
    return {name: v.numpy() for name, v in zip(self.variables, values)}

  def _saved_meta(self) -> dict:
    """The run's meta: meta.json, or if that is gone the exported file's copy of it."""
    meta = _read_json(os.path.join(self.output_dir, 'meta.json'))
    if meta:
      return meta
    try:
      return weights_lib.read_meta(os.path.join(self.output_dir, 'latest.npz'))
    except Exception:  # pylint: disable=broad-except
      # Neither whole (a partial copy, the ckpt/ folder alone say; every save writes meta.json
      # before its checkpoint): going on without the meta would drop for good how the model
      # runs (carried from --init) and the weight average's history.
      raise SystemExit(f'error: cannot read the run\'s meta in {self.output_dir}: meta.json '
                       f'and latest.npz are both cut short, unreadable or gone; copy them whole '
                       f'from where the run was, or start a new --output_dir') from None

  def save(self, seconds: float, data: str, flags: dict) -> str:
    self.meta = training.run_meta(self.meta, int(self.step.numpy()), seconds, data, flags,
                                  'film_net.train', self.ema_decay, self.net.precision)
    # meta.json first: a save killed between the two then leaves a checkpoint whose resume still
    # finds the meta (how the model runs, carried from the start file), not none.
    _write_json(os.path.join(self.output_dir, 'meta.json'), self.meta)
    self.manager.save(checkpoint_number=int(self.step.numpy()))
    path = os.path.join(self.output_dir, 'latest.npz')
    weights_lib.save(path, self.exported_weights(), self.options, meta=self.meta)
    return path


def _read_json(path: str) -> dict:
  """The file's JSON; {} where it is missing or cut short (a copy): the exported file's copy
  of the meta then serves (`_saved_meta`)."""
  try:
    with open(path) as f:
      return json.load(f)
  except (FileNotFoundError, json.JSONDecodeError):
    return {}


def _write_json(path: str, data: dict) -> None:
  weights_lib.write_local_whole(path, json.dumps(data, indent=2, sort_keys=True).encode())


def prefetched(make_batch, steps: range, ahead: int = 2):
  """make_batch(step) for each of `steps` in order, up to `ahead` of them made in a thread while
  the model trains (TensorFlow lets go of the GIL); a batch's error is raised in its turn.

  Not tf.data: when a batch failed there (a frame of --clips truncated, a failed read from cloud
  storage), its iterator waited at exit, holding the GIL, on a Python call that needed it, and
  the process hung after the traceback instead of stopping. The thread is a daemon, not an
  executor's: Python joins those at exit, so a batch that never ended (a stalled read) kept a
  stopped run from ending, Ctrl-C or not.
  """
  made = queue.Queue(maxsize=ahead)
  stop = threading.Event()

  def make_all():
    for step in steps:
      try:
        item = make_batch(step), None
      except BaseException as e:  # pylint: disable=broad-except
        item = None, e
      while not stop.is_set():
        try:
          made.put(item, timeout=0.1)
          break
        except queue.Full:
          continue
      if stop.is_set() or item[1] is not None:
        return

  threading.Thread(target=make_all, name='batches', daemon=True).start()
  try:
    for _ in steps:
      batch, error = made.get()
      if error is not None:
        raise error
      yield batch
  finally:
    stop.set()


def parse_args(argv):
  p = flags.command_line('film_net.train', __doc__.splitlines()[0])
  training.add_arguments(p)
  p.add_argument('--legacy_adam_count', action='store_true',
                 help='reproduce runs made before the fix (model card stages 2-7): starting from '
                      'a weight file, Adam counted on from its step, which made the first ~1000 '
                      'steps up to 3x larger')
  args = p.parse_args(argv)
  training.check_arguments(p, args)
  return args


def main(argv=None) -> int:
  flags.start_command()
  args = parse_args(argv)
  options = Options.parse(args.options)
  init = training.resolve_init(args.init)
  with training.run_folder(args.output_dir):
    return _train(args, options, init)


def _train(args, options: Options, init) -> int:
  """The run, once its folder is made; its exit status."""
  trainer = Trainer(options, args.output_dir, args.lr, args.lr_decay_steps, args.lr_decay_rate,
                    args.seed, args.ema_decay, args.legacy_adam_count, args.precision)
  resumed = trainer.manager.latest_checkpoint is not None
  current_step = lambda: int(trainer.step.numpy())
  export = lambda path: weights_lib.save(path, trainer.exported_weights(), options,
                                         meta={**trainer.meta, 'steps': current_step()})
  # (the state file: a ckpt/ folder without it, empty or not, holds no checkpoint for TF)
  clips, data = training.begin(args, options, resumed,
                               os.path.join(args.output_dir, 'ckpt', 'checkpoint'),
                               lambda: trainer.restore(init, args.init_scheme), current_step,
                               export, lambda: trainer.meta)
  scenes = render.scene_options(args)

  start_step = current_step()
  steps = range(start_step, max(start_step, args.steps))
  make = lambda step: training.make_batch(args.seed, step, args.batch_size, args.crop,
                                          args.max_motion, clips, args.clips_fraction,
                                          args.views_per_scene, **scenes)
  with contextlib.closing(prefetched(make, steps)) as batches:
    training.run_steps(
        args, batches, lambda batch: trainer.train_step(*batch), current_step,
        learning_rate=lambda: float(trainer.optimizer.learning_rate),
        save=lambda seconds: trainer.save(seconds, data, training.run_flags(args)),
        seconds_before=float(trainer.meta.get('seconds', 0.0)) if resumed else 0.0,
        weights_finite=lambda: all(bool(tf.reduce_all(tf.math.is_finite(v)))
                                   for v in trainer.variables.values()))
  return 0


if __name__ == '__main__':
  sys.exit(flags.run_command(main))
