"""The pipeline's own command-line flags; everything else goes to Beam (runner, project, ...)."""

import argparse
import datetime
import re
import uuid

from apache_beam.options import pipeline_options

from film_net import specs
from film_net import flags
from transforms import files
from transforms import images
from transforms import retime
from transforms import scene_cuts

DEFAULT_PAIRS_PER_UNIT = 16
DEFAULT_MAX_PIXELS = 8192 * 8192


# What `new_run_id` makes: `20261206T031500Z-1a2b3c`.
RUN_ID = re.compile(r'\d{8}T\d{6}Z-[0-9a-f]{6}')


def new_run_id():
  now = datetime.datetime.now(datetime.timezone.utc)
  return now.strftime('%Y%m%dT%H%M%SZ') + '-' + uuid.uuid4().hex[:6]


# Beam's flags are not the command's own (they go on to Beam), so --help would not name them;
# these are the ones a user of either job command needs.
BEAM_FLAGS_HELP = (
    'Flags not listed above go to Apache Beam, among them: --runner DirectRunner (the default) '
    'or DataflowRunner; --direct_running_mode multi_processing with --direct_num_workers N, to '
    'run a local job in N processes; --project, --region and --temp_location gs://... for '
    'Dataflow; --dry_run[=true|false]: build the job and print its steps and settings without '
    'running it (with DataflowRunner the whole submission, its package included, is built '
    'offline and not submitted).')


def build_parser():
  parser = flags.command_line(
      'pipeline.run', 'Interpolates archive clips to a higher frame rate with FILM.',
      epilog=BEAM_FLAGS_HELP)
  parser.add_argument(
      '--input', required=True, type=flags.path_value,
      help='Folder or glob (local or gs://) of clips (folders of png/jpg/jpeg/tif/tiff/dpx '
           'frames), or a .csv/.jsonl manifest with columns clip, frame0, frame1.')
  parser.add_argument(
      '--output', required=True, type=output_folder,
      help='Output folder (local or gs://): <output>/<clip>/frame_000000.png ..., run records '
           'under <output>/_runs/<run_id>/.')
  parser.add_argument(
      '--model_path', default=None, type=flags.path_value,
      help='Model: released SavedModel dir, .npz, or our weight file, local or gs://. Default: '
           'the model built into the package.')
  parser.add_argument('--times_to_interpolate', type=flags.times_to_interpolate, default=1,
                      help='N, 0 to 10: 2^N - 1 new frames between each pair (default 1); with '
                           '--output_fps, 2^N positions per pair to choose from.')
  parser.add_argument('--input_fps', type=retime.frame_rate, default=None,
                      help='The clips\' frame rate (e.g. 16, 18, 24000/1001), for --output_fps.')
  parser.add_argument('--output_fps', type=retime.frame_rate, default=None,
                      help='Retime to this delivery rate (e.g. 24, 25, 30000/1001): each output '
                           'frame is the dense frame (original or in-between) nearest its time, '
                           'within 1/2^(N+1) of a frame interval, and only the in-betweens taken '
                           'are made. Default: every in-between, 2^N times --input_fps.')
  parser.add_argument('--output_format', choices=images.OUTPUT_FORMATS, default='png',
                      help='png (default; 16-bit where the inputs have more than 8 bits) or dpx '
                           '(DPX originals copied as they are, headers and all; in-betweens '
                           'in the header, bit depth and layout of a DPX original of their '
                           'pair).')
  parser.add_argument('--png_compression', type=flags.in_range(int, 0, 9),
                      default=images.DEFAULT_PNG_COMPRESSION,
                      help=f'zlib level of the PNGs written, 0-9 (default '
                           f'{images.DEFAULT_PNG_COMPRESSION}: against 6, 8-bit frames encode '
                           f'4.3-7.4x faster for 9.5-17%% more bytes, 16-bit scans 1.3x for '
                           f'2.6%%); the pixels are the same, so finished pairs are not redone.')
  parser.add_argument('--pairs_per_unit', type=flags.positive_int,
                      default=DEFAULT_PAIRS_PER_UNIT,
                      help='Consecutive pairs per work unit (default 16); lower it for 4K frames '
                           'to bound worker memory.')
  parser.add_argument('--align', type=flags.align, default=64,
                      help='Pad frames to a multiple of this for the model (default 64; 0: none).')
  flags.add_flip_average_flags(parser)
  parser.add_argument('--precision', choices=specs.PRECISIONS, default='float32',
                      help='Arithmetic inside the convolutions (native engine): bfloat16 is '
                           '~1.36x faster on CPUs with AVX512_BF16 or AMX and GPUs from Ampere '
                           'on (built-in model: within 0.03 dB), slower elsewhere. Default '
                           'float32.')
  flags.add_tile_flags(parser)
  add_scene_cut_flags(
      parser, 'Find pairs that are two different shots (an edit\'s cut) and hold the nearer '
              'original in their in-betweens instead of cross-fading the shots with the model',
      'Interpolate every pair that changes, cuts included; a pair of identical frames is held '
      'either way')
  parser.add_argument('--max_pixels', type=flags.positive_int, default=DEFAULT_MAX_PIXELS,
                      help=f'Refuse frames with more pixels than this (decompression-bomb guard, '
                           f'default {DEFAULT_MAX_PIXELS}).')
  parser.add_argument('--reprocess', nargs='?', const=True, default=False, type=flags.parse_bool,
                      help='Redo every pair, even those already complete for this model.')
  parser.add_argument('--prune_removed_clips', nargs='?', const=True, default=False,
                      type=flags.parse_bool,
                      help='Delete the output frames and done markers of clips no longer in the '
                           'input (renamed, moved or removed), so that the output holds the '
                           'input\'s clips only, as a fresh run\'s would; not when the input '
                           'lists no clip or a part of it cannot be listed. Only for an output '
                           'that belongs to this input alone; lists the whole output '
                           '(default off).')
  parser.add_argument('--run_id', type=run_id, default=None,
                      help='Name of this run under <output>/_runs/ (default: UTC time + random).')
  add_progress_flag(parser)
  return parser


def add_progress_flag(parser):
  """`--progress_interval`, the evaluation's too."""
  parser.add_argument('--progress_interval', type=flags.in_range(float, 0.5, 3600),
                      default=10.0,
                      help='Seconds between progress lines on local runs, 0.5 to 3600 (default '
                           '10); where the counts did not move, a line once a minute at most.')


def add_scene_cut_flags(parser, on, off):
  """`--scene_cuts[=true|false]` (default off), `--no_scene_cuts` and `--scene_cut_threshold`;
  `on` / `off` say what each does in this command. Off by default: unasked, every pair that
  changes is interpolated (`Interpolator.recursive`'s frames) and every triplet scored."""
  parser.add_argument('--scene_cuts', nargs='?', const=True, default=False,
                      type=flags.parse_bool,
                      help=f'{on} (default off: {off[0].lower() + off[1:]}; recommended for '
                           f'edited footage).')
  parser.add_argument('--no_scene_cuts', dest='scene_cuts', action='store_const', const=False,
                      help=f'{off} (same as --scene_cuts=false).')
  parser.add_argument(
      '--scene_cut_threshold', type=flags.in_range(float, 0, 1, low_open=True, high_open=True),
      help=f'With --scene_cuts: frames whose cut score (0: same image, 1: unrelated) exceeds '
           f'this are a cut, above 0 and below 1 '
           f'(default {scene_cuts.DEFAULT_THRESHOLD}; lower finds more cuts and risks taking '
           f'fast motion for one).')


def check_scene_cut_flags(parser, known):
  """A threshold given with detection off is a usage error (it was ignored without a word, a
  real cut cross-faded); not given, it is the default."""
  if known.scene_cut_threshold is not None and not known.scene_cuts:
    parser.error('--scene_cut_threshold only works with --scene_cuts (detection is off)')
  if known.scene_cut_threshold is None:
    known.scene_cut_threshold = scene_cuts.DEFAULT_THRESHOLD


_DRY_RUN_VALUES = {'true': True, '1': True, 'yes': True, 'false': False, '0': False, 'no': False}


def _dry_run_read(parser, beam_args):
  """Beam's --dry_run takes a value and is on for any non-empty one (`--dry_run=False` built
  the job and submitted nothing, as the launcher wrote records for a real run); bare, Beam
  printed its whole usage. Bare (as run_dataflow.sh takes it) it means true; its value is one of
  true/false, 1/0, yes/no in any case, anything else a usage error; false drops it."""
  read, k = [], 0
  while k < len(beam_args):
    arg, k = beam_args[k], k + 1
    if arg != '--dry_run' and not arg.startswith('--dry_run='):
      read.append(arg)
      continue
    value = arg.partition('=')[2] if '=' in arg else 'true'
    if arg == '--dry_run' and k < len(beam_args) and not beam_args[k].startswith('-'):
      value, k = beam_args[k], k + 1
    if value.lower() not in _DRY_RUN_VALUES:
      parser.error(f'argument --dry_run: {value!r} is not one of true/false, 1/0, yes/no')
    if _DRY_RUN_VALUES[value.lower()]:
      read.append('--dry_run=True')
  return read


def parse_with_beam_flags(parser, argv, who):
  """(`parser`'s namespace, the remaining flags for Beam). A flag that neither `parser` nor any
  Beam options class defines is a usage error (exit status 2): Beam only logs "Discarding
  unparseable args" and runs on, so a typo (`--time_to_interpolate 3`) would pass unnoticed."""
  known, beam_args = parser.parse_known_args(argv)
  beam_args = _dry_run_read(parser, beam_args)
  # Beam's own parser type: some options classes add value-provider arguments, which only it has.
  beam = pipeline_options._BeamArgumentParser(allow_abbrev=False)  # pylint: disable=protected-access
  beam.error = parser.error  # a bad value of Beam's: one line under this command's usage
  for cls in {str(c): c for c in pipeline_options.PipelineOptions.__subclasses__()}.values():
    cls._add_argparse_args(beam)  # pylint: disable=protected-access
  parsed, unknown = beam.parse_known_args(beam_args)
  # A negative worker count: Beam's IndexError in its data plane, after the model load.
  if (getattr(parsed, 'direct_num_workers', None) or 0) < 0:
    parser.error(f'argument --direct_num_workers: must be >= 0 (0: one per CPU), got '
                 f'{parsed.direct_num_workers}')
  if unknown:
    parser.error(f'unrecognized arguments: {" ".join(unknown)} (neither {who} nor Beam defines '
                 f'them)')
  return known, beam_args


# Longer ids passed, and the run failed in Beam's record writer after all the work ("File name
# too long"); a hundred is room for any date, job and attempt.
MAX_RUN_ID = 100


def run_id(text):
  """A run id names a folder (<output>/_runs/<id>/, <output>/_tmp/<id>/): one plain name."""
  if (not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9._-]*', text or '') or '..' in text
      or len(text) > MAX_RUN_ID):
    shown = text if len(text or '') <= 2 * MAX_RUN_ID else f'{text[:MAX_RUN_ID]}...'
    raise argparse.ArgumentTypeError(
        f'must be one name of at most {MAX_RUN_ID} letters, digits, ".", "_" and "-", starting '
        f'with a letter or digit, without ".." (it names a folder under --output), got {shown!r}')
  return text


def output_folder(text):
  """Beam's text sink, which writes the run records, reads its folder as a glob when it
  finalizes, so '*', '?' or '[' in --output fail the run at its very end, after all the work."""
  flags.path_value(text)
  if files.GLOB_CHARS.search(text):
    raise argparse.ArgumentTypeError(f'may not contain *, ? or [ (Beam\'s record writer reads '
                                     f'them as a pattern), got {text!r}')
  return text


def scene_cut_setting(known):
  """InterpolateUnits' `scene_cut_threshold` from the parsed flags: None when detection is off."""
  return known.scene_cut_threshold if known.scene_cuts else None


def parse_known_args(argv):
  """(pipeline args namespace, remaining Beam args); exits with a usage error (status 2) on a
  flag that neither this pipeline nor Beam knows."""
  parser = build_parser()
  known, beam_args = parse_with_beam_flags(parser, argv, 'the pipeline')
  flags.check_tile_flags(parser, known)
  check_scene_cut_flags(parser, known)
  problem = retime.frame_rate_problem(known.input_fps, known.output_fps,
                                      known.times_to_interpolate)
  if problem:
    parser.error(problem)
  known.run_id = known.run_id or new_run_id()
  known.input = known.input.rstrip('/') if len(known.input) > 1 else known.input
  known.output = known.output.rstrip('/') if len(known.output) > 1 else known.output
  return known, beam_args
