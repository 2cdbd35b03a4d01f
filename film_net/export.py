"""Export to a SavedModel with FILM's released calling convention.

`tf.saved_model.load(path)` gives an object called as
`model({'x0', 'x1', 'time'}, training=False)['image']`, like the released models, whose
variables carry the released names and whose `film_options` (a string variable, the options'
JSON) says the architecture, so `Interpolator.from_path` reads them back natively as the same
model: pyramid_levels is not in the weight shapes.
Unlike the released export, the `serving_default` signature has named outputs, `image` first.
With `use_aux_outputs` off in the options, both give the image alone, as FILM's model does.
As in the released models, `time` only gives the batch size: the model always predicts t = 0.5
(other times come from recursion, `Interpolator.recursive`).
"""
from __future__ import annotations

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import json
import logging
import os
import re
import shutil
import socket
import stat
import sys
import tempfile

import numpy as np
import tensorflow as tf

from film_net import flags
from film_net import layers
from film_net import specs
from film_net import weights as weights_lib
from film_net.interpolator import Interpolator
from film_net.options import Options

_log = logging.getLogger(__name__)
_IMAGE = tf.TensorSpec([None, None, None, 3], tf.float32)
_INPUTS = {'x0': _IMAGE, 'x1': _IMAGE, 'time': tf.TensorSpec([None, 1], tf.float32)}


class ReleasedFormatModel(tf.Module):
  """film_net over plain tf.Variables named as in the released checkpoints."""

  # Tracked lists in place of tf.Module's properties: reloaded, the export has `.variables` and
  # `.trainable_variables` as released (Keras 2) SavedModels do, where tools read weights.
  variables = None
  trainable_variables = None

  def __init__(self, weights: dict[str, np.ndarray], options: Options,
               inference: dict | None = None):
    super().__init__(name=None)
    self.film_options = tf.Variable(options.to_json(), trainable=False, name='film_options')
    if inference:  # how the model is meant to run, as our weight files' meta says it
      self.film_inference = tf.Variable(json.dumps(inference, sort_keys=True), trainable=False,
                                        name='film_inference')
    self._opts = options
    self._specs = {s.name: s for s in specs.conv_specs(options)}
    self.variables = [tf.Variable(np.asarray(weights[f'{s.name}/{p}'], np.float32),
                                  name=f'{s.name}/{p}')
                      for s in specs.conv_specs(options) for p in ('kernel', 'bias')]
    self.trainable_variables = list(self.variables)
    self._by_name = {v.name.split(':')[0]: v for v in self.variables}

  def _conv(self, name: str, x: tf.Tensor) -> tf.Tensor:
    return layers.apply_conv(self._specs[name], self._by_name[f'{name}/kernel'],
                             self._by_name[f'{name}/bias'], x)

  def _outputs(self, inputs: dict) -> dict:
    pyr0, feat0 = layers.frame_features(self._conv, self._opts, inputs['x0'])
    pyr1, feat1 = layers.frame_features(self._conv, self._opts, inputs['x1'])
    return layers.interpolate_from_features(self._conv, self._opts, pyr0, feat0, pyr1, feat1,
                                            aux_outputs=self._opts.use_aux_outputs)

  # The model is traced once, as `_forward`: `__call__` (for either `training`) and `serve` call
  # that one function, so an export traces and saves the network once, not three times.
  @tf.function(input_signature=[_INPUTS], autograph=False)
  def _forward(self, inputs):
    return self._outputs(inputs)

  @tf.function(autograph=False)
  def __call__(self, inputs, training=False, mask=None):
    del training, mask  # Same graph either way: no dropout, no normalisation.
    return self._forward(inputs)

  @tf.function(input_signature=[_IMAGE, _IMAGE, _INPUTS['time']], autograph=False)
  def serve(self, x0, x1, time):
    out = self._forward({'x0': x0, 'x1': x1, 'time': time})
    flat = {key: out[key] for key in ('image', 'x0_warped', 'x1_warped') if key in out}
    for key in ('forward_flow_pyramid', 'backward_flow_pyramid', 'forward_residual_flow_pyramid',
                'backward_residual_flow_pyramid'):
      for i, level in enumerate(out.get(key, ())):
        flat[f'{key}_{i}'] = level
    return flat


def export_saved_model(weights: dict[str, np.ndarray], options: Options, path: str,
                       inference: dict | None = None) -> None:
  """Writes a SavedModel directory at `path` (local, or remote through Beam's filesystems, as
  every model path is read: TensorFlow's own gs:// client ignores the storage emulator and
  Beam's credentials); `inference` (flip_average, padding, flip_weights) is recorded for
  `Interpolator.from_path`."""
  old = refuse_what_is_not_an_export(path)  # (before the model is built and traced)
  if weights_lib.is_remote(path):
    module = _traced(weights, options, inference)
    with tempfile.TemporaryDirectory(prefix='film_export_') as local:
      tf.saved_model.save(module, local, signatures={'serving_default': module.serve})
      from transforms import files  # pylint: disable=import-outside-toplevel
      # By name (Beam's own delete reads names as patterns: `exported [3]/...` deleted nothing),
      # so that no file of the earlier export is left to mix with the new ones.
      files.delete_files(old)
      weights_lib.upload_tree(local, path)
    return
  path = os.path.realpath(path)  # a link to an export: that export is replaced, the link kept
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  _remove_what_killed_exports_left(parent)
  try:  # (before the model is traced, too)
    staged = tempfile.mkdtemp(prefix=_staging_prefix(), dir=parent)  # (the same filesystem)
  except PermissionError as e:  # (a folder of one's own in one an administrator keeps)
    raise PermissionError(
        e.errno, f'cannot write the export beside it ({e.strerror}: an export is written aside '
        f'and moved in whole): name a folder in a folder you may write', path) from None
  try:
    os.chmod(staged, _folder_mode(path))  # (mkdtemp's is owner-only: TF Serving could not read)
    module = _traced(weights, options, inference)
    tf.saved_model.save(module, staged, signatures={'serving_default': module.serve})
    _swap_in(staged, path)
  finally:
    shutil.rmtree(staged, ignore_errors=True)


def _traced(weights, options, inference) -> ReleasedFormatModel:
  """The model to save, its call traced for both `training` values, as the released ones."""
  module = ReleasedFormatModel(weights, options, inference)
  for training in (False, True):
    module.__call__.get_concrete_function(_INPUTS, training=training)
  return module


def refuse_what_is_not_an_export(path: str) -> list[str]:
  """ValueError where `path` is a file or a folder of other files than an export (which an
  export replaces, whole); else the files of a remote one ([] locally), to delete before the new
  export is uploaded (its `saved_model.pb` last: a stop between leaves no model, not a mix)."""
  if weights_lib.is_remote(path):
    from transforms import files  # pylint: disable=import-outside-toplevel
    _refuse_a_file(path.rstrip('/'), files.is_file(path.rstrip('/')))
    old = _remote_files(path)
    _refuse_to_replace_other_files(path, _top_level_names(path.rstrip('/'), old))
    return old
  path = os.path.realpath(path)
  _refuse_a_file(path, os.path.lexists(path) and not os.path.isdir(path))
  _refuse_to_replace_other_files(path, os.listdir(path) if os.path.isdir(path) else [])
  return []


# What a SavedModel folder holds at its top (TensorFlow's, Keras 2's metadata): a folder holding
# anything else is someone's folder with an export in it, not an export, and is not replaced.
_SAVED_MODEL_ENTRIES = {'saved_model.pb', 'saved_model.pbtxt', 'fingerprint.pb',
                        'keras_metadata.pb', 'variables', 'assets', 'assets.extra'}


def _refuse_to_replace_other_files(path: str, names: list[str]) -> None:
  """An export replaces an earlier export, whole; a folder (`names`: its top-level entries) that
  holds anything else is not one (`--output ~/models` would have lost them all): ValueError."""
  others = sorted(set(names) - _SAVED_MODEL_ENTRIES)
  if others or (names and 'saved_model.pb' not in names):
    what = (f'files other than a SavedModel ({", ".join(others[:3])}'
            f'{", ..." if len(others) > 3 else ""})' if others else 'files but no SavedModel')
    raise ValueError(f'{path} holds {what}: name a new or empty folder, or an earlier export to '
                     f'replace')


def _top_level_names(root: str, paths: list[str]) -> list[str]:
  """The entries directly in the remote folder `root` of the files `paths` below it."""
  return sorted({p[len(root) + 1:].split('/', 1)[0] for p in paths if p.startswith(root + '/')})


def _folder_mode(path: str) -> int:
  """The mode of the folder an export replaces, else a new folder's under the umask, set-group-ID
  where its parent has it (a group's shared folder: files made in it keep the group)."""
  if os.path.isdir(path):
    return os.stat(path).st_mode & 0o7777
  umask = os.umask(0)
  os.umask(umask)
  return 0o777 & ~umask | os.stat(os.path.dirname(path)).st_mode & stat.S_ISGID


def _staging_prefix() -> str:
  """`.tmp-export-<host>-<pid namespace>-<pid>-`: whose staging folder it is, so that a later
  export can tell one a killed process left (`kill -9`, a machine's restart: no `finally` ran)
  from one of an export still running, here, in another container (which may share the host's
  name, not its process ids) or on another machine sharing the disk."""
  return f'{_these_processes_staging()}{os.getpid()}-'


def _these_processes_staging() -> str:
  host = re.sub(r'[^A-Za-z0-9.]', '_', socket.gethostname()) or 'host'
  try:
    namespace = os.stat('/proc/self/ns/pid').st_ino
  except OSError:  # (no /proc: not Linux)
    namespace = 0
  return f'.tmp-export-{host}-{namespace}-'


def _remove_what_killed_exports_left(parent: str) -> None:
  """Deletes the staging folders in `parent` (and `-old` ones, an earlier export moved aside)
  of exports among this machine's processes whose process is gone; each killed export left one
  more. A folder that can be written but not listed (a drop box) keeps them."""
  ours = re.compile(re.escape(_these_processes_staging()) + r'(\d+)-[^-]+(-old)?')
  try:
    names = os.listdir(parent)
  except OSError:
    return
  for name in names:
    found = ours.fullmatch(name)
    if found and not _running(int(found.group(1))):
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _running(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:  # (another user's: running)
    pass
  return True


def _swap_in(staged: str, path: str) -> None:
  """Moves the folder `staged` to `path`, an earlier export there moved aside first and deleted
  after: a stop leaves the old export or the new one, whole, never their files mixed."""
  if not os.path.lexists(path):
    os.rename(staged, path)
    return
  old = f'{staged}-old'
  os.rename(path, old)
  try:
    os.rename(staged, path)
  except BaseException:  # (a stop between the two renames: the old one goes back)
    os.rename(old, path)
    raise
  left = []
  shutil.rmtree(old, onerror=lambda _, name, error: left.append((name, error[1])))
  if left and os.path.lexists(old):  # (an export of another user's, in folders not ours)
    name, error = left[0]
    _log.warning('the export replaced, moved aside to %s, could not be removed (%s: %s): '
                 'remove it by hand', old, getattr(error, 'strerror', None) or error, name)


def _refuse_a_file(path: str, is_a_file: bool) -> None:
  """An export named as a file (a weight file) hid it: moved aside on disk, shadowed in a
  bucket (its name then loaded as the export)."""
  if is_a_file:
    raise ValueError(f'{path} is a file, not a folder: name a new or empty folder, or an '
                     f'earlier export to replace')


def _remote_files(path: str) -> list[str]:
  """Every file below the remote folder `path` ([] where it cannot be listed: the upload that
  follows says why, in the command's words)."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  try:
    return [m.path for m in files.match(path.rstrip('/'), '**')]
  except Exception:  # pylint: disable=broad-except
    return []


def main(argv=None) -> int:
  """`python -m film_net.export --output DIR [--model FILE]`: a weight file as a SavedModel, for
  tools that load the released models (TF Serving, `tf.saved_model.load`)."""
  flags.start_command()
  parser = flags.command_line(
      'film_net.export', 'Write a weight file as a SavedModel of FILM\'s released calling '
                         'convention (x0, x1, time in; image out).')
  parser.add_argument('--model', '--model_path', dest='model', default=None,
                      type=flags.path_value,
                      help='our weight file, a released .npz or SavedModel (default: the '
                           'built-in model; --model_path: the same, as the pipeline\'s commands '
                           'name it)')
  parser.add_argument('--output', required=True, type=flags.path_value,
                      help='folder the SavedModel is written to (local or gs://); one there '
                           'already is replaced, whole (on cloud storage deleted first: a stop '
                           'mid-upload leaves none); a folder of other files is refused')
  args = parser.parse_args(argv)
  flags.check_paths(parser, [('--output', args.output)], [('--model', args.model)])
  try:  # (said at once, not after the model is loaded: a usage error, as the other paths')
    refuse_what_is_not_an_export(args.output)
  except ValueError as e:
    print(f'error: cannot write a SavedModel to {args.output}: {e}', file=sys.stderr)
    return 2
  try:
    model = Interpolator.from_path(args.model)
  except (OSError, ValueError) as e:  # its message names the file and why; a usage error, as
    print(f'error: {e}', file=sys.stderr)  # a local --model that is not there
    return 2
  try:
    model.export_saved_model(args.output)
  except Exception as e:  # pylint: disable=broad-except
    # TensorFlow's own errors for a local path, the storage client's for gs://: in one line.
    why = str(e).splitlines()[0] if str(e) else type(e).__name__
    if weights_lib.is_remote(args.output):  # no such bucket, no access: in the pipeline's words
      from transforms import files  # pylint: disable=import-outside-toplevel
      why = files.unreachable(args.output.rstrip('/').rsplit('/', 1)[0]) or why
    print(f'error: cannot write a SavedModel to {args.output}: {why}', file=sys.stderr)
    return 1
  print(f'wrote a SavedModel of {args.model or "the built-in model"} to {args.output}')
  return 0


if __name__ == '__main__':
  flags.exit_with(flags.run_command(main))
