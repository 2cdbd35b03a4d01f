"""Reading and writing film_net weights.

Three sources, all mapped onto released variable names (`specs.conv_specs`):
* a released FILM SavedModel directory (film_net/L1, VGG, Style), read by variable name;
* a plain `.npz` of released name -> array, like the fixtures in film-golden;
* the project's own weight files: the same `.npz` layout plus an `options` entry (JSON), so a
  file says what architecture it is.
Paths may be local or any Beam filesystem path (gs://...): TensorFlow's own gs:// support does
not honour the storage emulator or Beam's credentials, so remote files are first copied to a
local temp directory through Beam's `FileSystems`.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
import zlib

import numpy as np

from film_net import specs
from film_net.options import Options

# The built-in model, shipped as package data (see default_model/MODEL_CARD.md).
DEFAULT_MODEL = os.path.join(os.path.dirname(__file__), 'default_model', 'film_net_default.npz')

_SCOPES = ('feat_net/', 'predict_flow/', 'fusion/')
_FUSION = re.compile(r'^fusion/conv2d(?:_(\d+))?/(kernel|bias)$')
# How a SavedModel's object graph marks a tracked list (or tuple) of objects.
_LISTS = ('trackable_list_wrapper', 'trackable_tuple_wrapper')


# What Beam's `FileSystems.get_scheme` takes for a scheme, matched without loading Beam.
_SCHEME = re.compile(r'[a-zA-Z][-a-zA-Z0-9+.]*://')


def is_remote(path: str) -> bool:
  """Whether `path` is read through one of Beam's filesystems (gs://...), as Beam decides: a
  local `out/a://b` is not."""
  return bool(_SCHEME.match(str(path).strip()))


@contextlib.contextmanager
def local_copy(path: str):
  """A local path holding the file or directory at `path`: itself, or if remote a copy made via
  Beam, deleted again on leaving (whatever loads from it reads it whole first)."""
  if not is_remote(path):
    if not os.path.exists(path):
      raise FileNotFoundError(f'model path does not exist: {path}')
    if not (os.path.isdir(path) and re.search(r'[*?\[]', os.path.abspath(path))):
      yield path
      return
    # TensorFlow reads a SavedModel's variables through a glob of their path: a folder named
    # `Take [2]` matched nothing. A link of a plain name leads there.
    linked = tempfile.mkdtemp(prefix='film_model_')
    try:
      os.symlink(os.path.abspath(path), os.path.join(linked, 'model'))
      yield os.path.join(linked, 'model')
    finally:
      shutil.rmtree(linked, ignore_errors=True)
    return
  # Only remote paths need Beam; `files.match` reads the model's folder literally ('v[2]').
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel

  root = path.rstrip('/')
  local_root = tempfile.mkdtemp(prefix='film_model_')
  try:
    if files.is_file(root) and not FileSystems.exists(root + '/saved_model.pb'):
      target = os.path.join(local_root, os.path.basename(root))
      _copy_remote_file(FileSystems, root, target)
      yield target
      return
    try:
      matches = files.match(root, '**')
    except Exception:  # pylint: disable=broad-except
      why = files.unreachable(root)  # a missing bucket: Beam's message is a listing's repr
      if why:
        raise FileNotFoundError(f'model path {path}: {why}') from None
      raise
    if not matches:
      raise FileNotFoundError(f'model path does not exist: {path}')
    for meta in matches:
      rel = meta.path[len(root) + 1:]
      _copy_remote_file(FileSystems, meta.path, os.path.join(local_root, rel))
    yield local_root
  finally:
    shutil.rmtree(local_root, ignore_errors=True)


def upload_tree(local_root: str, path: str) -> None:
  """Copies the folder `local_root` to the remote folder `path` via Beam (`local_copy`'s way
  back), saved_model.pb last: a reader that finds it finds the variables it needs."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel
  found = [os.path.relpath(os.path.join(folder, name), local_root)
           for folder, _, names in os.walk(local_root) for name in names]
  for rel in sorted(found, key=lambda rel: (rel == 'saved_model.pb', rel)):
    with open(os.path.join(local_root, rel), 'rb') as fin, \
        FileSystems.create(f"{path.rstrip('/')}/{rel.replace(os.sep, '/')}") as fout:
      shutil.copyfileobj(fin, fout)


def _copy_remote_file(filesystems, src: str, dst: str) -> None:
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  with filesystems.open(src) as fin, open(dst, 'wb') as fout:
    shutil.copyfileobj(fin, fout)


def canonical_name(name: str) -> str | None:
  """'model/feat_net/.../kernel:0' -> 'feat_net/.../kernel'; None for non-model variables."""
  name = name.split(':')[0]
  for scope in _SCOPES:
    idx = name.find(scope)
    if idx == 0 or (idx > 0 and name[idx - 1] == '/'):
      return name[idx:]
  return None


def renumber_fusion(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Maps auto-numbered fusion convs onto creation order (conv2d, conv2d_1, ...).

  Keras numbers unnamed convs with a process-global counter, so a checkpoint made after other
  convs were created can hold fusion/conv2d_13..25; their order is still the creation order.
  """
  numbers = sorted({int(m.group(1) or 0) for k in weights if (m := _FUSION.match(k))})
  rename = {n: ('conv2d' if i == 0 else f'conv2d_{i}') for i, n in enumerate(numbers)}
  out = {}
  for key, value in weights.items():
    m = _FUSION.match(key)
    out[f'fusion/{rename[int(m.group(1) or 0)]}/{m.group(2)}' if m else key] = value
  return out


def infer_options(weights: dict[str, np.ndarray], base: Options | None = None) -> Options:
  """Widths and level counts read from weight shapes; pyramid_levels (not in the shapes)
  comes from `base`, else the released value."""
  base = base or Options.released()
  try:
    sub_convs = [k for k in weights if k.startswith('feat_net/sub_extractor/cfeat_conv_')
                 and k.endswith('/kernel')]
    filters = int(weights['feat_net/sub_extractor/cfeat_conv_0/kernel'].shape[-1])
    specialized = len({k.split('/')[1] for k in weights
                       if re.match(r'^predict_flow/flow_predictor_\d+/', k)})
    flow_convs, flow_filters = [], []
    for p in [str(i) for i in range(specialized)] + ['shared']:
      scope = f'predict_flow/flow_predictor_{p}/'
      n = len([k for k in weights if k.startswith(scope) and k.endswith('/kernel')])
      flow_convs.append(n - 2)
      flow_filters.append(int(weights[scope + 'conv_0/kernel'].shape[-1]) if n > 2 else
                          2 * int(weights[scope + 'conv_0/kernel'].shape[-1]))
    fusion_convs = len([k for k in weights if k.startswith('fusion/') and k.endswith('/kernel')])
  except KeyError as e:
    raise ValueError(f'not film_net weights: missing {e}') from None
  return Options(pyramid_levels=max(base.pyramid_levels, (fusion_convs - 1) // 3 + 1),
                 fusion_pyramid_levels=(fusion_convs - 1) // 3 + 1,
                 specialized_levels=specialized, sub_levels=len(sub_convs) // 2,
                 flow_convs=tuple(flow_convs), flow_filters=tuple(flow_filters),
                 filters=filters, use_aux_outputs=base.use_aux_outputs)


def read_npz(local_path: str) -> tuple[dict[str, np.ndarray], Options | None]:
  """Released-name weights from an `.npz` (fixture layout or ours) and its options, if any."""
  with open(local_path, 'rb'):  # (a file that cannot be read, no permission, says so: below,
    pass                        # it read as "a truncated download")
  if not zipfile.is_zipfile(local_path):  # (NumPy would call a text file pickled data)
    raise ValueError('not a readable .npz weight file (not a zip archive, as np.savez writes: '
                     'a truncated download, or another kind of file)')
  with np.load(local_path, allow_pickle=False) as data:
    weights = {}
    options = None
    for key in data.files:
      if key == 'options':
        options = Options.from_dict(json.loads(str(data[key])))
        continue
      if key == 'meta':
        continue
      name = key[len('weight/'):] if key.startswith('weight/') else key
      canon = canonical_name(name)
      if canon is not None and not key.startswith(('input/', 'output/')):
        weights[canon] = data[key]
  if not weights:
    raise ValueError(f'{local_path}: no film_net weights found (expected keys like '
                     "'weight/feat_net/sub_extractor/cfeat_conv_0/kernel:0')")
  return renumber_fusion(weights), options


def check_finite(weights: dict[str, np.ndarray]) -> None:
  """ValueError naming the weight arrays that hold NaN or infinite values: a training run that
  diverged, whose every frame would come out NaN (or an average of it)."""
  broken = sorted(name for name, array in weights.items() if not np.isfinite(array).all())
  if broken:
    raise ValueError(f'{len(broken)} of its weight arrays hold NaN or infinite values '
                     f'({", ".join(broken[:3])}{", ..." if len(broken) > 3 else ""})')


def is_saved_model(local_path: str) -> bool:
  """Whether the local path is a SavedModel folder (FILM's released models, our exports)."""
  return os.path.isfile(os.path.join(local_path, 'saved_model.pb'))


def read_weights(local_path: str) -> tuple[dict[str, np.ndarray], Options | None]:
  """Released-name weights and options (if recorded) of a SavedModel folder or an `.npz`."""
  return read_saved_model(local_path) if is_saved_model(local_path) else read_npz(local_path)


def read_saved_model(local_dir: str) -> tuple[dict[str, np.ndarray], Options | None]:
  """Released-name weights from a FILM SavedModel directory, by variable name, and the options
  our exports record (None for released models: their options are the released ones).

  Read from the SavedModel's checkpoint, found through its object graph, rather than by
  `tf.saved_model.load`, which also restores every function the model was saved with, only for
  them to be thrown away here: that took most of the time a worker spent loading a SavedModel
  (`docs/benchmarks.md`, "Loading a SavedModel"). One laid out otherwise is loaded whole.
  """
  stored = _stored_variables(local_dir)
  if stored is None:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    loaded = tf.saved_model.load(local_dir)
    stored = ({name: var.numpy() for name, var in _released_name_variables(loaded).items()},
              _recorded_options(loaded))
  weights, options = stored
  if not weights:
    raise ValueError(f'{local_dir}: SavedModel has no variables with released film_net names; '
                     "use engine='savedmodel' to call it as it is")
  return weights, options


def _stored_variables(local_dir: str) -> tuple[dict[str, np.ndarray], Options | None] | None:
  """What `tf.saved_model.load(local_dir)` gives through `_released_name_variables` and
  `_recorded_options`, read without loading the model; None where the SavedModel cannot be read
  so, or does not keep its variables as a list on its root as ours and Keras's do."""
  try:
    graphs = _ObjectGraphs(local_dir)
    variables = graphs.listed('variables') or graphs.listed('film_variables')
    node = graphs.child(graphs.ROOT, 'film_options')
    recorded = None if node is None else graphs.variable(node)
    if not variables or None in variables or (node is not None and recorded is None):
      return None
    options = None if recorded is None else Options.from_dict(json.loads(recorded[1]))
  except Exception:  # pylint: disable=broad-except
    return None  # tf.saved_model.load says what is wrong with it
  weights = {canon: value for name, value in variables
             if (canon := canonical_name(name)) is not None}
  return renumber_fusion(weights), options


class _ObjectGraphs:
  """A SavedModel's two object graphs, walked together from the root by child name: the one in
  saved_model.pb names each variable, the checkpoint's says under which key its value is."""

  ROOT = (0, 0)  # a node: (its id in saved_model.pb's graph, its id in the checkpoint's)

  def __init__(self, local_dir: str):
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.core.protobuf import trackable_object_graph_pb2
    model = saved_model_pb2.SavedModel()
    with open(os.path.join(local_dir, 'saved_model.pb'), 'rb') as f:
      model.ParseFromString(f.read())
    (meta_graph,) = model.meta_graphs
    self._saved = meta_graph.object_graph_def.nodes
    self._reader = tf.train.load_checkpoint(os.path.join(local_dir, 'variables', 'variables'))
    stored = trackable_object_graph_pb2.TrackableObjectGraph()
    stored.ParseFromString(self._reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))
    self._stored = stored.nodes

  def child(self, node: tuple[int, int], name: str) -> tuple[int, int] | None:
    ids = tuple(next((c.node_id for c in graph[i].children if c.local_name == name), None)
                for graph, i in zip((self._saved, self._stored), node))
    if (ids[0] is None) != (ids[1] is None):  # saved_model.pb and variables/ of other saves
      raise ValueError(f'the object graphs disagree on {name!r}')
    return None if None in ids else ids

  def variable(self, node: tuple[int, int]) -> tuple[str, np.ndarray] | None:
    """(name, value) of a variable node; None if it is not one."""
    if self._saved[node[0]].WhichOneof('kind') != 'variable':
      return None
    keys = [a.checkpoint_key for a in self._stored[node[1]].attributes
            if a.name == 'VARIABLE_VALUE']
    return (self._saved[node[0]].variable.name, self._reader.get_tensor(keys[0])) if keys else None

  def listed(self, name: str) -> list:
    """The root's list `name` (children '0', '1', ...), each as `variable` gives it."""
    items, node = [], self.child(self.ROOT, name)
    if node is not None and self._saved[node[0]].user_object.identifier not in _LISTS:
      raise ValueError(f'{name!r} is not a list')
    while node is not None and (item := self.child(node, str(len(items)))) is not None:
      items.append(self.variable(item))
    return items


def saved_model_options(loaded) -> Options | None:
  """The film_net options of a loaded SavedModel: recorded by our export, else read from its
  released-name variables' shapes (no values read); None for a model that is not film_net."""
  options = _recorded_options(loaded)
  variables = {} if options is not None else _released_name_variables(loaded)
  if not variables:
    return options
  try:
    return infer_options(variables)
  except ValueError:
    return None


def _released_name_variables(loaded) -> dict:
  """A loaded SavedModel's variables under their released names ({} if none has one)."""
  variables = {}
  for var in saved_variables(loaded):
    canon = canonical_name(var.name)
    if canon is not None:
      variables[canon] = var
  return renumber_fusion(variables) if variables else {}


def _recorded_options(loaded) -> Options | None:
  """The options our exports record in their `film_options` variable (None if absent)."""
  options = getattr(loaded, 'film_options', None)
  return Options.from_dict(json.loads(options.numpy().decode())) if options is not None else None


def save(path: str, weights: dict[str, np.ndarray], options: Options,
         meta: dict | None = None) -> None:
  """Writes our weight file: released names (`weight/<name>:0`), `options` as JSON, and
  optional `meta` JSON (training steps and time, data) for model cards and resumed training.

  Written whole: to a temp file renamed into place locally, or one upload for remote paths.
  """
  buffer = io.BytesIO()
  arrays = {f'weight/{name}:0': np.asarray(v, np.float32) for name, v in weights.items()}
  extra = {'meta': np.array(json.dumps(meta, sort_keys=True))} if meta else {}
  np.savez(buffer, options=np.array(options.to_json()), **extra, **arrays)
  data = buffer.getvalue()
  if is_remote(path):
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.create(path) as f:
      f.write(data)
    return
  write_local_whole(path, data)


_WHOLE_WRITE_TEMPORARY = re.compile(r'\.tmp-[0-9a-f]{32}(\.[^/.]*)?$')


def is_whole_write_temporary(path: str) -> bool:
  """Whether `path` is named as `write_local_whole`'s temporaries are (`.tmp-` + a uuid)."""
  return bool(_WHOLE_WRITE_TEMPORARY.match(os.path.basename(path)))


def write_local_whole(path: str, data: bytes) -> None:
  """Writes the local file `path` through a temporary beside it, flushed to disk and renamed
  into place: a write stopped midway (Ctrl-C, a full disk, a power cut) leaves `path` whole, old
  or absent, and no temporary."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  # A unique name opened as a plain file, so the result gets the umask's usual permissions
  # (tempfile.mkstemp's are owner-only).
  tmp = os.path.join(directory, f'.tmp-{uuid.uuid4().hex}{os.path.splitext(path)[1]}')
  try:
    with open(tmp, 'xb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())  # (on disk before the rename: a power cut leaves no zeroed file)
    os.replace(tmp, path)
  except OSError as e:
    if e.filename is None:  # a write's error names no file ("No space left on device"): say which
      raise OSError(e.errno, f'cannot write {path}: {e.strerror or e}') from e
    raise
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def read_model(path: str) -> tuple[dict[str, np.ndarray], Options | None, dict]:
  """(released-name weights, options or None, meta) of a weight file or SavedModel folder,
  local or remote (copied here first)."""
  with local_copy(path) as local:
    weights, options = read_weights(local)
    return weights, options, read_meta(local)


def read_meta(local_path: str) -> dict:
  """The `meta` entry of our weight file ({} if absent); of a SavedModel folder, the
  `inference` our export records (how the model it was made from runs), else {}. DamagedMeta
  where it is not as this package writes it (`check_inference`)."""
  if is_saved_model(local_path):
    recorded = _recorded_inference(local_path)
    check_inference(recorded)
    return {'inference': recorded} if recorded else {}
  loaded = np.load(local_path, allow_pickle=False)
  if not isinstance(loaded, np.lib.npyio.NpzFile):  # (an .npy array: no meta)
    return {}
  with loaded as data:
    text = str(data['meta']) if 'meta' in data.files else None
  if text is None:
    return {}
  try:
    meta = json.loads(text)
  except ValueError:
    meta = None
  if not isinstance(meta, dict):
    raise DamagedMeta('its meta entry is not a JSON object (the file is damaged or not written '
                      'by this package)')
  check_inference(meta.get('inference', {}))
  return meta


def check_inference(recorded) -> None:
  """DamagedMeta unless `recorded` (a meta's `inference`) is as this package writes it: hand-made
  or damaged, a string 'false' turned flip averaging on, and every file trained or averaged from
  it carried it on."""
  if not (isinstance(recorded, dict) and all(
      isinstance(value, bool if key == 'flip_average' else str)
      for key, value in recorded.items() if key in INFERENCE_DEFAULTS)):
    raise DamagedMeta(f'its meta\'s inference entry is not as this package writes it '
                      f'({json.dumps(recorded)[:200]}): flip_average true or false, padding and '
                      f'flip_weights names')


class DamagedMeta(ValueError):
  """A weight file's meta that this package did not write so: its model would run otherwise
  than recorded."""


# FILM's released tools' (`flip_weights` matters only with `flip_average`; see `Interpolator`)
INFERENCE_DEFAULTS = {'flip_average': False, 'padding': 'zeros', 'flip_weights': 'equal'}


def inference_defaults(local_path: str) -> dict:
  """How the weight file's model runs unless told otherwise: `INFERENCE_DEFAULTS` updated by its
  meta's `inference` entry (the built-in model's: flip averaging, mirror padding), or our
  SavedModel export's record of it. Other SavedModels and files, and unreadable ones (loading
  those fails with its own message), get the defaults."""
  defaults = dict(INFERENCE_DEFAULTS)
  try:
    if not (is_saved_model(local_path) or os.path.isfile(local_path)):
      return defaults
    recorded = read_meta(local_path).get('inference', {})
  except DamagedMeta:
    raise
  # (EOFError: an empty file; zlib.error: a member cut short; loading the weights says why)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
    return defaults
  defaults.update({k: v for k, v in recorded.items() if k in defaults})
  return defaults


def _recorded_inference(local_dir: str) -> dict:
  """How our export of a model says it runs (`export_saved_model(..., inference=)`); {} for
  other SavedModels."""
  try:
    graphs = _ObjectGraphs(local_dir)
    node = graphs.child(graphs.ROOT, 'film_inference')
    recorded = None if node is None else graphs.variable(node)
  except Exception:  # pylint: disable=broad-except  # loading it says what is wrong
    return {}
  if recorded is None:
    return {}
  value = recorded[1]
  return json.loads(value.decode() if isinstance(value, bytes) else str(value))


def fingerprint(weights: dict[str, np.ndarray], options: Options) -> str:
  """Content hash of architecture and weights: equal exactly when outputs are equal."""
  h = hashlib.sha256(options.to_json().encode())
  for spec in specs.conv_specs(options):
    for part in ('kernel', 'bias'):
      h.update(np.ascontiguousarray(weights[f'{spec.name}/{part}'], np.float32).tobytes())
  return h.hexdigest()


def saved_variables(loaded) -> list:
  """A loaded SavedModel's variables: released (Keras 2) models and our exports restore them as
  `.variables`; our exports before 2026-12-01 kept them in `film_variables` only."""
  return list(getattr(loaded, 'variables', None) or getattr(loaded, 'film_variables', []))


def fingerprint_saved_model(loaded) -> str:
  """Content hash of a SavedModel's variables, for models called as they are."""
  h = hashlib.sha256(b'savedmodel')
  for var in sorted(saved_variables(loaded), key=lambda v: v.name):
    h.update(var.name.encode())
    h.update(np.ascontiguousarray(var.numpy()).tobytes())
  return h.hexdigest()
