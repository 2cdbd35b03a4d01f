"""Finding clips and cutting them into work units, inside the pipeline.

A clip is a folder of frames (png, jpg/jpeg, tif/tiff, dpx in any letter case) in natural order
of file name (`f2` before `f10`), or the rows of one clip in a manifest (.csv or .jsonl with
columns clip, frame0, frame1; relative frame paths are relative to the manifest's folder).

A `Clip` is the ordered frame list plus, for each neighbouring frame pair, whether it is a pair
to interpolate (always, for folders; manifests may leave gaps). Output index of frame 0 is 0 and
each pair advances it by 2^N, each gap by 1, so folder frame i lands at i * 2^N (the dense index:
retiming, `retime`, maps it to the output frames of a delivery rate).

A `Unit` is a run of up to `pairs_per_unit` pairs of one clip. Neighbouring units share their
boundary frame, which the earlier unit writes (`owns_first` is false for the later one).

Problems found here (missing input, empty clip folder, one-frame clip, stray file, malformed
manifest row, frame numbers that skip: a scan or file lost) become error records (of severity
'notice' where the run does all it could: a lone frame, numbers that skip or repeat, a stray
file beside a clip's frames, a folder of such files alone); the rest of
the input still runs. A clip's lost frames (a folder's, or a manifest's of one folder) also
make its `long_pairs`, for retiming.
"""

import collections
import csv
import dataclasses
import fractions
import functools
import hashlib
import io
import json
import math
import os
import posixpath
import re
import warnings

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import files
from transforms import records
from transforms.images import FRAME_EXTENSIONS, is_frame_name
from transforms.interpolate import FRAME_NAME

MANIFEST_EXTENSIONS = ('.csv', '.jsonl')


@dataclasses.dataclass(frozen=True)
class Clip:
  name: str  # sanitised, relative to --output
  # of (uri, version): 'size:mtime', so that it changes with the file ('' if missing), and the
  # inode where frames share that (`_told_apart`)
  frames: tuple
  paired: tuple  # paired[i]: frames i and i+1 are a pair to interpolate
  long_pairs: tuple = ()  # ((pair, length in frame intervals), ...): scans lost between frames

  def num_pairs(self):
    return sum(self.paired)


@dataclasses.dataclass(frozen=True)
class Unit:
  clip: str
  frames: tuple  # of (uri, version), every neighbour a pair
  first_index: int  # output index of frames[0]
  first_position: int  # position of frames[0] in the clip; pair ids are positions
  owns_first: bool  # whether this unit writes frames[0]
  long_pairs: tuple = ()  # the clip's, by pair position in the clip (`retime`)
  # Retimed: (position, uri) of the last frame an output shows at or before frames[0], which
  # the unit's frames are size-checked against (`with_size_anchors`).
  size_anchor: tuple = ()

  @property
  def num_pairs(self):
    return len(self.frames) - 1


def natural_key(name):
  """Sort key putting `f2` before `f10`, case-insensitively. Only ASCII digits count as numbers
  (`str.isdigit` also accepts '²', which `int` refuses). Names alike by it (`f7`, `f007`; `F1`,
  `f1`) go by the name itself, in the same order whatever order a listing gave them."""
  return ([int(t) if t.isascii() and t.isdigit() else t.lower()
           for t in re.split(r'([0-9]+)', name)], name)


def frame_numbers(paths):
  """The frame numbers of a clip's file names in order (`_numbers_alike`: the run of digits that
  changes, in names alike but for it and the extension), or None where the names are not
  numbered alike or the numbers fall. A number may repeat (`f7.png`, `f007.png`:
  `repeated_numbers`) without hiding the clip's gaps elsewhere."""
  numbers = _numbers_alike(paths)
  return numbers if numbers and all(a <= b for a, b in zip(numbers, numbers[1:])) else None


def repeated_numbers(paths):
  """[[path, ...]] of the frames that share a frame number, in names alike but for it and the
  extension (`f10.png` and `f010.png`, `f1.png` and `f1.jpg`): most likely one scan twice,
  which the clip would show twice over, a stutter."""
  numbers = _numbers_alike(paths) or []
  by_number = {}
  for path, number in zip(paths, numbers):
    by_number.setdefault(number, []).append(path)
  return [group for group in by_number.values() if len(group) > 1]


def _numbers_alike(paths):
  """Each name's frame number, or None where the names are not alike but for it and the
  extension: the one run of digits whose number differs between them (`scan_0002_4K.png`: 2,
  not the 4 of 4K, which hid every gap), the last one where none does (`f7`, `f007`)."""
  parts = [re.split(r'(\d+)', posixpath.basename(p).rsplit('.', 1)[0]) for p in paths]
  if len({len(p) for p in parts}) != 1 or len(parts[0]) < 2:
    return None
  runs = range(1, len(parts[0]), 2)  # (re.split puts the digit runs at odd places)
  if len({tuple(p[0::2]) for p in parts}) != 1:
    return None
  varying = [i for i in runs if len({int(p[i]) for p in parts}) > 1]
  if len(varying) > 1:  # two numbers change (a timecode, two takes): no one frame number
    return None
  at = varying[0] if varying else runs[-1]
  return [int(p[at]) for p in parts]


# The most frames lost in one place that retiming fills: a larger jump in the numbers is more
# likely two takes in one folder than lost scans, and stretching the pair over it would hold
# one frame for seconds.
MAX_LOST_FRAMES = 4


def long_pairs(paths, paired=None):
  """((pair, its length in frame intervals), ...) of the pairs whose frame numbers skip more
  than the clip's step, the least difference between neighbours, by up to `MAX_LOST_FRAMES`:
  scans or files lost between their frames. Retiming keeps the later frames at their times by
  them. `paired` (a manifest's; default: all): neighbours in no pair count for neither."""
  return tuple((i, length) for i, length in _skips(paths, paired)
               if math.ceil(length) - 1 <= MAX_LOST_FRAMES)


def numbering_gaps(paths, paired=None):
  """[(path, next path, frames missing)] where a clip's frame numbers skip more than its step
  (`paired` as in `long_pairs`)."""
  return [(paths[i], paths[i + 1], math.ceil(length) - 1)
          for i, length in _skips(paths, paired)]


def _skips(paths, paired=None):
  """[(pair, length in steps)] of the pairs whose numbers differ by more than the clip's step
  (the least rise between neighbours that are a pair: a manifest's clip that takes every other
  scan and starts again one scan on, past a gap, steps by two)."""
  numbers = frame_numbers(paths) if len(paths) >= 3 else None
  if not numbers:
    return []
  steps = [(i, b - a) for i, (a, b) in enumerate(zip(numbers, numbers[1:]))
           if paired is None or paired[i]]
  if len(steps) < 2 or not any(d for _, d in steps):
    return []
  step = min(d for _, d in steps if d)
  return [(i, fractions.Fraction(d, step)) for i, d in steps if d > step]


# The longest file or folder name local filesystems take (ext4, APFS, NTFS: 255 bytes; a
# sanitised name is ASCII); object stores take longer ones, which a local --output could not.
MAX_NAME = 255


def sanitise_clip_name(relative):
  """Maps a clip's relative path to a safe output sub-path that cannot leave --output.

  Characters outside [A-Za-z0-9._-] become '_', leading dots go, '.'/'..'/empty parts and the
  pipeline's reserved top-level names (leading '_') are not allowed, parts are cut to MAX_NAME;
  when anything had to change, a short hash of the original is appended so that distinct clips
  keep distinct folders (`output_names` also parts a name that needed no change from one that
  came out the same).
  """
  parts = []
  for part in re.split(r'[/\\]+', relative):
    clean = re.sub(r'[^A-Za-z0-9._-]', '_', part).lstrip('.')
    if clean:
      parts.append(clean[:MAX_NAME])
  if not parts:
    parts = ['clip']
  if parts[0] in files.RESERVED or parts[0].startswith('_'):
    parts[0] = 'clip' + parts[0]
  # Any change, spelling included ('a//b', './a/b', 'a/b/', a folder named 'a\b': to a manifest
  # or a listing, other clips than 'a/b'), gets the hash: no two clips share a folder.
  if '/'.join(parts) != relative:
    parts[-1] = _with_hash(parts[-1], relative)
  return '/'.join(parts)


def _with_hash(name, original):
  return name[:MAX_NAME - 9] + '-' + hashlib.sha1(original.encode()).hexdigest()[:8]


def output_names(relatives):
  """{key: output sub-path} for clips given as {key: relative path}: `sanitise_clip_name` of
  each, but where a name that needed no change equals another clip's changed one (a folder
  `a_b-1dd55241` beside `a*b`, say an output copied back), it takes the hash too. So no two
  clips of one input share an output folder, and a clip's folder depends on its own name
  unless such a twin appears."""
  names = {key: sanitise_clip_name(relative) for key, relative in relatives.items()}
  taken = set(names.values())
  names = {key: _clear_of_frames(name, relatives[key], taken) for key, name in names.items()}
  count = collections.Counter(names.values())
  return {key: _with_hash(name, relatives[key]) if count[name] > 1 and name == relatives[key]
          else name for key, name in names.items()}


def _clear_of_frames(name, relative, taken):
  """`name`, with a hash on each part named as an output frame in a clip's folder (a clip
  `reel/frame_000002.png/` inside the clip `reel`; in any case, for disks that ignore it): its
  folder and that frame file would be one path, and one of the two clips failed on every run."""
  parts = name.split('/')
  for k in range(1, len(parts)):
    if '/'.join(parts[:k]) in taken and FRAME_NAME.fullmatch(parts[k].lower()):
      parts[k] = _with_hash(parts[k], relative)
  return '/'.join(parts)


def is_manifest(path):
  return path.lower().endswith(MANIFEST_EXTENSIONS)


# A glob character as glob.escape brackets it (`[[]`, `[*]`, `[?]`): that character itself.
_ESCAPED_GLOB_CHAR = re.compile(r'\[([*?\[])\]')


def _split_glob(pattern):
  """(root folder, pattern or None): the part of --input before its first glob character not
  bracketed as glob.escape does, those brackets taken away (`Arch [[]2]/in/*` is listed from
  `Arch [2]/in`, so its clips are named as those of `Arch2/in/*` are). A folder whose name has
  glob characters (`Take [2]`, local or in a bucket) is that folder, not a pattern (which would
  take `Take 2`)."""
  if not files.GLOB_CHARS.search(pattern) or files.is_folder(pattern):
    return pattern.rstrip('/'), None
  first = next((m for m in re.finditer(r'\[[*?\[]\]|[*?\[]', pattern) if len(m.group()) == 1),
               None)
  if first is None:  # escapes alone: the folder they name
    return _ESCAPED_GLOB_CHAR.sub(r'\1', pattern).rstrip('/'), None
  head = pattern[:first.start()]
  if '/' not in head:
    return '.', './' + pattern  # Listings of '.' come back as './name/...'.
  return _ESCAPED_GLOB_CHAR.sub(r'\1', head[:head.rfind('/')]), pattern


def _parent(path):
  return path.rstrip('/').rsplit('/', 1)[0] if '/' in path else ''


def folders_above(paths):
  """Every folder above one of `paths` ('a/b/c': 'a/b' and 'a'), in one pass (a scan of all
  folders for each one made discovery quadratic where folders of clips hold other files). Each
  slash is a step, so a bucket's doubled one counts both ways: `in//reel` is below `in/` and
  `in`."""
  above = set()
  for path in paths:
    parent = path.rpartition('/')[0]
    while parent and parent not in above:
      above.add(parent)
      parent = parent.rpartition('/')[0]
  return above


def _relative(path, root):
  """`path` below `root`, less the one slash between them: in a bucket `in//reel` is another
  folder than `in/reel` (a script's doubled slash), and keeps its own relative path ('/reel')."""
  if not path.startswith(root):
    return path
  rest = path[len(root):]
  return rest[1:] if rest.startswith('/') else rest


@dataclasses.dataclass
class ClipFolders:
  """What a folder or glob input holds, by the pipeline's rules (`list_clip_folders`)."""
  root: str  # the folder listed: the input, or the part of a glob before its first pattern
  pattern: str | None  # the glob, or None
  by_dir: dict  # {folder: [FileMetadata of its files]}, empty folders too
  unaddressable: dict  # {folder: [paths no Beam filesystem can read by name]}
  problems: list  # [(path, reason)] of what the glob selects that could not be listed


def list_clip_folders(input_spec, output=None):
  """The folders of a folder or glob `input_spec` (any Beam filesystem), each with its files:
  every folder at any depth, the input itself included, that the glob selects, passing over
  what `passed_over` names, anything under `output` (a run writing inside its input) and
  earlier outputs. Shared by the pipeline's discovery, the evaluation's --leave_one_out and
  training's --clips, so that the three take the same clips from the same input."""
  root, pattern = _split_glob(input_spec)
  problems = []
  selected = _glob_filter(root, pattern)
  metadata = files.list_tree(root, problems=problems,
                             claims=lambda folder: selected(folder, folder))
  this_output = _in_folder(output)
  evaluations = _evaluation_folders(m.path for m in metadata)
  earlier_output = _in_earlier_output(
      _earlier_outputs((m.path for m in metadata), root) |
      {files.join(folder, files.EVALUATION_COMPARISONS) for folder in evaluations})

  def in_output(folder):
    return this_output(folder) or earlier_output(folder)
  by_dir, unaddressable = {}, {}
  for m in metadata:
    placeholder = m.path.endswith('/')  # A folder placeholder object on object stores.
    path = m.path.rstrip('/')
    folder = path if placeholder else _parent(path)
    if passed_over(_relative(path, root), folder=placeholder):
      continue
    if folder in evaluations and posixpath.basename(path) in _EVALUATION_FILES:
      continue
    if in_output(folder):
      continue  # --output inside --input: never take our own frames as input.
    if not selected(folder, path):
      continue
    if files.unaddressable(path):
      unaddressable.setdefault(folder, []).append(path)
      continue
    if placeholder:
      by_dir.setdefault(folder, [])
    else:
      by_dir.setdefault(folder, []).append(m)
  for folder in _empty_local_folders(root, pattern, in_output):
    by_dir.setdefault(folder, [])
  return ClipFolders(root, pattern, by_dir, unaddressable, [
      (path, reason) for path, reason in problems
      if path == root or (not passed_over(_relative(path, root), folder=True)
                          and not in_output(path) and selected(path, path))])


class IncompleteListing(OSError):
  """A part of the input that could not be listed, or may not have been: an unreadable
  folder, a link whose target is missing, a clip folder that is empty (an unmounted disk's
  mount point looks so). Its clips are not in this run; `--prune_removed_clips` prunes nothing
  then, since they may be only unreachable."""


class DiscoverClips(beam.DoFn):
  """--input (folder, glob or manifest) -> Clip elements, plus error records tagged 'errors'."""

  def __init__(self, run_id, output=None, retimed=False, inbetweens=True):
    self._run_id = run_id
    self._output = output
    # For the numbering notices: their words, and none where refused; at
    # --times_to_interpolate 0 no in-betweens stand in for lost frames.
    self._retimed, self._inbetweens = retimed, inbetweens

  def process(self, input_spec):
    try:
      if is_manifest(input_spec):
        yield from self._from_manifest(input_spec)
      else:
        yield from self._from_folders(input_spec)
    except Exception as e:  # pylint: disable=broad-except
      yield self._error(input_spec, 'discover', e, f'cannot list input: {e}')

  def _error(self, uri, stage, error, message, severity='error'):
    """An error record of `uri` (one path, or a list of them)."""
    uris = [uri] if isinstance(uri, str) else uri
    return beam.pvalue.TaggedOutput('errors', records.error_record(
        self._run_id, uris, stage, error, message, severity))

  def _numbering_notices(self, clip, paths, paired):
    """Notices of a skip or a repeat in a clip's frame numbers (`clip`: how to name it): a
    scan lost, or one scan twice. A skip between frames in no pair (a manifest's gap) is none:
    nothing is made across it; retimed, such a clip is refused whole (its plan error), so it
    gets none at all."""
    if self._retimed and not all(paired):
      return  # refused whole, no times to go by: its plan error says so
    for before, after, missing in numbering_gaps(paths, paired):
      lost = f'{missing} frame{"s" * (missing > 1)} missing?'
      what = 'the two frames are taken as consecutive, so the motion jumps there'
      if self._retimed and missing <= MAX_LOST_FRAMES:
        what = ('retimed, the pair spans the lost time, ' +
                ('its in-betweens stand in for the lost frames' if self._inbetweens else
                 'the nearer of its frames stands in for the lost ones (no in-betweens at '
                 '--times_to_interpolate 0)') + ' and the later frames keep their times')
      elif self._retimed:
        what += (f' (retimed, more than {MAX_LOST_FRAMES} lost frames are not filled: two '
                 f'takes in one folder?)')
      yield self._error(
          [before, after], 'discover', ValueError('frame numbers skip'),
          f'{clip}: frame numbers skip from {posixpath.basename(before)} to '
          f'{posixpath.basename(after)} ({lost}): {what}; the rest of the clip runs', 'notice')
    for group in repeated_numbers(paths):
      shown = ', '.join(posixpath.basename(path) for path in group)
      later = (', so retimed, the frames after them show one frame interval late'
               if self._retimed else '')
      yield self._error(
          group, 'discover', ValueError('frame number repeated'),
          f'{clip}: {len(group)} frames share one frame number ({shown}): the same scan twice? '
          f'They are used one after the other{later}; the rest of the clip runs', 'notice')

  # -- folders -------------------------------------------------------------------------------

  def _from_folders(self, input_spec):
    listed = list_clip_folders(input_spec, self._output)
    root, pattern, by_dir = listed.root, listed.pattern, listed.by_dir
    for path, reason in listed.problems:  # (of what the glob selects: the rest is no part of it)
      yield self._error(path, 'discover', IncompleteListing(reason),
                        f'cannot list {path}: {reason}; what is there is not in this run')
    for folder, paths in sorted(listed.unaddressable.items()):
      more = f' and {len(paths) - 1} more file(s) in {folder}' if len(paths) > 1 else ''
      # (a frame is lost to its clip; any other file, a scanner's log, to nobody)
      severity = 'error' if any(map(is_frame_name, paths)) else 'notice'
      yield self._error(paths, 'discover', ValueError('unaddressable name'),
                        f'cannot read {paths[0]}{more}: {files.unaddressable(paths[0])}; not '
                        f'in this run', severity)
    if not by_dir and not listed.unaddressable and not listed.problems:
      kind = 'no files match' if pattern else (
          'input folder is empty' if _is_local_dir(root) else
          'input bucket is empty' if files.is_bucket(root) else
          'input is a file, not a folder of clips or a manifest (.csv, .jsonl)'
          if files.is_file(root) else 'input path does not exist')
      yield self._error(input_spec, 'discover', FileNotFoundError(input_spec),
                        f'{kind}: {input_spec}')
      return
    names = folder_clip_names(
        root, by_dir, [f for f, entries in by_dir.items()
                       if any(is_frame_name(m.path) for m in entries)])
    above_others = folders_above(by_dir)
    for folder in sorted(by_dir):
      entries = by_dir[folder]
      frames = [m for m in entries if is_frame_name(m.path)]
      for m in entries:
        if not is_frame_name(m.path) and frames:
          yield self._error(m.path, 'discover', ValueError('not an image'),
                            f'not an image file (extension not one of '
                            f'{", ".join(e[1:] for e in FRAME_EXTENSIONS)}): {m.path}; the clip '
                            f'runs without it', 'notice')
      if not frames:
        if folder in above_others:
          continue  # a folder of clips
        if entries:  # listed whole, its files no images: nothing unreachable (pruning goes on)
          shown = ', '.join(sorted(m.path.rsplit('/', 1)[-1] for m in entries)[:3])
          yield self._error(folder, 'discover', ValueError('no frames'),
                            f'no frames in {folder}: its {len(entries)} file(s) are no images '
                            f'({shown}{", ..." * (len(entries) > 3)})', 'notice')
        else:
          yield self._error(folder, 'discover', IncompleteListing('empty clip'),
                            f'empty clip folder: {folder} has no frames')
        continue
      frames.sort(key=lambda m: natural_key(m.path.rsplit('/', 1)[-1]))
      paths = [m.path for m in frames]
      clip = Clip(
          name=names[folder],
          frames=_told_apart([(m.path, f'{m.size_in_bytes}:{m.last_updated_in_seconds}')
                             for m in frames]),
          paired=(True,) * (len(frames) - 1), long_pairs=long_pairs(paths))
      yield from self._numbering_notices(f'clip {folder}', paths, clip.paired)
      if len(frames) == 1:
        yield self._error(frames[0].path, 'discover', ValueError('one frame'),
                          f'clip {folder} has only one frame ({frames[0].path}): nothing to '
                          f'interpolate; the frame is still copied to the output if it can be read',
                          'notice')
      yield clip

  # -- manifests -----------------------------------------------------------------------------

  def _from_manifest(self, manifest):
    if not FileSystems.exists(manifest):
      yield self._error(manifest, 'discover', FileNotFoundError(manifest),
                        f'manifest does not exist: {manifest}')
      return
    text = _manifest_text(manifest)
    base = _parent(manifest) if '/' in manifest else '.'
    clips = {}  # name -> list of (line, frame0, frame1), in file order
    row_count = 0
    for line, row, problem in _manifest_rows(manifest, text):
      row_count += 1
      if problem:
        yield self._error(manifest, 'manifest', ValueError('malformed row'),
                          f'{manifest} line {line}: malformed manifest row: {problem}')
        continue
      clip, f0, f1 = (str(row[k]).strip() for k in ('clip', 'frame0', 'frame1'))
      clips.setdefault(clip, []).append((line, resolve(base, f0), resolve(base, f1)))
    if not row_count:
      yield self._error(manifest, 'manifest', ValueError('empty manifest'),
                        f'manifest has no rows: {manifest}')
      return
    versions = _versions([f for rows in clips.values() for _, f0, f1 in rows for f in (f0, f1)])
    names = output_names({clip: clip for clip in clips})
    for clip, rows in clips.items():
      frames, paired = [], []
      taken = set()  # frames' members: `in frames` made a film's manifest quadratic
      for line, f0, f1 in rows:
        continues = bool(frames) and frames[-1] == f0
        if f1 in taken or f0 == f1 or (f0 in taken and not continues):
          # (a row back to a frame already in the clip would write it twice, out of order)
          yield self._error(manifest, 'manifest', ValueError('malformed row'),
                            f'{manifest} line {line}: malformed manifest row: pair ({f0}, {f1}) '
                            f'does not continue clip {clip!r} (each row must start at the '
                            f'previous row\'s frame1 or at a new frame, and end at a new frame: '
                            f'list a clip\'s rows in order)')
        elif continues:
          frames.append(f1)
          paired.append(True)
        else:
          if frames:
            paired.append(False)
          frames += [f0, f1]
          paired.append(True)
        taken.update(frames[-2:])
      if not frames:
        continue
      # Frames of one folder are numbered as a folder clip's are: a scan lost there is timed and
      # noted alike. Across folders (takes joined) their numbers say nothing.
      numbered = len({_parent(f) for f in frames}) == 1
      if numbered:
        yield from self._numbering_notices(f'clip {clip!r} of {manifest}', frames, paired)
      yield Clip(name=names[clip],
                 frames=_told_apart([(f, versions.get(f, '')) for f in frames]),
                 paired=tuple(paired), long_pairs=long_pairs(frames, paired) if numbered else ())


def folder_clip_names(root, folders, clip_folders):
  """{folder: output name} of the `clip_folders` (those of `folders` with frames) below `root`.
  Frames in the input folder itself are the clip named after it, unless a subfolder already has
  that name: then it gets a name of its own, never the subfolder's output."""
  names = output_names({f: _relative(f, root) for f in clip_folders if f != root})
  if root in clip_folders:
    name = sanitise_clip_name(folder_name(root))
    if name in {sanitise_clip_name(_relative(f, root)) for f in folders if f != root}:
      name += '-' + hashlib.sha1(root.encode()).hexdigest()[:8]
    names[root] = name
  return names


def folder_name(path):
  """The name of the folder `path` names ('.' and '..' named for the folders they are)."""
  if FileSystems.get_scheme(path) is None:
    return os.path.basename(os.path.abspath(path))
  return path.rstrip('/').rsplit('/', 1)[-1]


def _told_apart(frames):
  """A clip's (path, version) pairs as a tuple, where local frames that share a version (size and
  modification time: a reel unpacked from tar or copied with `cp -p`, every scan of one size and
  second) carry their file's inode as well. Renumbering such a clip by renaming its files (a
  lost scan put back, a duplicate taken out, two scans swapped) moves each file to a path whose
  old file looked the same, and the pairs there were skipped over frames of other scans. On GCS
  a rename makes a new object with its own update time."""
  shared_versions = {v for v, n in collections.Counter(v for _, v in frames).items() if n > 1}
  return tuple((path, _with_inode(path, version) if version in shared_versions else version)
               for path, version in frames)


def _with_inode(path, version):
  if not version or FileSystems.get_scheme(path) is not None:
    return version
  try:
    return f'{version}:inode{os.stat(path).st_ino}'
  except OSError:
    return version  # (gone since the listing: its read fails and says so)


def _versions(paths):
  """{path: 'size:mtime'} of the manifest's frames that exist, so that a frame replaced in place
  is redone as in folder inputs: one listing per folder, each frame by itself when its folder's
  listing does not have it (glob characters in the name). Missing frames are left out; the
  interpolation step reports them."""
  found = {}
  for folder in sorted({_parent(p) for p in paths}):
    try:
      listing = files.match(folder, '*')
    except Exception:  # pylint: disable=broad-except
      continue
    found.update((m.path, f'{m.size_in_bytes}:{m.last_updated_in_seconds}') for m in listing)
  for path in set(paths) - set(found):
    try:
      m = files.match(path)
    except Exception:  # pylint: disable=broad-except
      continue
    if m:
      found[path] = f'{m[0].size_in_bytes}:{m[0].last_updated_in_seconds}'
  return found


def _manifest_text(manifest):
  """The manifest at `manifest` as text: UTF-8, Excel's "CSV UTF-8" mark dropped. Bytes that
  are not UTF-8 (a Latin-1 export) stay as surrogates, so that their rows are named as such
  (`_manifest_rows`), not read as paths with U+FFFD in them that no frame has."""
  return files.read_bytes(manifest).decode('utf-8-sig', errors='surrogateescape')


def _not_utf8(text):
  """Why a manifest row is no UTF-8 text, or None."""
  bad = next((c for c in text if '\udc80' <= c <= '\udcff'), None)
  return bad and (f'not UTF-8 text (byte 0x{ord(bad) - 0xdc00:02X}): save the manifest as '
                  f'UTF-8 (Excel: "CSV UTF-8")')


def _manifest_rows(manifest, text):
  """Yields (line number, row dict, problem or None) for every non-empty manifest row."""
  needed = ('clip', 'frame0', 'frame1')
  if manifest.lower().endswith('.jsonl'):
    for n, raw in enumerate(text.splitlines(), 1):
      if not raw.strip():
        continue
      if problem := _not_utf8(raw):
        yield n, None, problem
        continue
      try:
        row = json.loads(raw)
      except ValueError as e:
        yield n, None, f'not JSON ({e})'
        continue
      if not isinstance(row, dict) or any(
          row.get(k) is None or isinstance(row[k], (dict, list)) or not str(row[k]).strip()
          for k in needed):  # (a clip may be a number, 0 included)
        yield n, None, f'needs non-empty {", ".join(needed)}: {raw.strip()[:200]}'
        continue
      yield n, row, None
    return
  lines = list(csv.reader(io.StringIO(text)))
  header = [h.strip().lower() for h in lines[0]] if lines else []
  has_header = all(k in header for k in needed)
  if header and not has_header and (any(h in needed for h in header) or not any(
      is_frame_name(c.strip()) for c in lines[0])):  # a header, misspelt: not a row of frames
    yield 1, None, (f'its header ({",".join(lines[0])[:200]}) lacks '
                    f'{", ".join(k for k in needed if k not in header)}: a manifest\'s columns '
                    f'are clip, frame0, frame1')
    return
  columns = [header.index(k) for k in needed] if has_header else [0, 1, 2]
  for n, cells in enumerate(lines[1:] if has_header else lines, 2 if has_header else 1):
    if not any(c.strip() for c in cells):
      continue
    if problem := _not_utf8(''.join(cells)):
      yield n, None, problem
      continue
    if len(cells) <= max(columns) or any(not cells[i].strip() for i in columns):
      yield n, None, f'needs non-empty clip, frame0, frame1: {",".join(cells)[:200]}'
      continue
    width = len(header) if has_header else len(needed)
    if any(c.strip() for c in cells[width:]):  # shifted: frames read from the wrong cells
      yield n, None, (f'has {len(cells)} fields, {"its header" if has_header else "rows"} '
                      f'{width}: a comma in a path? Quote the path: {",".join(cells)[:200]}')
      continue
    yield n, dict(zip(needed, (cells[i] for i in columns))), None


def resolve(base, path):
  """A manifest's frame path: with a scheme as it is, else local, relative to `base` (the
  manifest's folder) unless absolute, '.', '..' and doubled slashes resolved: one frame spelt
  two ways in two rows must be one frame of the clip, not two with a gap between."""
  if FileSystems.get_scheme(path) is not None:
    return path
  if path.startswith('/'):
    return os.path.normpath('/' + path.lstrip('/'))  # (normpath keeps a leading '//')
  if FileSystems.get_scheme(base) is None:
    return os.path.normpath(os.path.join(base, path))
  # Object names are literal ('a/./b' is not 'a/b'), so '.' and '..' are resolved here, as the
  # local case does.
  scheme, rest = posixpath.join(base, path).split('://', 1)
  return f'{scheme}://{posixpath.normpath(rest)}'


def _inside(path, folder):
  """Whether `path` is `folder` or below it (local paths compared by where they lead: an output
  named through a symbolic link to the input is still inside it)."""
  return _below(files.real_path(path), files.real_path(folder))


class OutputIntoInput:
  """clip -> where its local output folder leads into the input (a link from the output to the
  archive, for delivery beside the scans), in words; None where it does not. Its frames would be
  written among the footage: into a folder a folder or glob input's next run reads (a new clip,
  whose output would be written inside it, one level deeper every night), or onto a manifest's
  frames. A folder is compared by where it leads, so one inside the input by its own path (an
  `--output` inside the input, never read as input) is not this. Where --input and --output lead
  is looked up once, and a manifest read once, per instance."""

  def __init__(self, input_spec, output):
    self._output = output
    self._local = FileSystems.get_scheme(output) is None
    if not self._local:
      return
    self._real_output = files.real_path(output)
    self._input = input_spec
    self._frame_folders = None  # a manifest's
    if is_manifest(input_spec):
      self._frame_folders = _manifest_frame_folders(input_spec)
    else:
      self._root, pattern = _split_glob(input_spec)
      self._real_root = files.real_path(self._root)
      self._selected = _glob_filter(self._root, pattern)

  def __call__(self, clip):
    if not self._local:
      return None
    real = files.real_path(files.join(self._output, clip.name))
    if _below(real, self._real_output):
      return None
    if self._frame_folders is not None:
      held = any(_below(f, real) for f in self._frame_folders)
      return f'{real}, which holds frames of --input {self._input}' if held else None
    if not _below(real, self._real_root):
      return None
    relative = real[len(self._real_root):].strip('/')
    folder = files.join(self._root, relative) if relative else self._root
    if (passed_over(relative, folder=True) or not self._selected(folder, folder)
        or _in_a_local_earlier_output(real, self._real_root)):
      return None  # (a folder the input's discovery never reads)
    return f'{real}, which --input {self._input} reads'


def _in_a_local_earlier_output(real, real_root):
  """Whether local folder `real` is in an earlier output below `real_root` (a folder holding a
  run's files, `_written_by_a_run`), which discovery passes over (`_earlier_outputs`)."""
  parts = [part for part in real[len(real_root):].split('/') if part]
  for k in range(1, len(parts) + 1):  # (the input folder itself, an output or not, is read)
    folder = os.path.join(real_root, *parts[:k])
    for reserved in (files.RUNS_DIR, files.MARKERS_DIR):
      for below, _, names in os.walk(os.path.join(folder, reserved)):
        relative = os.path.relpath(below, folder).split(os.sep)
        if any(_written_by_a_run(relative + [name]) for name in names):
          return True
  return False


def _below(path, folder):
  """Whether real path `path` is real path `folder` or inside it."""
  return (path + '/').startswith(folder.rstrip('/') + '/')


def _manifest_frame_folders(manifest):
  """The real paths of the folders of a local manifest's frames (none where it cannot be read:
  the discovery says why)."""
  try:
    text = _manifest_text(manifest)
  except Exception:  # pylint: disable=broad-except
    return set()
  base = _parent(manifest) if '/' in manifest else '.'
  folders = {_parent(resolve(base, str(row[k]).strip()))
             for _, row, problem in _manifest_rows(manifest, text) if not problem
             for k in ('frame0', 'frame1')}
  return {files.real_path(f) for f in folders if FileSystems.get_scheme(f) is None}


def input_frame_inside(input_spec, output):
  """An input frame that lies inside `output` (None if none): a manifest's frame there would be
  overwritten by the run's output; a folder or glob input's frames in an --output below its
  root would be passed over as output, the run writing beside them. (An --output that is the
  input folder or above it is refused by its path alone; an earlier output, holding `_runs/` or
  `_markers/`, holds the pipeline's own frames.)"""
  if is_manifest(input_spec):
    if not FileSystems.exists(input_spec):
      return None  # said by the discovery, as a record
    base = _parent(input_spec) if '/' in input_spec else '.'
    text = _manifest_text(input_spec)
    for _, row, problem in _manifest_rows(input_spec, text):
      for key in ('frame0', 'frame1'):
        path = None if problem else resolve(base, str(row[key]).strip())
        if path and _inside(path, output):
          return path
    return None
  root, pattern = _split_glob(input_spec)
  output = output.rstrip('/')
  if not _inside(output, root) or _inside(root, output) or any(
      files.is_folder(files.join(output, reserved))
      for reserved in (files.RUNS_DIR, files.MARKERS_DIR)):
    return None
  selected = _glob_filter(root, pattern)
  for m in files.list_tree(output):
    path = m.path.rstrip('/')
    if (is_frame_name(path) and not passed_over(_relative(path, output))
        and selected(_parent(path), path)):
      return path
  return None


def _earlier_outputs(paths, root):
  """Folders below `root` that are this pipeline's output (a run's files in their `_runs/` or
  `_markers/`): an earlier delivery kept beside the footage is not footage to interpolate again.
  The input folder itself may be one: named as --input, it is read."""
  found = set()
  for path in paths:
    parts = _relative(path, root).split('/')
    for k in range(1, len(parts) - 1):
      if _written_by_a_run(parts[k:]):
        found.add(files.join(root, *parts[:k]))
        break
  return found


def _written_by_a_run(parts):
  """Whether `parts` (a file's path below some folder, split) are a file this pipeline writes in
  its output. Only such files make the folder an output: a scan project's own `_markers/` of
  sync-leader frames made its whole project an output, left out unsaid (and pruned)."""
  if parts[0] == files.RUNS_DIR:  # _runs/<run_id>/started.json, summary.json once it is through
    return len(parts) == 3 and parts[2] in (records.STARTED, records.SUMMARY)
  # _markers/<clip>/<pair or frame>_...done, one for each pair or frame done
  return parts[0] == files.MARKERS_DIR and len(parts) >= 3 and parts[-1].endswith('.done')


# An evaluation's own files, which no folder of footage holds beside them.
_EVALUATION_FILES = (files.EVALUATION_REPORT, files.EVALUATION_TABLE, files.EVALUATION_STARTED)


def _evaluation_folders(paths):
  """Folders that hold pipeline.evaluate's report or its started mark: their comparisons/ are
  pictures of frames (which training's --clips learnt from and the pipeline interpolated), and
  the report and table beside them are no frames (a notice on every run)."""
  return {_parent(path) for path in paths
          if posixpath.basename(path) in (files.EVALUATION_REPORT, files.EVALUATION_STARTED)}


def _in_earlier_output(earlier):
  """folder -> whether it is one of the `earlier` outputs or below one."""
  return lambda folder: any(folder == o or folder.startswith(o + '/') for o in earlier)


def _in_folder(output):
  """folder -> whether it is `output` or below it (never, without an output), once per folder:
  a local folder is compared by where it leads, a few system calls."""
  if not output:
    return lambda folder: False
  return functools.lru_cache(maxsize=None)(lambda folder: _inside(folder, output))


# What operating systems leave beside frames, in lower case: Windows Explorer's thumbnail caches
# and folder settings, the folder macOS puts in a zip it makes (its `._*` files, hidden, inside),
# Windows' folders at a drive's root, a Linux disk's `lost+found` at its root (its owner's only:
# unreadable, a listing gap every night), and a Synology NAS's `@eaDir` in every folder (its
# JPEG thumbnails read as a clip) and `#recycle` share bin.
_SYSTEM_FILES = ('thumbs.db', 'ehthumbs.db', 'ehthumbs_vista.db', 'desktop.ini')
_SYSTEM_FOLDERS = ('__macosx', '$recycle.bin', 'system volume information', 'lost+found',
                   '@eadir', '#recycle')


def passed_over(relative, folder=False):
  """Whether folder inputs pass over `relative` (a path below the input; `folder`: it is a
  folder): hidden files and folders, like the `._f1.png` macOS leaves on USB drives, what the OS
  leaves (_SYSTEM_FILES, _SYSTEM_FOLDERS), and what lies in a hidden or system folder or one the
  pipeline reserves (files.RESERVED: an earlier run's own)."""
  *folders, name = relative.split('/')
  if name.startswith('.') or name.lower() in (_SYSTEM_FOLDERS if folder else _SYSTEM_FILES):
    return True
  return (folder and name in files.RESERVED) or any(
      p.startswith('.') or p in files.RESERVED or p.lower() in _SYSTEM_FOLDERS for p in folders)


def _is_local_dir(path):
  return FileSystems.get_scheme(path) is None and os.path.isdir(path)


def _glob_filter(root, pattern):
  """(folder, path) -> whether --input selects it: everything without a pattern; with one, a
  file or folder that matches it, or anything inside a folder that does."""
  if not pattern:
    return lambda folder, path: True
  with warnings.catch_warnings():  # '[[]' read right, flagged as a nested set (`files.match`)
    warnings.simplefilter('ignore', FutureWarning)
    regex = re.compile(FileSystems.get_filesystem(root).translate_pattern(pattern))

  def selected(folder, path):
    if regex.match(path):
      return True
    while len(folder) > len(root):
      if regex.match(folder):
        return True
      folder = _parent(folder)
    return False
  return selected


def _empty_local_folders(root, pattern, in_output):
  """Leaf folders with no files at all, on local disk (object stores have no empty folders),
  but for outputs (`in_output`: --output, which a running job may be creating, and earlier
  ones) and what is in them."""
  if not _is_local_dir(root):
    return []
  selected = _glob_filter(root, pattern)
  found = []
  for folder, dirs, names in files.walk_local(  # as `_from_folders` lists
      root, claims=lambda folder: selected(folder, folder)):
    dirs[:] = [d for d in dirs if not passed_over(d, folder=True) and
               not in_output(os.path.join(folder, d))]
    if (folder != root and not [n for n in names if not passed_over(n)]
        and not _holds_folders(folder) and selected(folder, folder)):
      found.append(folder)
  return found


def _holds_folders(folder):
  """Whether `folder` holds a folder, or a link to one: one walked elsewhere or under another
  name (`files.walk_local` walks each folder once), or an output, still makes it no empty clip."""
  try:
    return any(e.is_dir() and not passed_over(e.name, folder=True) for e in os.scandir(folder))
  except OSError:
    return False


def output_indices(clip, times_to_interpolate):
  """Output index of each of the clip's frames: a pair advances it by 2^N, a gap by 1."""
  step = 2 ** times_to_interpolate
  index = [0]
  for p in clip.paired:
    index.append(index[-1] + (step if p else 1))
  return index


def split_into_units(clip, times_to_interpolate, pairs_per_unit):
  """Cuts a clip into Units of up to pairs_per_unit pairs; frames in no pair get a 0-pair unit."""
  index = output_indices(clip, times_to_interpolate)
  start = 0
  n = len(clip.frames)
  while start < n:
    end = start
    while end < n - 1 and clip.paired[end]:
      end += 1
    # frames[start..end] is a run of pairs (or one lone frame when end == start).
    first = start
    owns = True
    while True:
      last = min(first + pairs_per_unit, end)
      yield Unit(clip=clip.name, frames=clip.frames[first:last + 1], first_index=index[first],
                 first_position=first, owns_first=owns, long_pairs=clip.long_pairs)
      if last >= end:
        break
      first, owns = last, False
    start = end + 1


def with_size_anchors(units, clip, timing, times_to_interpolate):
  """The retimed clip's `units`, each with its `size_anchor`: the last frame an output shows at
  or before the unit's first frame. Found by looking back from each unit's first frame (a few
  frames, as many as the output's frame interval spans): a clip of 100,000 frames took 6 s each
  night asking after every frame."""
  dense = output_indices(clip, times_to_interpolate)
  for unit in units:
    j = unit.first_position
    while j >= 0 and not timing.outputs(dense[j], dense[j]):
      j -= 1
    if j >= 0:
      unit = dataclasses.replace(unit, size_anchor=(j, clip.frames[j][0]))
    yield unit


# --------------------------------------------------------------------------------------------
# Triplets (i, i+1, i+2) of real footage: leave-one-out evaluation and fine-tuning on an archive.

@dataclasses.dataclass(frozen=True)
class ClipTriplet:
  """Frames i, i+1 and i+2 of one clip folder; the middle one is the truth. `uneven`: why,
  known from their names, the truth is not the midpoint in time: 'frame numbers skip' (a frame
  lost on one side) or 'frame number repeated' (one scan twice); '' where it is."""
  clip: str
  index: int
  frame0: str
  truth: str
  frame1: str
  uneven: str = ''


def clip_frames(input_path, output=None, folders=None, unaddressable=None, problems=None):
  """{clip folder: its frames in natural order} of every clip of a folder or glob `input_path`
  (any Beam filesystem), as DiscoverClips takes them (`list_clip_folders`): the folders that
  directly hold frames. The set `folders`, where given, gets every folder listed, frames or
  not (what `folder_clip_names` needs, with `input_root`, to name clips as DiscoverClips
  does). For the caller to say what is left out: the dict `unaddressable` gets {folder:
  [frames]} of frames no Beam filesystem can read by name (`files.unaddressable`), the list
  `problems` (path, reason) of what could not be listed (an unreadable folder)."""
  listed = list_clip_folders(input_path, output)
  if folders is not None:
    folders.update(listed.by_dir)
  if problems is not None:
    problems.extend(listed.problems)
  if unaddressable is not None:
    for folder, paths in listed.unaddressable.items():
      frames = [path for path in paths if is_frame_name(path)]
      if frames:
        unaddressable[folder] = _in_frame_order(frames)
  clips = {}
  for folder, entries in sorted(listed.by_dir.items()):
    frames = [m.path for m in entries if is_frame_name(m.path)]
    if frames:
      clips[folder] = _in_frame_order(frames)
  return clips


def _in_frame_order(paths):
  return sorted(paths, key=lambda path: natural_key(path.rsplit('/', 1)[-1]))


def input_root(input_spec):
  """The folder a folder or glob input is listed from (the part of a glob before its first
  pattern), which clips' output names are relative to."""
  return _split_glob(input_spec)[0]


def literal_folder(input_spec):
  """The folder an input with no wildcard names, glob.escape's brackets taken away (None for a
  glob): for inputs that take no pattern, as the evaluation's triplet folders."""
  root, pattern = _split_glob(input_spec)
  return root if pattern is None else None


def is_glob_in_a_folder(input_spec):
  """Whether `input_spec` is a glob whose folder exists: where it gives no clip, nothing it names
  matched (a reason of its own, not 'no such folder')."""
  root, pattern = _split_glob(input_spec)
  return pattern is not None and files.is_folder(root)


def clip_triplets(input_path, stride=1, frames_by_clip=None):
  """All triplets (i, i+1, i+2), i a multiple of `stride` (>= 1), of every clip under
  `input_path` (see `clip_frames`, or of `frames_by_clip` when given)."""
  if stride < 1:
    raise ValueError(f'stride must be >= 1, got {stride}')
  if frames_by_clip is None:
    frames_by_clip = clip_frames(input_path)
  triplets = []
  for clip, frames in frames_by_clip.items():
    numbers = frame_numbers(frames)
    for i in range(0, len(frames) - 2, stride):
      steps = (numbers[i + 1] - numbers[i], numbers[i + 2] - numbers[i + 1]) if numbers else (1, 1)
      uneven = ('frame number repeated' if 0 in steps else
                'frame numbers skip' if steps[0] != steps[1] else '')
      triplets.append(ClipTriplet(clip, i, frames[i], frames[i + 1], frames[i + 2], uneven))
  return triplets
