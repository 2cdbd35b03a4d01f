"""Interpolate one pair of frames from the command line.

    python -m film_net.interpolate A.png B.png --times_to_interpolate 2 --output_dir out/

writes out/frame_000.png ... (inputs included), 2**n + 1 frames in temporal order, as the pipeline
writes them: PNG inputs as they are, others re-encoded losslessly, in-betweens in the widest format
of the two (16 bit for a 16-bit or 10-bit scan, alpha blended, the colour description kept).
"""
from __future__ import annotations

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import os
import re
import sys

from film_net import flags
from film_net import weights as weights_lib
from film_net.image_io import read_frame
from film_net.interpolator import Interpolator


def main(argv=None) -> int:
  flags.start_command()
  parser = flags.command_line('film_net.interpolate', __doc__.splitlines()[0])
  parser.add_argument('frame0', help='the first frame (png, jpg, tif or dpx)')
  parser.add_argument('frame1', help='the second frame, of the same size')
  parser.add_argument('--times_to_interpolate', type=flags.times_to_interpolate, default=1,
                      help='recursion depth n, 0 to 10: 2**n - 1 new frames between the two')
  parser.add_argument('--output_dir', required=True,
                      help='folder for frame_000.png (frame0) to frame_<2**n>.png (frame1)')
  parser.add_argument('--model', '--model_path', dest='model', default=None,
                      help='released SavedModel dir, .npz or our weight file; default: built-in '
                           '(--model_path: the same, as the pipeline\'s commands name it)')
  parser.add_argument('--align', type=flags.non_negative_int, default=64,
                      help='pad to a multiple of this; 0: none')
  flags.add_flip_average_flags(parser, 'the pair')
  flags.add_tile_flags(parser)
  args = parser.parse_args(argv)
  flags.check_tile_flags(parser, args)
  flags.check_paths(parser, [('--output_dir', args.output_dir)], [('--model', args.model)])

  try:
    os.makedirs(args.output_dir, exist_ok=True)  # Before the work: a bad --output_dir fails fast.
    data, frames = zip(read_frame(args.frame0), read_frame(args.frame1))
  except (OSError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  try:
    interp = Interpolator.from_path(args.model, align=args.align or None,
                                    flip_average=args.flip_average, tile=args.tile or None,
                                    tile_overlap=args.tile_overlap)
  except (OSError, ValueError) as e:  # (naming the file) a usage error, as a local --model
    print(f'error: {e}', file=sys.stderr)  # that is not there, and as the pipeline's commands
    return 2
  try:
    result = interp.recursive([f.rgb() for f in frames],
                              times_to_interpolate=args.times_to_interpolate)
    for i, png in enumerate(_pngs(result, data, frames)):
      weights_lib.write_local_whole(os.path.join(args.output_dir, f'frame_{i:03d}.png'), png)
    # Frames an earlier, deeper run left would trail this sequence in any glob of the folder.
    for name in os.listdir(args.output_dir):
      if re.fullmatch(r'frame_\d{3,}\.png', name) and int(name[6:-4]) >= len(result):
        os.remove(os.path.join(args.output_dir, name))
  except (OSError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {len(result)} frames to {args.output_dir}')
  return 0


def _pngs(result, data, frames):
  """PNG bytes of each frame of `result`: the two originals as the pipeline writes them, the
  in-betweens quantised in the pair's widest format."""
  from transforms import images  # pylint: disable=import-outside-toplevel
  last = len(result) - 1
  chunks = images.inbetween_color_chunks(*frames)
  for i, frame in enumerate(result):
    if i in (0, last):
      yield images.original_png(data[i > 0], frames[i > 0])
    else:
      yield images.encode_png(images.inbetween_pixels(frame, *frames, i / last), chunks)


if __name__ == '__main__':
  sys.exit(flags.run_command(main))
