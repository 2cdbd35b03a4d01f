"""Interpolate one pair of frames from the command line.

    python -m film_net.interpolate A.png B.png --times_to_interpolate 2 --output_dir out/

writes out/frame_000.png ... (inputs included), 2**n + 1 frames in temporal order, each as it is
made, as the pipeline writes them: PNG inputs as they are, others re-encoded losslessly,
in-betweens in the widest format of the two (16 bit for a 16-bit or 10-bit scan, alpha blended,
the colour description kept). `RECORD` in the folder lists the frames it wrote, the only ones a
later run there replaces or removes; a folder holding frame_NNN.png files it did not write is
refused (files of other names are left alone).
"""
from __future__ import annotations

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import json
import os
import re
import sys

from film_net import flags
from film_net import weights as weights_lib
from film_net.image_io import read_frame


def main(argv=None) -> int:
  flags.start_command()
  parser = flags.command_line('film_net.interpolate', __doc__.splitlines()[0])
  parser.add_argument('frame0', help='the first frame (png, jpg, tif or dpx)')
  parser.add_argument('frame1', help='the second frame, of the same size')
  parser.add_argument('--times_to_interpolate', type=flags.times_to_interpolate, default=1,
                      help='recursion depth n, 0 to 10: 2**n - 1 new frames between the two')
  parser.add_argument('--output_dir', required=True, type=flags.path_value,
                      help='folder for frame_000.png (frame0) to frame_<2**n>.png (frame1): new, '
                           'empty or an earlier run\'s (frame_NNN.png files it did not '
                           'write there are refused)')
  parser.add_argument('--model', '--model_path', dest='model', default=None,
                      type=flags.path_value,
                      help='released SavedModel dir, .npz or our weight file; default: built-in '
                           '(--model_path: the same, as the pipeline\'s commands name it)')
  parser.add_argument('--align', type=flags.align, default=64,
                      help='pad to a multiple of this; 0: none')
  flags.add_flip_average_flags(parser, 'the pair')
  flags.add_tile_flags(parser)
  args = parser.parse_args(argv)
  flags.check_tile_flags(parser, args)
  if weights_lib.is_remote(args.output_dir):  # os.makedirs made a local folder 'gs:'
    parser.error(f'--output_dir must be a local folder; got {args.output_dir}')
  flags.check_paths(parser, [('--output_dir', args.output_dir)], [('--model', args.model)])
  made = flags.folders_to_make(args.output_dir)
  try:
    status = _interpolate(args)
  except KeyboardInterrupt:  # (stopped while the model loaded: a new folder it made, empty)
    flags.remove_empty_folders(made)
    raise
  if status:  # refused before its first frame: no folder left behind
    flags.remove_empty_folders(made)
  return status


def _interpolate(args) -> int:
  """The command's work, once its flags are checked; its exit status."""
  try:
    os.makedirs(args.output_dir, exist_ok=True)  # Before the work: a bad --output_dir fails fast.
    data, frames = zip(read_frame(args.frame0), read_frame(args.frame1))
  except (OSError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  (h0, w0), (h1, w1) = (f.pixels.shape[:2] for f in frames)
  if (h0, w0) != (h1, w1):
    print(f'error: frames differ in size: {args.frame0} is {w0}x{h0}, {args.frame1} is '
          f'{w1}x{h1}; interpolation needs frames of one size', file=sys.stderr)
    return 1
  names = frame_names(2 ** args.times_to_interpolate + 1)
  try:
    earlier = _earlier_frames(args.output_dir, names, (args.frame0, args.frame1))
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  try:
    # TensorFlow loads here, once the flags and frames are known good: a usage error or a
    # missing frame is said at once, not after the seconds TensorFlow takes to import.
    from film_net.interpolator import Interpolator  # pylint: disable=import-outside-toplevel
    interp = Interpolator.from_path(args.model, align=args.align or None,
                                    flip_average=args.flip_average, tile=args.tile or None,
                                    tile_overlap=args.tile_overlap)
    interp.check_size(h0, w0)  # (before the record of frames being written is made)
  except (OSError, ValueError) as e:  # (naming the file) a usage error, as a local --model
    print(f'error: {e}', file=sys.stderr)  # that is not there, and as the pipeline's commands
    return 2
  except ModuleNotFoundError as e:
    if e.name != 'tensorflow':
      raise
    print(f'error: {flags.NO_TENSORFLOW}', file=sys.stderr)
    return 2
  try:
    # Said before the first frame is written: a stopped run's frames are still this command's.
    _write_record(args.output_dir, sorted(set(earlier) | set(names)), complete=False)
    made = interp.iter_recursive([f.rgb() for f in frames], args.times_to_interpolate)
    for name, png in zip(names, _pngs(made, len(names), data, frames)):
      weights_lib.write_local_whole(os.path.join(args.output_dir, name), png)
    # Frames an earlier, deeper run left would trail this sequence in any glob of the folder.
    for name in set(earlier) - set(names):
      if os.path.exists(os.path.join(args.output_dir, name)):
        os.remove(os.path.join(args.output_dir, name))
    _write_record(args.output_dir, names, complete=True)
  except (OSError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {len(names)} frames to {args.output_dir}')
  return 0


# What this command wrote to its --output_dir: the frames it may replace or remove there.
RECORD = '.film-interpolate.json'
_FRAME_NAME = re.compile(r'frame_\d{3,}\.png')


def frame_names(count: int) -> list[str]:
  """frame_000.png ...: as many digits as the last needs (4 from 1001 frames on), so that the
  names sort in time order."""
  width = max(3, len(str(count - 1)))
  return [f'frame_{i:0{width}d}.png' for i in range(count)]


def _earlier_frames(folder: str, names: list[str], inputs) -> list[str]:
  """The frames an earlier run of this command wrote to `folder` (its record's). ValueError
  where the folder holds frames it did not write (an extracted sequence, the inputs), which this
  run would overwrite or remove, or where an input is one of the frames it writes."""
  try:
    with open(os.path.join(folder, RECORD), encoding='utf-8') as f:
      earlier = json.load(f)['frames']
    if not (isinstance(earlier, list) and all(isinstance(name, str) and
                                              _FRAME_NAME.fullmatch(name) for name in earlier)):
      raise ValueError('its frames are not a list of frame_NNN.png names')  # (`../x` went too)
  except FileNotFoundError:
    earlier = []
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f'{os.path.join(folder, RECORD)}: not this command\'s record of its frames '
                     f'({e}): name a new or empty --output_dir') from None
  present = sorted(name for name in os.listdir(folder) if _FRAME_NAME.fullmatch(name))
  others = [name for name in present if name not in earlier]
  if others:
    raise ValueError(f'--output_dir {folder} holds frames this command did not write '
                     f'({", ".join(others[:3])}{", ..." if len(others) > 3 else ""}), which it '
                     f'would replace or remove: name a new or empty folder')
  ours = set(earlier) | set(names)
  for path in inputs:  # (one in a bucket is no file of the folder's)
    if (not weights_lib.is_remote(path) and os.path.basename(path) in ours
        and os.path.exists(os.path.join(folder, os.path.basename(path)))
        and os.path.samefile(os.path.dirname(os.path.abspath(path)), folder)):
      raise ValueError(f'{path} is a frame this run would replace or remove: name another '
                       f'--output_dir')
  return earlier


def _write_record(folder: str, names: list[str], complete: bool) -> None:
  """`complete` false while frames are being written: a run stopped midway says so."""
  weights_lib.write_local_whole(os.path.join(folder, RECORD), json.dumps(
      {'frames': names, 'complete': complete}, indent=1).encode())


def _pngs(made, count, data, frames):
  """PNG bytes of each of the `count` frames `made` yields, one at a time (a 1080p sequence of
  1025 frames would not fit in memory): the two originals as the pipeline writes them, the
  in-betweens quantised in the pair's widest format."""
  from transforms import images  # pylint: disable=import-outside-toplevel
  last = count - 1
  chunks = images.inbetween_color_chunks(*frames)
  for i, frame in enumerate(made):
    if i in (0, last):
      yield images.original_png(data[i > 0], frames[i > 0])
    else:
      yield images.encode_png(images.inbetween_pixels(frame, *frames, i / last), chunks)


if __name__ == '__main__':
  flags.exit_with(flags.run_command(main))
