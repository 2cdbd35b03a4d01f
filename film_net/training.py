"""What the two trainers share, free of TensorFlow and PyTorch: training batches, flags, data.

`film_net.train` trains with TensorFlow (CPUs, the reference), `film_net.train_torch` the same
model with PyTorch where a CUDA GPU has PyTorch but no TensorFlow. Both read their batches from
`make_batch`, a pure function of (seed, step), take the same flags and write the same weight
files, so a run can move between them.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import glob
import hashlib
import os
import signal
import sys
import threading
import time
import zipfile
from typing import Callable, Iterable

import numpy as np

from film_net import flags
from film_net import render
from film_net import specs
from film_net import weights as weights_lib
from film_net.options import Options


def make_batch(seed: int, step: int, batch_size: int, crop: int, max_motion: float | None,
               clips: list | None = None, clips_fraction: float = 0.0, views_per_scene: int = 1,
               **scene_options):
  """(x0, y, x1) float32 batches for one step; identical for equal (seed, step).

  `scene_options` (small_objects, regular_share, motion_blur, deform, static_share) go to
  `render.render_triplet`. With `views_per_scene` K > 1 each triplet (rendered or from a clip)
  fills K consecutive slots, each a different flip or rotation (`render.augment_views`), so a
  step costs the rendering of batch_size / K triplets; K = 1 draws the batches it always did.
  """
  check_views(batch_size, views_per_scene)
  rng = np.random.default_rng([seed, step])
  options = dict(scene_options)
  if max_motion is not None:
    options['max_motion_px'] = max_motion
  frames = []
  for _ in range(batch_size // views_per_scene):
    if clips and rng.random() < clips_fraction:
      triplet = _clip_triplet(rng, clips, crop)
    else:
      triplet = render.render_triplet(rng, crop, crop, **options)
    if views_per_scene == 1:
      frames.append(render.augment(rng, *triplet))
    else:
      frames.extend(render.augment_views(rng, *triplet, views_per_scene))
  return tuple(np.stack([f[i] for f in frames]).astype(np.float32) for i in range(3))


def check_views(batch_size: int, views_per_scene: int) -> None:
  """Raises ValueError unless views_per_scene divides batch_size and a square crop has that
  many flips and rotations (8)."""
  if not 1 <= views_per_scene <= 8 or batch_size % views_per_scene:
    raise ValueError(f'views_per_scene {views_per_scene} must divide batch_size {batch_size} '
                     'and be between 1 and 8')


class BadClipFrame(ValueError):
  """A frame of --clips that a batch could not use; the message names the file and why."""


def stop_at_bad_clip_frame(error: BadClipFrame, step: int) -> SystemExit:
  """Both trainers' one line for a BadClipFrame. From a PyTorch rendering worker it comes with
  the worker's traceback in its message, whose last line is the original one."""
  message = str(error).strip().splitlines()[-1]
  message = message.split(f'{type(error).__name__}: ', 1)[-1]
  if isinstance(error, NoUsableClipTriplet):
    return SystemExit(f'--clips: {message}; stopped at step {step}')
  return SystemExit(f'--clips: {message}; stopped at step {step}: replace or remove that frame, '
                    f'then the same command goes on from the last checkpoint, if any (batches '
                    f'are a function of seed and step: unmended, a resume draws it again)')


# Random draws of --clips triplets in a row before the rest are tried in a random order.
CLIP_DRAWS = 20


class NoUsableClipTriplet(BadClipFrame):
  """No triplet of --clips has a middle frame that is the moment between the other two."""


def _clip_triplet(rng, clips, crop: int):
  """A joint random crop of a random --clips triplet whose middle frame is the moment between
  the other two (`scene_cuts.not_a_midpoint`): one across a scene cut, or a freeze's repeated
  frame, would teach the model to cross-fade at cuts and to hold. Such a draw is passed over and
  another drawn. After CLIP_DRAWS in a row every triplet is tried, in an order drawn from `rng`:
  giving up there stopped training on footage mostly of freezes or cuts (animation on twos, held
  titles) at a step every resume drew again. Footage whose first draws do is drawn as it always
  was."""
  from transforms import scene_cuts  # pylint: disable=import-outside-toplevel
  def order():  # (the order of the rest is drawn only once the draws are spent)
    for _ in range(CLIP_DRAWS):
      yield rng.integers(len(clips))
    yield from rng.permutation(len(clips))

  for k in order():
    triplet = clips[k]
    frames = _decoded(triplet)
    if scene_cuts.not_a_midpoint(*frames)[0] is None:
      return _crop(rng, triplet, frames, crop)
  raise NoUsableClipTriplet(f'each of its {len(clips)} triplets is across a scene cut or a '
                            f'repeated frame (a freeze): none has a middle frame that is the '
                            f'moment between the other two')


def _decoded(triplet):
  """A --clips triplet's three frames, decoded as the pipeline does."""
  from transforms import files, images  # pylint: disable=import-outside-toplevel
  frames = []
  for path in (triplet.frame0, triplet.truth, triplet.frame1):
    try:
      frames.append(images.decode(files.read_bytes(path), path).rgb())
    except Exception as e:  # truncated past its header, or a failed read from cloud storage
      raise BadClipFrame(f'{path}: {e}') from e
  return frames


def _crop(rng, triplet, frames, crop: int):
  """A joint random square crop of a triplet's three decoded frames."""
  h, w = frames[0].shape[:2]
  if h < crop or w < crop:
    raise ValueError(f'{triplet.frame0}: {w}x{h} is smaller than the {crop}px training crop')
  top, left = rng.integers(h - crop + 1), rng.integers(w - crop + 1)
  return tuple(f[top:top + crop, left:left + crop] for f in frames)


MAX_CROP = 2048


def add_arguments(p) -> None:
  """The flags both trainers take."""
  p.add_argument('--output_dir', required=True, type=flags.path_value,
                 help='checkpoints, meta.json and latest.npz')
  p.add_argument('--options', default='compact',
                 help=f'preset name ({", ".join(Options.PRESETS)}), or a JSON object of '
                      'Options')
  p.add_argument('--steps', type=int, required=True, help='train until this global step')
  p.add_argument('--max_minutes', type=flags.positive_float, default=None,
                 help='stop (and save) after this many minutes of training (default: no limit; '
                      'the same command goes on from there)')
  p.add_argument('--batch_size', type=flags.positive_int, default=8, help='triplets per step')
  p.add_argument('--views_per_scene', type=int, default=1,
                 help='each rendered triplet fills this many batch slots, each a different flip '
                      'or rotation (batch augmentation): that many times the samples per step '
                      'for the same rendering, for GPUs that rendering leaves idle; a divisor '
                      'of --batch_size, at most 8')
  p.add_argument('--crop', type=int, default=128,
                 help='square training frames of this size, at least what --options needs (64 '
                      f'for compact and released), at most {MAX_CROP}')
  p.add_argument('--max_motion', type=flags.in_range(float, render.MIN_MOTION, render.MAX_MOTION),
                 default=None, help='largest motion in px between x0 and x1, '
                                    f'{render.MIN_MOTION} to {render.MAX_MOTION:g} (default: the '
                                    'renderer\'s, crop / 8)')
  render.add_scene_arguments(p)
  p.add_argument('--lr', type=flags.in_range(float, 0), default=3e-4,
                 help='Adam\'s learning rate at step 0 (0: the weights stay put)')
  p.add_argument('--lr_decay_steps', type=flags.positive_int, default=20000,
                 help='the learning rate is multiplied by --lr_decay_rate every this many '
                      'global steps (smoothly)')
  p.add_argument('--lr_decay_rate', type=flags.positive_float, default=0.5,
                 help='the learning rate\'s factor per --lr_decay_steps')
  p.add_argument('--seed', type=flags.non_negative_int, default=0,
                 help='the rendered batches are a function of seed and step')
  p.add_argument('--ema_decay', type=flags.in_range(float, 0, 1, high_open=True), default=0.0,
                 help='export an exponential moving average of the weights (e.g. 0.998); 0: off')
  p.add_argument('--keep_every', type=flags.non_negative_int, default=0,
                 help='also keep the exported weights of every N-th step as step_N.npz (0: none)')
  p.add_argument('--init', default='default', type=flags.path_value,
                 help="weights to start from without a checkpoint (default: 'default', the "
                      "built-in model, if options match), 'none', a weight file, or a "
                      "SavedModel folder (FILM's released models: fine-tune them)")
  p.add_argument('--init_scheme', choices=('blend', 'glorot'), default='blend',
                 help='fresh weights (--init none): blend (start at the frame average) or glorot '
                      '(as FILM)')
  p.add_argument('--clips', default=None, type=flags.path_value,
                 help='folder of clips (local or gs://) to mix in')
  p.add_argument('--clips_fraction', type=flags.share, default=0.5,
                 help='share of batch slots drawn from --clips, 0 to 1')
  p.add_argument('--precision', choices=specs.PRECISIONS, default='float32',
                 help='arithmetic inside the convolutions, except those at the output\'s '
                      'resolution (weights, summed gradients and Adam stay float32): bfloat16 '
                      'trains ~1.2x faster on CPUs with AVX512_BF16 or AMX and slower on others, '
                      'in both trainers (docs/benchmarks.md)')
  p.add_argument('--log_every', type=flags.positive_int, default=20,
                 help='print the mean loss, steps/s and learning rate every this many steps')
  p.add_argument('--checkpoint_every', type=flags.positive_int, default=200,
                 help='save the checkpoint and latest.npz every this many steps (and at the '
                      'end)')


def check_arguments(parser, args) -> None:
  """Refuses flags that cannot work together (parser.error exits with the usage); each flag's
  own range is its argparse type's."""
  try:
    options = Options.parse(args.options)
  except (ValueError, TypeError) as e:
    parser.error(f'--options: {e}')
  if args.crop < options.min_size:
    parser.error(f'--crop must be >= {options.min_size} for --options {args.options} (its '
                 f'coarsest pyramid levels need that many px), got {args.crop}')
  if args.crop > MAX_CROP:  # (it was numpy's MemoryError from the renderer, a folder left)
    parser.error(f'--crop must be at most {MAX_CROP} (FILM trains at 256; a larger square '
                 f'costs memory as its area), got {args.crop}')
  problem = render.check_motion(args.max_motion, args.crop, '--crop')
  if problem:
    parser.error(problem)
  if not args.clips and args.clips_fraction != parser.get_default('clips_fraction'):
    parser.error(f'--clips_fraction {args.clips_fraction} needs --clips (the clips it is the '
                 'share of)')
  if weights_lib.is_remote(args.output_dir):
    parser.error(f'--output_dir must be a local folder (checkpoints are written there); got '
                 f'{args.output_dir}: copy latest.npz to cloud storage afterwards')
  flags.check_paths(parser, [('--output_dir', args.output_dir)])
  resumable = any(os.path.exists(os.path.join(args.output_dir, *name))  # --init goes unread
                  for name in (('ckpt', 'checkpoint'), ('ckpt.pt',)))
  if (args.init not in ('default', 'none') and not weights_lib.is_remote(args.init)
      and not os.path.exists(args.init) and not resumable):
    parser.error(f'--init {args.init}: no such file (a weight file, or default or none)')
  try:
    check_views(args.batch_size, args.views_per_scene)
  except ValueError as e:
    parser.error(f'--{e}')


@contextlib.contextmanager
def run_folder(output_dir: str):
  """The run folder, made and written to once before any work: one it cannot make or write (no
  permission, a read-only disk) was a traceback, or an error at the first save, after
  --checkpoint_every steps of training that were then lost. The folders made for it go again
  where the run ends with nothing in them (refused: a --steps not past the start file's step,
  --clips without a triplet; or stopped before its first save)."""
  made = flags.folders_to_make(output_dir)
  problem = flags.cannot_write('--output_dir', output_dir)
  if problem:
    raise SystemExit(f'error: {problem}')
  try:
    yield
  finally:
    flags.remove_empty_folders(made)


def refuse_orphaned_weights(output_dir: str, checkpoint: str) -> None:
  """A run without its checkpoint (`checkpoint`) in an output folder that holds another run's
  latest.npz (copied to a fresh machine, or written by the other trainer) would start afresh
  from --init and overwrite it: refuse, and say how to continue from it."""
  latest = os.path.join(output_dir, 'latest.npz')
  if os.path.exists(latest) and not os.path.exists(checkpoint):
    raise SystemExit(f'error: {output_dir} holds latest.npz but no checkpoint of this trainer '
                     f'({checkpoint}); to continue from those weights pass --init {latest} '
                     f'with a new --output_dir, or remove it')


def refuse_other_options(output_dir: str, options: Options) -> None:
  """A run resumed with --options whose weights differ from its own would fail deep inside
  the checkpoint's restore: refuse, naming the run's options (its latest.npz says them). Other
  options with the same weights (more pyramid levels) are allowed, with a warning, as changed
  flags are. A latest.npz cut short (a copy) is passed over: `mend_exports` writes it again."""
  latest = os.path.join(output_dir, 'latest.npz')
  if not os.path.exists(latest):
    return
  try:
    _, run_options = weights_lib.read_npz(latest)
  except Exception:  # pylint: disable=broad-except
    return
  if run_options is not None and specs.conv_specs(run_options) != specs.conv_specs(options):
    raise SystemExit(f'error: {output_dir} holds a run of --options {run_options.to_json()}, '
                     f'whose weights differ from those of --options {options.to_json()}; pass '
                     f'its options to resume it, or a new --output_dir')
  if run_options is not None and run_options != options:
    print(f'warning: resuming with --options {options.to_json()} (was '
          f'{run_options.to_json()}), the same weights run another way: from here the run '
          f'differs from one that was not interrupted', flush=True)


# The flags that make a run's batches and updates, besides the data (`describe_data`, whose
# words round the shares: --clips_fraction 0.5 and 0.504 read alike): a run resumed with the
# same ones ends with the weights of one never interrupted.
RUN_FLAGS = ('seed', 'batch_size', 'crop', 'max_motion', 'lr', 'lr_decay_steps', 'lr_decay_rate',
             'precision', 'ema_decay',  # (a resume without --ema_decay exports raw weights)
             'clips_fraction', 'views_per_scene', 'small_objects', 'regular_share', 'motion_blur',
             'deform', 'static_share')


def run_flags(args) -> dict:
  """What a run's meta records of `RUN_FLAGS`, for `warn_changed_flags` at a resume."""
  return {name: getattr(args, name) for name in RUN_FLAGS}


def warn_changed_flags(meta: dict, args, data: str, clips: list | None) -> None:
  """Says so where a resumed run goes on with other flags or data than it was saved with:
  allowed (a schedule may change on purpose), but its weights are then no longer those of an
  uninterrupted run. The data's words are named only where the flags named do not say it all
  (a share changed was said twice: as its flag, and again inside the data's words)."""
  saved = meta.get('flags')
  saved = saved if isinstance(saved, dict) else {}  # none recorded (an older run)
  changed = [f'--{name} {getattr(args, name)} (was {saved[name]})' for name in RUN_FLAGS
             if name in saved and saved[name] != getattr(args, name)]
  if meta.get('data') not in (None, data) and meta['data'] != describe_data(argparse.Namespace(
      **{**vars(args), **{name: saved[name] for name in RUN_FLAGS if name in saved}}), clips):
    changed.append(f'data {data} (was {meta["data"]})')
  if changed:
    print(f'warning: resuming with {"; ".join(changed)}: from here the run differs from one '
          f'that was not interrupted', flush=True)


def check_steps(start_step: int, steps: int, resumed: bool) -> None:
  """--steps is the global step to train until: a finished run resumed has nothing to do (and
  says so); a run started from a file already past it is a mistake (the built-in model is at
  step 42214, so `--steps 2000` from it would silently train nothing)."""
  if start_step < steps:
    return
  if resumed:
    print(f'nothing to do: the run is at step {start_step}, --steps is {steps}', flush=True)
    return
  if start_step == 0:
    why = (f'--steps {steps} trains nothing: it is the global step to train until, and the run '
           f'starts at step 0')
  else:
    why = (f'--steps {steps} is not past the start step {start_step} of the --init weights; '
           f'--steps is the global step to train until, e.g. --steps {start_step + steps} for '
           f'{steps} more steps')
  print(f'error: {why}', file=sys.stderr, flush=True)
  raise SystemExit(2)  # a usage error, as argparse's


def mend_exports(output_dir: str, step: int, keep_every: int, export: Callable[[str], None]):
  """A save cut by SIGTERM or SIGKILL (which cannot be deferred as Ctrl-C is) between the
  checkpoint and latest.npz, or the --keep_every copy, left them behind the checkpoint for good:
  the resume goes on past that step, or has nothing to do. A resumed run writes them again from
  its checkpoint (`export(path)` writes the weights at `step`). The temporaries such a save
  left (`weights.write_local_whole`'s, a model's size each; `step_N.npz.tmp` of runs before
  2026-12-05) go."""
  folder = glob.escape(output_dir)  # ('run [1]' is that folder, not a pattern)
  # (theirs alone: an export's staging folder, `.tmp-export-*`, or a file of the user's stays)
  left = [path for path in glob.glob(os.path.join(folder, '.tmp-*'))
          if weights_lib.is_whole_write_temporary(path)]
  for path in left + glob.glob(os.path.join(folder, 'step_*.npz.tmp')):
    if os.path.isfile(path):
      os.remove(path)
  latest = os.path.join(output_dir, 'latest.npz')
  try:
    behind = int(weights_lib.read_meta(latest).get('steps', -1)) != step
  except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # gone, or cut short
    behind = True
  if behind:
    export(latest)
    print(f'latest.npz was behind the checkpoint (a save cut short): written for step {step}',
          flush=True)
  kept = os.path.join(output_dir, f'step_{step}.npz')
  if keep_every and step % keep_every == 0 and not os.path.exists(kept):
    keep_copy(latest, kept)


def keep_copy(latest: str, kept: str) -> None:
  """--keep_every's copy of a save, whole or not at all."""
  with open(latest, 'rb') as f:
    weights_lib.write_local_whole(kept, f.read())


def resolve_init(init: str) -> str | None:
  """--init as a path: 'default' is the built-in model (None if absent), 'none' is None."""
  default = weights_lib.DEFAULT_MODEL if os.path.exists(weights_lib.DEFAULT_MODEL) else None
  return {'default': default, 'none': None}.get(init, init)


def read_init(init: str, options: Options) -> tuple[dict, dict] | None:
  """(released-name weights, meta) of the --init file (a weight file, or a SavedModel folder:
  FILM's released models, our exports). Where its convolutions differ from
  `options`: None for the built-in model (`--init default`: "if options match"), SystemExit for
  a file named (trained from random weights instead, a fine-tune asked for was not one).

  Options with the same convolutions share one weight set: e.g. pyramid depth adds none
  (deeper levels reuse the shared flow predictor), so training may change it.
  """
  try:
    loaded, file_options, meta = weights_lib.read_model(init)
  except Exception as e:  # pylint: disable=broad-except
    from transforms import files  # pylint: disable=import-outside-toplevel
    # No such bucket, no access: in the words --clips and the pipeline use, not Beam's dump.
    where = files.unreachable(init.rsplit('/', 1)[0]) if weights_lib.is_remote(init) else None
    raise SystemExit(f'error: --init {init}: {where or e}') from None
  if file_options is None:  # a plain file (the fixtures' layout): its shapes say its options
    try:
      file_options = weights_lib.infer_options(loaded, options)
    except ValueError as e:
      raise SystemExit(f'error: --init {init}: {e}') from None
  if specs.conv_specs(file_options) == specs.conv_specs(options):
    return loaded, meta
  if init != weights_lib.DEFAULT_MODEL:
    raise SystemExit(f'error: --init {init}: its options ({file_options}) differ from --options '
                     f'({options}) in the weights they need; pass its options, or --init none '
                     f'to start from fresh weights')
  print(f'not starting from {init}: its options differ from {options} in the weights they '
        'need', flush=True)
  return None


def blend_initialised(weights: dict[str, np.ndarray], options: Options,
                      scheme: str = 'blend') -> dict[str, np.ndarray] | None:
  """Fresh (random) released-name weights changed to start at "average of the two warped
  frames, with zero flow"; None where `scheme` is 'glorot' or the model is too narrow for it.

  Only initial values change, not the architecture: each flow predictor's last conv starts at
  zero (no motion), and the finest fusion level passes both warped RGB frames through its two
  3x3 convs (centre taps of 1; leaky ReLU keeps values in [0, 1] as they are) to an output conv
  that averages them. Training then starts from the frame-average baseline and improves the flows
  and the fusion from there, instead of first learning to reproduce an image at all, which from
  Glorot noise takes thousands of steps. Needs at least 6 filters at the finest fusion level.
  Both trainers start fresh runs here, so they start alike.
  """
  names = specs.fusion_conv_names(options)
  if (scheme == 'glorot' or specs.fusion_filters(options, 0) < 6
      or options.fusion_pyramid_levels < 2):
    return None
  out = {name: np.array(value, np.float32) for name, value in weights.items()}
  for spec in specs.conv_specs(options):
    if spec.name.startswith('predict_flow/') and spec.out_channels == 2:
      out[f'{spec.name}/kernel'][:] = 0.0
      out[f'{spec.name}/bias'][:] = 0.0
  x1_rgb = 3 + specs.feature_channels(options, 0)  # aligned[0] = [x0 rgb, feat, x1 rgb, ...]

  def pass_through(name: str, inputs: list[int]) -> None:
    kernel = out[f'{name}/kernel']
    kernel[..., :6] = 0.0
    kernel[:, :, inputs, :] = 0.0  # other channels do not read the passed-through ones
    for channel, source in enumerate(inputs):
      kernel[1, 1, source, channel] = 1.0
    out[f'{name}/bias'][:6] = 0.0

  pass_through(names[1], [0, 1, 2, x1_rgb, x1_rgb + 1, x1_rgb + 2])
  pass_through(names[2], list(range(6)))
  average = out[f'{names[-1]}/kernel']
  average[:] = 0.0
  for c in range(3):
    average[0, 0, c, c] = average[0, 0, 3 + c, c] = 0.5
  out[f'{names[-1]}/bias'][:] = 0.0
  return out


def carried_meta(meta: dict) -> dict:
  """What a run keeps of its start file's meta: how the model is meant to run (`inference`, e.g.
  the built-in model's flip averaging); steps, time and data are the run's own."""
  return {key: meta[key] for key in ('inference',) if key in meta}


def run_meta(previous: dict, steps: int, seconds: float, data: str, flags: dict, trainer: str,
             ema_decay: float, precision: str) -> dict:
  """The meta both trainers save with their checkpoints and weight files: the run's own steps,
  time, data, flags and trainer, what it carries from its start file's meta (`previous`), and
  the EMA decay and convolution precision where not the defaults."""
  meta = {'steps': steps, 'seconds': round(seconds, 1), 'data': data, 'flags': flags,
          'trainer': trainer, **carried_meta(previous)}
  if ema_decay > 0:
    meta['ema_decay'] = ema_decay
  if precision != 'float32':  # of the convolutions; weights and Adam stay float32
    meta['precision'] = precision
  return meta


_HEADER_THREADS = 16  # frame headers read at once when --clips is checked


def load_clips(args) -> list | None:
  """The real triplets of --clips, or None; what cannot be trained on stops the run here, with
  one line naming the path."""
  if not args.clips:
    return None
  # pylint: disable=import-outside-toplevel
  from transforms import files
  from transforms.clips import clip_frames, clip_triplets
  why = files.unreachable(args.clips)  # in the words the pipeline uses: no such bucket, ...
  if why:
    raise SystemExit(f'--clips {args.clips}: {why}')
  unaddressable, problems = {}, []
  try:
    frames_by_clip = clip_frames(args.clips, unaddressable=unaddressable, problems=problems)
  except Exception as e:  # pylint: disable=broad-except
    raise SystemExit(f'--clips {args.clips}: cannot be listed ({type(e).__name__}: {e})')
  if problems:  # (an unreadable folder: its clips were left out unsaid)
    print(f'--clips: {len(problems)} folder(s) cannot be listed, their clips left out, e.g. '
          f'{files.printable(problems[0][0])}: {problems[0][1]}', file=sys.stderr, flush=True)
  if unaddressable:  # (left out unsaid: a clip, or a frame whose triplets then read as uneven)
    lost = [path for folder in sorted(unaddressable) for path in unaddressable[folder]]
    print(f'--clips: {len(lost)} frame(s) left out, e.g. {files.printable(lost[0])}: '
          f'{files.unaddressable(lost[0])}', file=sys.stderr, flush=True)
  clips = clip_triplets(args.clips, frames_by_clip=frames_by_clip)
  short = [clip for clip, frames in frames_by_clip.items() if len(frames) < 3]
  if short and clips:
    print(f'--clips: {len(short)} clip folder(s) of fewer than 3 frames left out (no triplet), '
          f'e.g. {short[0]}', file=sys.stderr, flush=True)
  # Across a lost frame the middle one is not the midpoint in time: no truth to train on.
  uneven = [c.truth for c in clips if c.uneven]
  clips = [c for c in clips if not c.uneven]
  if uneven:
    print(f'--clips: {len(uneven)} triplets left out, their frame numbers unevenly spaced (a '
          f'frame lost or repeated?), e.g. the one around {uneven[0]}', file=sys.stderr, flush=True)
  if not clips:
    why = ('every triplet left out, its frame numbers unevenly spaced' if uneven else
           _no_clips(args.clips))
    raise SystemExit(f'--clips {args.clips}: {why}')
  # Every frame's header is read here: drawn mid-run, a frame that is no image, one smaller than
  # the crop, or one of another size than its clip's other frames (cropped out of line with
  # them, or short of the crop) would stop or spoil training at a step every resume reaches.
  # On cloud storage each header is a request: read many at once.
  names = list(dict.fromkeys(c.clip for c in clips))
  paths = [path for name in names for path in frames_by_clip[name]]
  with concurrent.futures.ThreadPoolExecutor(_HEADER_THREADS) as pool:
    sizes = dict(zip(paths, pool.map(_frame_size, paths)))
  for clip in names:
    first, *rest = frames_by_clip[clip]
    width, height = sizes[first]
    if min(width, height) < args.crop:
      raise SystemExit(f'--clips: {first} is {width}x{height}, smaller than the {args.crop}px '
                       f'training crop (--crop)')
    for path in rest:
      other = sizes[path]
      if other != (width, height):
        raise SystemExit(f'--clips: {path} is {other[0]}x{other[1]}, but {first} of the same '
                         f'clip is {width}x{height}; a clip\'s frames must be one size')
  return clips


def _frame_size(path: str) -> tuple[int, int]:
  """(width, height) from a frame's header (only the header is read; a frame PIL cannot open,
  such as 16-bit gray+alpha TIFF, is decoded whole), or SystemExit naming it."""
  from transforms import files, images  # pylint: disable=import-outside-toplevel
  try:
    size = images.header_size(path)
  except Exception as e:  # pylint: disable=broad-except
    reason = f'{type(e).__name__}: {e}'
    raise SystemExit(f'--clips: {path} is not a readable image ({reason})') from None
  if size:
    return size
  try:
    frame = images.decode(files.read_bytes(path), path)
  except Exception as e:  # pylint: disable=broad-except
    raise SystemExit(f'--clips: {path}: {files.reason(e)}') from None
  return frame.width, frame.height


def _no_clips(path: str) -> str:
  """Why --clips holds no triplet, for its error line."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  from transforms.clips import is_glob_in_a_folder  # pylint: disable=import-outside-toplevel
  if not os.path.isdir(path):
    if files.is_file(path):
      return 'is a file; --clips takes a folder of clips (folders of frames)'
    if is_glob_in_a_folder(path):
      return 'no clip folder with at least 3 frames matches'
    if not files.match(path.rstrip('/'), '**'):  # on object stores: no object under it
      return 'no such folder'
  return 'no clip folder with at least 3 frames'


def describe_data(args, clips: list | None) -> str:
  """The training data in words, for the weight file's meta and the model card."""
  data = 'rendered'
  scenes = render.scene_options(args)
  if any(scenes.values()):
    parts = [f'small objects <= {args.small_objects}', f'regular textures {args.regular_share:.0%}',
             f'motion blur {args.motion_blur:.0%}']
    if args.deform:
      parts.append(f'non-rigid layers {args.deform:.0%}')
    if args.static_share:
      parts.append(f'still camera and background {args.static_share:.0%}')
    data += f' ({", ".join(parts)})'
  if clips:
    # One way to say where, whatever the spelling ('./x', 'x/', relative or not): a resume
    # compares the words.
    from transforms.clips import input_root  # pylint: disable=import-outside-toplevel
    where, root = args.clips.rstrip('/'), input_root(args.clips).rstrip('/')
    if weights_lib.is_remote(where):
      below = lambda clip: clip[len(root):].lstrip('/')
    else:
      where = os.path.abspath(where)
      below = lambda clip: os.path.relpath(clip, root)
    # Which triplets, by clip (its folder below --clips) and frame names: footage added to the
    # folder or taken out between a stop and the resume draws other batches, and the resume
    # must say so.
    names = '\n'.join(sorted('|'.join([below(t.clip)] + [os.path.basename(path) for path in
                                                         (t.frame0, t.truth, t.frame1)])
                              for t in clips))
    data += (f' + clips {where} ({args.clips_fraction:.0%}, {len(clips)} triplets '
             f'{hashlib.sha1(names.encode()).hexdigest()[:8]})')
  if args.views_per_scene > 1:
    data += f', {args.views_per_scene} views per triplet'
  return data


def begin(args, options: Options, resumed: bool, checkpoint: str, restore: Callable[[], str],
          current_step: Callable[[], int], export: Callable[[str], None],
          meta: Callable[[], dict]):
  """What both trainers do between making the run's trainer and its first step: refuse a run
  that would spoil another (`refuse_other_options`, `refuse_orphaned_weights`, with `checkpoint`
  the trainer's own), `restore()` and say how, mend the exports a cut save left (`export(path)`
  writes the weights at `current_step()`), check --steps, read --clips, and warn of flags
  changed since the restored `meta()`. Returns the clips (or None) and the data in words
  (`describe_data`)."""
  if resumed:
    refuse_other_options(args.output_dir, options)
  else:
    refuse_orphaned_weights(args.output_dir, checkpoint)
  # (before the line saying where the run starts: a --clips that cannot be trained on stops it)
  clips = load_clips(args)
  print(restore(), flush=True)
  if resumed:
    mend_exports(args.output_dir, current_step(), args.keep_every, export)
  check_steps(current_step(), args.steps, resumed)
  data = describe_data(args, clips)
  if resumed:
    warn_changed_flags(meta(), args, data, clips)
  return clips, data


def run_steps(args, batches: Iterable, train_step: Callable, current_step: Callable[[], int],
              learning_rate: Callable[[], float], save: Callable[[float], str],
              seconds_before: float, weights_finite: Callable[[], bool]) -> None:
  """The loop both trainers run: one `train_step(batch)` per batch, the mean loss, steps/s and
  learning rate every --log_every steps, `save(total seconds)` every --checkpoint_every steps,
  at the last step and when --max_minutes is up, and a kept copy every --keep_every steps (saved
  then too, so neither period need divide the other).

  `train_step` may return a device tensor: it is read only when logged, so GPU work is not
  waited for every step. Ctrl-C stops it with one line and exit status 130, SIGTERM (a spot
  VM's preemption, `kill`, a scheduler's stop) the same with 143: the checkpoints saved so far
  stay, and the same command resumes from the last. A run that diverges (weights
  no longer finite, `weights_finite`, asked before each save, when a step fails and when a
  logged loss is not finite) stops with one line, exit status 1, saving nothing: it exported
  NaN weights with exit status 0, or failed in the warp's gather the step after. A frame of
  --clips that a batch cannot use stops it with one line naming the frame (`BadClipFrame`).
  """
  stops = _StopSignals()
  try:
    with stops.handled():
      _run_steps(args, batches, train_step, current_step, learning_rate, save, seconds_before,
                 weights_finite, stops)
  except BadClipFrame as e:
    raise stop_at_bad_clip_frame(e, current_step()) from None
  except Diverged:
    raise SystemExit(
        f'training diverged at step {current_step()}: the weights are no longer finite numbers '
        f'(nan or inf), and are not saved. Lower --lr (now {args.lr:g}) and run again: a resume '
        f'draws the same batches, and the checkpoints before this step may already be far off '
        f'(a new --output_dir starts afresh)') from None
  except KeyboardInterrupt:
    signum = stops.received[0] if stops.received else signal.SIGINT
    stopped = 'interrupted' if signum == signal.SIGINT else 'terminated (SIGTERM)'
    print(f'{stopped} at step {current_step()}; the same command resumes from the last '
          f'checkpoint (saved every {args.checkpoint_every} steps)', file=sys.stderr, flush=True)
    raise SystemExit(128 + signum) from None


class Diverged(Exception):
  """The weights are no longer finite numbers."""


def _run_steps(args, batches, train_step, current_step, learning_rate, save, seconds_before,
               weights_finite, stops):
  started = window_start = time.time()
  losses = []
  for batch in batches:
    try:
      losses.append(train_step(batch))
    except Exception as e:
      if stops.received:  # the signal came out of a TensorFlow call as another exception
        raise KeyboardInterrupt from e
      if not weights_finite():
        raise Diverged() from e
      raise
    step = current_step()
    if step % args.log_every == 0:
      rate = len(losses) / (time.time() - window_start)
      eta = (args.steps - step) / rate / 60
      loss = np.mean([float(v) for v in losses])
      print(f'step {step}/{args.steps}  loss {loss:.4f}  {rate:.2f} steps/s  '
            f'lr {learning_rate():.2e}  ETA {eta:.1f} min', flush=True)
      window_start, losses = time.time(), []
      if not np.isfinite(loss) and not weights_finite():  # (it trained on to the next save)
        raise Diverged()
    out_of_time = args.max_minutes and time.time() - started > args.max_minutes * 60
    keep = bool(args.keep_every) and step % args.keep_every == 0
    if step % args.checkpoint_every == 0 or keep or step == args.steps or out_of_time:
      if not weights_finite():
        raise Diverged()
      with stops.deferred():
        path = save(seconds_before + time.time() - started)
        print(f'saved step {step} -> {path}', flush=True)
        if keep:  # whole or not at all: the step's checkpoint is saved, a resume goes past it
          keep_copy(path, os.path.join(args.output_dir, f'step_{step}.npz'))
    if out_of_time:
      print(f'stopping after {args.max_minutes} min at step {step}', flush=True)
      break


class _StopSignals:
  """Ctrl-C and SIGTERM as a KeyboardInterrupt while training, held back during a save.

  SIGTERM's default killed the trainer at once with exit status 143 and no line: the step it
  reached went unsaid. A signal during a save takes effect once the save is whole: cut between
  the checkpoint and latest.npz (or the --keep_every copy), it left latest.npz steps behind a
  checkpoint whose resume then had nothing to do, and the kept copy was never written. Only
  the default handlers are replaced: a SIGINT the process ignores (started in the background
  by a script) stays ignored, and another handler is the embedding program's.
  """

  def __init__(self):
    self.received = []
    self._deferring = False

  def _on_signal(self, signum, frame):
    del frame
    self.received.append(signum)
    if not self._deferring:
      raise KeyboardInterrupt

  @contextlib.contextmanager
  def handled(self):
    if threading.current_thread() is not threading.main_thread():  # signals reach it alone
      yield
      return
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    replaced = {signum: signal.getsignal(signum) for signum, default in defaults.items()
                if signal.getsignal(signum) is default}
    for signum in replaced:
      signal.signal(signum, self._on_signal)
    try:
      yield
    finally:
      for signum, previous in replaced.items():
        signal.signal(signum, previous)

  @contextlib.contextmanager
  def deferred(self):
    self._deferring = True
    try:
      yield
    finally:
      self._deferring = False
    if self.received:
      raise KeyboardInterrupt
