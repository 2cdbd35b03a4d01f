"""Weights: our files, fixture .npz, SavedModel export/import, remote paths, fusion numbering."""
import dataclasses
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from film_net import Interpolator, Options
from film_net import specs
from film_net import weights as weights_lib
from film_net.export import export_saved_model
from film_net.interpolator import ENGINES
from film_net_helpers import golden_path


@pytest.fixture(scope='module')
def golden():
  path = golden_path('golden_small_seed1')
  data = np.load(path)
  return path, data['input/x0'], data['input/x1'], data['output/image']


@pytest.fixture(scope='module')
def exported(golden, tmp_path_factory):
  path, *_ = golden
  interp = Interpolator.from_path(path, align=None)
  target = str(tmp_path_factory.mktemp('export') / 'saved_model')
  export_saved_model(interp.net.released_weights(), interp.options, target)
  return interp, target


def test_own_weight_file_round_trips_options_and_outputs(tmp_path):
  options = Options.tiny()
  interp = Interpolator.random(options, seed=3, align=64)
  path = str(tmp_path / 'model.npz')
  interp.save(path)
  again = Interpolator.from_path(path)
  assert again.options == options
  assert again.fingerprint == interp.fingerprint
  x = np.random.default_rng(0).random((2, 1, 40, 56, 3), np.float32)
  np.testing.assert_array_equal(again(x[0], x[1]), interp(x[0], x[1]))
  # Written whole, with the permissions any new file gets here (not a temp file's owner-only),
  # and nothing left beside it.
  plain = tmp_path / 'plain'
  plain.write_bytes(b'')
  assert os.stat(path).st_mode & 0o777 == plain.stat().st_mode & 0o777
  assert sorted(os.listdir(tmp_path)) == ['model.npz', 'plain']


@pytest.fixture(scope='module')
def tiny_export(tmp_path_factory):
  """(Interpolator, SavedModel path): a tiny model without auxiliary outputs, whose output bias
  is raised by 2 (mid frames out of [0, 1], as a model's unclipped output can be), exported."""
  options = dataclasses.replace(Options.tiny(), use_aux_outputs=False)
  weights = Interpolator.random(options, seed=2).net.released_weights()
  bias = specs.fusion_conv_names(options)[-1] + '/bias'
  folder = tmp_path_factory.mktemp('tiny_export')
  weights_lib.save(str(folder / 'raised.npz'), {**weights, bias: weights[bias] + 2.0}, options)
  interp = Interpolator.from_path(str(folder / 'raised.npz'), align=64)
  target = str(folder / 'tiny_saved_model')
  export_saved_model(interp.net.released_weights(), interp.options, target)
  return interp, target


def test_an_export_in_a_folder_named_like_a_glob_loads_and_one_cut_short_says_so(tiny_export,
                                                                                 tmp_path):
  """TensorFlow reads the variables through a glob of their path: `Take [2]` matched nothing
  ("Failed to find any matching files"); a partial copy gave a bare IndexError."""
  interp, target = tiny_export
  bracketed = tmp_path / 'Take [2]' / 'model'
  shutil.copytree(target, bracketed)
  x = np.random.default_rng(4).random((2, 1, 24, 40, 3), np.float32)
  for engine in ENGINES:
    again = Interpolator.from_path(str(bracketed), engine=engine)
    np.testing.assert_allclose(again(x[0], x[1]), interp(x[0], x[1]), rtol=1e-5, atol=1e-5)
  assert sorted(os.listdir(tmp_path)) == ['Take [2]']
  (data,) = (bracketed / 'variables').glob('variables.data-*')
  data.write_bytes(data.read_bytes()[:200])
  for engine in ENGINES:
    with pytest.raises(ValueError, match=r'^cannot load film_net model from .*Take \[2\]/model: '
                                         r'a file of it is cut short or unreadable \('):
      Interpolator.from_path(str(bracketed), engine=engine)
  # Its variables gone: TensorFlow's advice on `experimental_io_device` was a second line.
  shutil.rmtree(bracketed / 'variables')
  for engine in ENGINES:
    with pytest.raises(ValueError, match=r'^cannot load film_net model from .*Take \[2\]/model: '
                       ) as raised:
      Interpolator.from_path(str(bracketed), engine=engine)
    assert '\n' not in str(raised.value), str(raised.value)


def test_an_interpolators_export_runs_as_it_did(tiny_export, tmp_path):
  """An export recorded the options alone: the built-in model's ran plain (no flip averaging,
  zero padding), ~0.5 dB below the model as shipped."""
  runs = Interpolator.random(Options.tiny(), seed=5, flip_average=True, padding='mirror',
                             flip_weights='agreement')
  runs.export_saved_model(str(tmp_path / 'export'))
  x = np.random.default_rng(6).random((2, 1, 24, 40, 3), np.float32)
  for engine in ENGINES:
    again = Interpolator.from_path(str(tmp_path / 'export'), engine=engine)
    assert (again.flip_average, again.padding, again.flip_weights) == (True, 'mirror',
                                                                       'agreement')
    np.testing.assert_allclose(again(x[0], x[1]), runs(x[0], x[1]), rtol=1e-5, atol=1e-5)
  plain = Interpolator.from_path(tiny_export[1])  # film_net.export without a record: as released
  assert (plain.flip_average, plain.padding, plain.flip_weights) == (False, 'zeros', 'equal')


def test_an_export_of_any_options_loads_back_natively_as_the_same_model(tiny_export):
  # pyramid_levels is in no weight shape: without the export's own record, a tiny model
  # (4 levels) came back with the released 7 and computed other frames.
  interp, target = tiny_export
  again = Interpolator.from_path(target)
  assert again.options == interp.options and again.fingerprint == interp.fingerprint
  x = np.random.default_rng(1).random((2, 1, 24, 40, 3), np.float32)
  np.testing.assert_allclose(again(x[0], x[1]), interp(x[0], x[1]), rtol=1e-5, atol=1e-6)
  # The plain mean of the two flip runs (the mixes by agreement: the golden export's test).
  native, saved = (Interpolator.from_path(target, engine=e, flip_average=True)
                   for e in ('native', 'savedmodel'))
  np.testing.assert_allclose(saved(x[0], x[1]), native(x[0], x[1]), rtol=1e-5, atol=1e-6)
  # Recursion feeds those mid frames back as they are, through either engine.
  frames = [x[0][0], x[1][0]]
  np.testing.assert_allclose(np.stack(saved.recursive(frames, 2)),
                             np.stack(native.recursive(frames, 2)), rtol=1e-5, atol=1e-5)
  assert np.max(native.recursive(frames, 1)[1]) > 1.5
  # Called as it is, the export still says the smallest frame it runs (not a pooling error).
  unpadded = Interpolator.from_path(target, engine='savedmodel', align=None)
  with pytest.raises(ValueError, match=r'frames of 10x6 without padding are too small for this '
                                       r'model: it needs >= 16 px on each side'):
    unpadded(x[0][:, :6, :10], x[1][:, :6, :10])


def test_an_export_without_aux_outputs_gives_the_image_alone(tiny_export):
  interp, target = tiny_export
  assert not interp.options.use_aux_outputs
  loaded = tf.saved_model.load(target)
  x = np.random.default_rng(2).random((2, 1, 64, 64, 3), np.float32)
  out = loaded({'x0': x[0], 'x1': x[1], 'time': np.full((1, 1), 0.5, np.float32)})
  assert set(out) == {'image'}
  assert set(loaded.signatures['serving_default'].structured_outputs) == {'image'}
  np.testing.assert_allclose(out['image'], interp(x[0], x[1]), rtol=1e-5, atol=1e-6)
  # Said when the model loads (it was said at the first frame, after a pipeline's set-up).
  with pytest.raises(ValueError, match=r"needs the SavedModel's \['x0_warped', 'x1_warped'\]"):
    Interpolator.from_path(target, engine='savedmodel', flip_average=True,
                           flip_weights='agreement')
  equal = Interpolator.from_path(target, engine='savedmodel', flip_average=True,
                                 flip_weights='equal')
  assert equal(x[0], x[1]).shape == x[0].shape


def test_a_foreign_saved_model_is_called_as_it_is_with_no_size_check(tmp_path):
  """A SavedModel that is not film_net (no released names, no recorded options) but keeps its
  calling convention runs through engine='savedmodel', with no guess at its smallest frame."""
  class Blend(tf.Module):
    @tf.function
    def __call__(self, inputs, training=False):
      del training
      return {'image': (1 - inputs['time'][:, :, None, None]) * inputs['x0'] +
                       inputs['time'][:, :, None, None] * inputs['x1']}

  blend = Blend()
  image = tf.TensorSpec([None, None, None, 3])
  blend.__call__.get_concrete_function({'x0': image, 'x1': image,
                                        'time': tf.TensorSpec([None, 1])}, training=False)
  tf.saved_model.save(blend, str(tmp_path / 'blend'))
  blend = Interpolator.from_path(str(tmp_path / 'blend'), engine='savedmodel', align=None)
  assert blend.options is None
  x = np.random.default_rng(4).random((2, 1, 6, 10, 3), np.float32)
  np.testing.assert_allclose(blend(x[0], x[1]), (x[0] + x[1]) / 2, atol=1e-6)


def test_fingerprint_changes_with_any_weight():
  a = Interpolator.random(Options.tiny(), seed=0)
  b = Interpolator.random(Options.tiny(), seed=1)
  assert a.fingerprint != b.fingerprint
  w = a.net.released_weights()
  w['fusion/conv2d/bias'] = w['fusion/conv2d/bias'] + 1e-3
  assert weights_lib.fingerprint(w, a.options) != a.fingerprint


def test_export_load_gives_the_same_output_with_both_engines(golden, exported):
  _, x0, x1, expected = golden
  interp, target = exported
  native = Interpolator.from_path(target, align=None)  # The export says its options.
  assert native.options == interp.options and native.fingerprint == interp.fingerprint
  saved = Interpolator.from_path(target, align=None, engine='savedmodel')
  reference = interp(x0, x1)
  np.testing.assert_allclose(native(x0, x1), reference, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(saved(x0, x1), reference, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(saved(x0, x1), expected, rtol=1e-4, atol=1e-5)
  # Flip averaging (a transposed second run; the mix by agreement with the inputs' mean, the
  # built-in model's, goes through every step the other mixes take) and padding work the same
  # way through both: the engines differ only in how each run is computed.
  native, saved = (Interpolator.from_path(target, align=64, options=interp.options, engine=e,
                                          flip_average=True, flip_weights='agreement_with_average')
                   for e in ('native', 'savedmodel'))
  np.testing.assert_allclose(saved(x0, x1), native(x0, x1), rtol=1e-5, atol=1e-5)
  # So do tiles (2x2 of 128 px on this 200x144 pair): each tile is one whole-model call.
  native, saved = (Interpolator.from_path(target, align=64, options=interp.options, engine=e,
                                          tile=128)
                   for e in ('native', 'savedmodel'))
  tiled = saved(x0, x1)
  np.testing.assert_allclose(tiled, native(x0, x1), rtol=1e-5, atol=1e-5)
  whole = Interpolator.from_path(target, align=64, options=interp.options)(x0, x1)
  assert np.abs(tiled - whole).max() > 1e-3  # not the whole frame's mid frame


def test_native_loads_read_a_saved_models_checkpoint_without_loading_the_model(
    exported, tmp_path, monkeypatch):
  """The native engine reads a SavedModel's variables from its checkpoint by name, not through
  tf.saved_model.load, which restores every saved function first (most of a load's time).
  Exports before 2026-12-01 kept them in `film_variables`; a SavedModel laid out otherwise is
  still loaded whole, and says what it lacks."""
  real_load = tf.saved_model.load
  loads = []
  monkeypatch.setattr(tf.saved_model, 'load',
                      lambda *args, **kwargs: loads.append(args) or real_load(*args, **kwargs))
  interp, target = exported
  assert Interpolator.from_path(target, align=None).fingerprint == interp.fingerprint
  weights = Interpolator.random(Options.tiny(), seed=5).net.released_weights()
  as_variables = lambda: [tf.Variable(v, name=f'model/{name}') for name, v in weights.items()]
  options = tf.Variable(Options.tiny().to_json(), trainable=False, name='film_options')
  for listed in ('variables', 'film_variables'):
    tf.saved_model.save(tf.train.Checkpoint(**{listed: as_variables()}, film_options=options),
                        str(tmp_path / listed))
    read, read_options = weights_lib.read_saved_model(str(tmp_path / listed))
    assert read_options == Options.tiny() and sorted(read) == sorted(weights)
    for name in weights:
      np.testing.assert_array_equal(read[name], weights[name])
  assert loads == []
  tf.saved_model.save(tf.train.Checkpoint(**{f'v{i}': v for i, v in enumerate(as_variables())}),
                      str(tmp_path / 'unlisted'))
  with pytest.raises(ValueError, match='no variables with released film_net names'):
    weights_lib.read_saved_model(str(tmp_path / 'unlisted'))
  assert loads == [(str(tmp_path / 'unlisted'),)]
  # saved_model.pb of one save, variables/ of another (an overwrite cut short): not read as if
  # they belonged together (the options were lost), but loaded whole, which says what is wrong.
  tf.saved_model.save(tf.train.Checkpoint(variables=as_variables()), str(tmp_path / 'other'))
  shutil.rmtree(tmp_path / 'variables' / 'variables')
  shutil.copytree(tmp_path / 'other' / 'variables', tmp_path / 'variables' / 'variables')
  with pytest.raises(Exception):  # pylint: disable=broad-exception-caught
    weights_lib.read_saved_model(str(tmp_path / 'variables'))
  assert len(loads) == 2


def test_export_has_released_calling_convention_and_an_image_signature(golden, exported):
  _, x0, x1, expected = golden
  interp, target = exported
  loaded = tf.saved_model.load(target)
  # Weights are read as from a released model: `.variables`, under the released names.
  names = {f'{s.name}/{p}:0' for s in specs.conv_specs(interp.options) for p in ('kernel', 'bias')}
  assert {v.name for v in loaded.variables} == names
  assert {v.name for v in loaded.trainable_variables} == names
  inputs = {'x0': x0, 'x1': x1, 'time': np.full((1, 1), 0.5, np.float32)}
  out = loaded(inputs, training=False)
  assert {'image', 'x0_warped', 'forward_flow_pyramid'} <= set(out)
  np.testing.assert_allclose(out['image'].numpy(), expected, rtol=1e-4, atol=1e-5)
  served = loaded.signatures['serving_default'](**{k: tf.constant(v) for k, v in inputs.items()})
  np.testing.assert_allclose(served['image'].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_an_export_holds_the_network_once(exported):
  """`__call__` for each `training` and the serving signature each held a trace of the whole
  network: three copies to trace and save (an export of the built-in model took 15.5 s here, and
  its saved_model.pb was 2.2 MB; now 8.5 s and 0.9 MB)."""
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel
  _, target = exported
  saved = saved_model_pb2.SavedModel()
  with open(os.path.join(target, 'saved_model.pb'), 'rb') as f:
    saved.ParseFromString(f.read())
  convolutions = [sum(node.op == 'Conv2D' for node in function.node_def)
                  for function in saved.meta_graphs[0].graph_def.library.function]
  assert len([n for n in convolutions if n]) == 1  # one function holds the network


def test_options_are_inferred_from_weight_shapes(golden):
  path, *_ = golden
  weights, file_options = weights_lib.read_npz(path)
  assert file_options is None  # the fixtures are plain released-name .npz files
  inferred = weights_lib.infer_options(weights)
  assert inferred == Options(pyramid_levels=7, fusion_pyramid_levels=5, specialized_levels=3,
                             sub_levels=4, flow_convs=(3, 3, 3, 3), flow_filters=(8, 16, 32, 32),
                             filters=8)
  assert weights_lib.infer_options(Interpolator.random(Options.compact()).net.released_weights(),
                                   base=Options.compact()) == Options.compact()


def test_fusion_convs_are_mapped_by_creation_order_not_by_counter(golden, tmp_path):
  """A checkpoint whose fusion convs were numbered conv2d_7.. (other convs made first) loads."""
  path, x0, x1, expected = golden
  data = np.load(path)
  shifted = {}
  for key in data.files:
    if not key.startswith('weight/'):
      continue
    name = key[len('weight/'):]
    if name.startswith('fusion/conv2d'):
      layer, part = name.split('/')[1], name.split('/')[2]
      n = 0 if layer == 'conv2d' else int(layer.split('_')[1])
      name = f'fusion/conv2d_{n + 7}/{part}'
    shifted[f'weight/model/{name}'] = data[key]
  target = tmp_path / 'shifted.npz'
  np.savez(target, **shifted)
  interp = Interpolator.from_path(str(target), align=None)
  np.testing.assert_allclose(interp(x0, x1), expected, rtol=1e-4, atol=1e-5)


def test_broken_or_missing_models_fail_with_the_path_in_the_message(tmp_path):
  with pytest.raises(FileNotFoundError, match='does-not-exist'):
    Interpolator.from_path(str(tmp_path / 'does-not-exist.npz'))
  broken = tmp_path / 'broken.npz'
  broken.write_bytes(b'not a zip file')
  with pytest.raises(ValueError, match='broken.npz'):
    Interpolator.from_path(str(broken))
  other = tmp_path / 'other.npz'
  np.savez(other, something=np.zeros(3))
  with pytest.raises(ValueError, match='no film_net weights'):
    Interpolator.from_path(str(other))
  with pytest.raises(ValueError, match='engine'):
    Interpolator.from_path(str(other), engine='onnx')
  # A file the OS will not let be read (no permission) says so; it read as "not a zip archive
  # ... a truncated download". (As root, which runs the tests, the refusal is a folder's.)
  with pytest.raises(IsADirectoryError):
    weights_lib.read_npz(str(tmp_path))


def test_a_damaged_meta_is_refused_not_run_another_way(tmp_path):
  """A meta entry not a JSON object was passed over (the model ran without its recorded
  settings) or an AttributeError; `"flip_average": "false"`, a string, turned flip averaging on."""
  weights = Interpolator.random(Options.tiny(), seed=0).net.released_weights()
  good = str(tmp_path / 'good.npz')
  weights_lib.save(good, weights, Options.tiny(), meta={'inference': {'flip_average': False}})
  assert Interpolator.from_path(good).flip_average is False
  with np.load(good) as data:
    entries = dict(data)
  for meta, reason in (('{not json', 'its meta entry is not a JSON object'),
                       ('["a", "list"]', 'its meta entry is not a JSON object'),
                       ('{"inference": {"flip_average": "false"}}', "inference entry is not as"),
                       ('{"inference": {"padding": null}}', "inference entry is not as"),
                       ('{"inference": "mirror"}', "inference entry is not as")):
    path = tmp_path / 'damaged.npz'
    np.savez(path, **{**entries, 'meta': np.array(meta)})
    with pytest.raises(ValueError) as raised:
      Interpolator.from_path(str(path))
    assert str(raised.value).startswith(f'cannot load film_net model from {path}: ') and (
        reason in str(raised.value)), (meta, raised.value)
    # Averaged or trained from (`--init`), it was carried on into every file made from it.
    with pytest.raises(weights_lib.DamagedMeta, match=reason):
      weights_lib.read_model(str(path))


def test_remote_paths_are_those_beam_reads_through_a_filesystem():
  """`'://' in path` took a local `out/a://b` for remote, where Beam writes it locally."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel
  for path in ('gs://b/m.npz', ' gs://b/m', 'S3+x.y-z://b', 'out/a://b', 'model.npz', '/m',
               '1gs://b', 'gs:/b', ''):
    assert weights_lib.is_remote(path) == (FileSystems.get_scheme(path) is not None), path


def test_models_load_from_gcs_paths(gcs, tiny_export, tmp_path):
  interp, target = tiny_export
  x0, x1 = np.random.default_rng(5).random((2, 1, 40, 56, 3), np.float32)
  for root, _, files in os.walk(target):
    for name in files:
      rel = os.path.relpath(os.path.join(root, name), target)
      gcs.blob(f'models/v[2] sm/{rel}').upload_from_filename(os.path.join(root, name))
  local_file = str(tmp_path / 'w.npz')
  interp.save(local_file)
  gcs.blob('models/w.npz').upload_from_filename(local_file)

  # A folder name with glob characters is read literally.
  from_dir = Interpolator.from_path('gs://film-test/models/v[2] sm', align=None,
                                    engine='savedmodel')
  from_file = Interpolator.from_path('gs://film-test/models/w.npz', align=None)
  reference = Interpolator.from_path(target, align=None)(x0, x1)
  np.testing.assert_allclose(from_dir(x0, x1), reference, rtol=1e-5, atol=1e-6)
  # An export at a bucket's root: Beam raised asking whether the root is a file.
  root = gcs.client.create_bucket('film-test-model-root')
  for name in os.listdir(target) + ['variables/' + n for n in os.listdir(f'{target}/variables')]:
    if os.path.isfile(os.path.join(target, name)):
      root.blob(name).upload_from_filename(os.path.join(target, name))
  np.testing.assert_allclose(Interpolator.from_path(f'gs://{root.name}', align=None)(x0, x1),
                             reference, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(from_file(x0, x1), reference)
  interp.save('gs://film-test/models/saved_remotely.npz')
  assert Interpolator.from_path('gs://film-test/models/saved_remotely.npz').fingerprint == \
      interp.fingerprint
  # An export went through TensorFlow's own gs:// client, which knows no storage emulator (nor
  # Beam's credentials): "Could not resolve host".
  interp.export_saved_model('gs://film-test/models/exported [3]')
  np.testing.assert_allclose(Interpolator.from_path('gs://film-test/models/exported [3]',
                                                    align=None)(x0, x1), reference,
                             rtol=1e-5, atol=1e-6)
  # Exported again over itself: the earlier export's files go first, none stays to mix in.
  gcs.blob('models/exported [3]/variables/variables.data-00001-of-00002').upload_from_string(b'')
  interp.export_saved_model('gs://film-test/models/exported [3]')
  assert not gcs.blob('models/exported [3]/variables/variables.data-00001-of-00002').exists()
  assert gcs.blob('models/exported [3]/saved_model.pb').exists()
  gcs.blob('models/notes/readme.txt').upload_from_string(b'mine')
  with pytest.raises(ValueError, match=r'holds files other than a SavedModel \(readme.txt\)'):
    interp.export_saved_model('gs://film-test/models/notes')
  assert gcs.blob('models/notes/readme.txt').exists()
  # A folder holding an export in a subfolder is no export: all of gs://.../models went.
  with pytest.raises(ValueError, match='holds files other than a SavedModel'):
    interp.export_saved_model('gs://film-test/models')
  assert gcs.blob('models/w.npz').exists() and gcs.blob('models/notes/readme.txt').exists()
  # Over a weight file, the export was uploaded below its name, which then loaded as the export.
  with pytest.raises(ValueError, match='models/w.npz is a file, not a folder'):
    interp.export_saved_model('gs://film-test/models/w.npz')
  with pytest.raises(ValueError, match='holds files other than a SavedModel'):  # (the bucket's
    interp.export_saved_model('gs://film-test/')  # root was Beam's "no object name")
  assert not list(gcs.list_blobs(prefix='models/w.npz/'))


def test_an_export_over_a_weight_file_is_refused_not_the_file_hidden(tmp_path):
  """The file was moved aside to a hidden `.tmp-export-*-old` and the export took its name."""
  path = tmp_path / 'model.npz'
  interp = Interpolator.random(Options.tiny(), seed=1)
  interp.save(str(path))
  before = path.read_bytes()
  with pytest.raises(ValueError, match='model.npz is a file, not a folder'):
    interp.export_saved_model(str(path))
  assert path.read_bytes() == before and os.listdir(tmp_path) == ['model.npz']


def test_an_export_replaces_an_earlier_one_whole_or_not_at_all(tmp_path, monkeypatch):
  """TensorFlow saves into the folder in place: an export stopped midway over an earlier one
  left the new variables beside the old graph (neither model loaded), and one that ended left
  the earlier export's other files in it."""
  from tensorflow.python.saved_model import save as tf_save  # pylint: disable=import-outside-toplevel
  old = Interpolator.random(dataclasses.replace(Options.tiny(), filters=8), seed=1)
  new = Interpolator.random(Options.tiny(), seed=2)
  out = tmp_path / 'model'
  old.export_saved_model(str(out))
  real = tf_save.file_io.atomic_write_string_to_file

  def stopped_before_the_graph(path, *args, **kwargs):  # a Ctrl-C just after the variables
    if str(path).endswith('saved_model.pb'):
      raise KeyboardInterrupt
    return real(path, *args, **kwargs)

  monkeypatch.setattr(tf_save.file_io, 'atomic_write_string_to_file', stopped_before_the_graph)
  with pytest.raises(KeyboardInterrupt):
    new.export_saved_model(str(out))
  monkeypatch.undo()
  assert Interpolator.from_path(str(out)).fingerprint == old.fingerprint
  assert sorted(p.name for p in tmp_path.iterdir()) == ['model']  # no staging folder left
  (out / 'variables' / 'variables.data-00001-of-00002').write_bytes(b'')  # an older export's
  new.export_saved_model(str(out))
  assert Interpolator.from_path(str(out)).fingerprint == new.fingerprint
  assert not (out / 'variables' / 'variables.data-00001-of-00002').exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == ['model']
  mine = tmp_path / 'mine'
  mine.mkdir()
  (mine / 'notes.txt').write_text('keep')
  with pytest.raises(ValueError, match=r'holds files other than a SavedModel \(notes.txt\)'):
    new.export_saved_model(str(mine))
  assert [p.name for p in mine.iterdir()] == ['notes.txt']
  # An export with someone's files beside it (exports once wrote into any folder) is kept.
  (out / 'my_finetune.npz').write_bytes(b'')
  with pytest.raises(ValueError, match=r'other than a SavedModel \(my_finetune.npz\)'):
    old.export_saved_model(str(out))
  assert Interpolator.from_path(str(out)).fingerprint == new.fingerprint
  (out / 'my_finetune.npz').unlink()


def test_an_export_through_a_link_replaces_the_export_it_leads_to_readable_by_all(
    tmp_path, monkeypatch):
  """The link itself was moved aside (and left as `.tmp-export-*-old`); the folder came out
  owner-only (mkdtemp's mode), which a TF Serving container as another user cannot read; a stop
  between moving the old export aside and the new one in left none."""
  old = Interpolator.random(Options.tiny(), seed=1)
  new = Interpolator.random(Options.tiny(), seed=2)
  real, link = tmp_path / 'real', tmp_path / 'link'
  previous = os.umask(0o022)
  try:
    old.export_saved_model(str(real))
    assert (real.stat().st_mode & 0o777) == 0o755
    os.chmod(real, 0o775)
    os.symlink(real, link)
    new.export_saved_model(str(link))
  finally:
    os.umask(previous)
  assert link.is_symlink() and (real.stat().st_mode & 0o777) == 0o775
  assert Interpolator.from_path(str(real)).fingerprint == new.fingerprint
  assert sorted(p.name for p in tmp_path.iterdir()) == ['link', 'real']
  renames = []

  def stopped_second(src, dst, real_rename=os.rename):
    renames.append(dst)
    if len(renames) == 2:  # the new one in: stopped there
      raise KeyboardInterrupt
    real_rename(src, dst)

  monkeypatch.setattr(os, 'rename', stopped_second)
  with pytest.raises(KeyboardInterrupt):
    old.export_saved_model(str(real))
  monkeypatch.undo()
  assert Interpolator.from_path(str(real)).fingerprint == new.fingerprint
  assert sorted(p.name for p in tmp_path.iterdir()) == ['link', 'real']


def test_what_a_killed_export_left_goes_with_the_next_export_beside_it(tmp_path):
  """`kill -9` (or a machine's restart) mid-export runs no `finally`: its staging folder, a
  hidden copy of a model in part, stayed beside --output for good, one more each time. The next
  export removes those of processes gone, not those of exports still running."""
  killed = subprocess.Popen(  # an export stopped for good while TensorFlow writes the variables
      [sys.executable, '-c', textwrap.dedent(f"""
          import sys, time, tensorflow as tf
          from film_net import Interpolator, Options
          def save(module, folder, signatures):
            open(folder + '/saved_model.pb', 'wb').close()
            print('saving', flush=True)
            time.sleep(600)
          tf.saved_model.save = save
          Interpolator.random(Options.tiny(), seed=1).export_saved_model({str(tmp_path / 'a')!r})
          """)], stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(
              os.path.abspath(__file__))))
  try:
    assert killed.stdout.readline() == 'saving\n'
  finally:
    killed.kill()
    killed.wait()
  left = [p.name for p in tmp_path.iterdir()]
  assert len(left) == 1 and left[0].startswith('.tmp-export-')
  running = left[0].replace(f'-{killed.pid}-', f'-{os.getpid()}-')  # (this process: running)
  elsewhere = '.tmp-export-another_machine-1-1-abc'
  # Another container of the same host name: its process ids are not this one's to look up.
  host, _ = left[0].split(f'-{killed.pid}-')[0].rsplit('-', 1)
  container = f'{host}-1-{killed.pid}-abc'
  for name in (running, elsewhere, container):
    (tmp_path / name / 'variables').mkdir(parents=True)
  Interpolator.random(Options.tiny(), seed=2).export_saved_model(str(tmp_path / 'b'))
  names = sorted(p.name for p in tmp_path.iterdir())
  assert names == sorted([elsewhere, running, container, 'b']) and left[0] not in names


def test_exports_in_shared_and_administered_folders(tmp_path, monkeypatch, caplog):
  """A group's shared folder (set-group-ID): the export's folder lost the bit, so its files took
  the user's own group, unreadable to the group under umask 007; in one that may be written but
  not listed (a drop box), the sweep of killed exports' folders failed the export. A folder of
  one's own in a folder one may not write: refused by a bare PermissionError naming the hidden
  staging folder, after the model was traced. An export of another user's replaced: left,
  moved aside, without a word. (The refusals are made as the kernel makes them for a user
  without the permission: root has them all.)"""
  from film_net import export  # pylint: disable=import-outside-toplevel
  interp = Interpolator.random(Options.tiny(), seed=1)
  shared, administered = tmp_path / 'shared', tmp_path / 'models'
  shared.mkdir()
  os.chmod(shared, 0o2775)
  real_listdir, real_mkdtemp = os.listdir, tempfile.mkdtemp

  def listdir(path='.'):
    if os.fspath(path) == str(shared):
      raise PermissionError(13, 'Permission denied', os.fspath(path))
    return real_listdir(path)

  def mkdtemp(*args, dir=None, **kwargs):  # pylint: disable=redefined-builtin
    if dir == str(administered):
      raise PermissionError(13, 'Permission denied', os.path.join(dir, 'tmp'))
    return real_mkdtemp(*args, dir=dir, **kwargs)
  monkeypatch.setattr(os, 'listdir', listdir)
  monkeypatch.setattr(export.tempfile, 'mkdtemp', mkdtemp)
  monkeypatch.setattr(export, '_traced', lambda *args, real=export._traced: (
      pytest.fail('traced') if administered.exists() else real(*args)))
  interp.export_saved_model(str(shared / 'model'))
  assert all(os.stat(folder).st_mode & stat.S_ISGID for folder in (
      shared / 'model', shared / 'model' / 'variables'))
  (administered / 'mine').mkdir(parents=True)
  with pytest.raises(PermissionError) as refused:  # (before the model is traced)
    interp.export_saved_model(str(administered / 'mine'))
  assert str(refused.value) == (
      "[Errno 13] cannot write the export beside it (Permission denied: an export is written "
      f"aside and moved in whole): name a folder in a folder you may write: "
      f"'{administered / 'mine'}'")
  assert not os.listdir(administered / 'mine')
  monkeypatch.undo()

  def rmtree(path, ignore_errors=False, onerror=None, real_rmtree=shutil.rmtree):
    if not path.endswith('-old'):
      return real_rmtree(path, ignore_errors, onerror)
    # the files of another user's, in folders not this user's
    return onerror(os.unlink, os.path.join(path, 'saved_model.pb'),
                   (PermissionError, PermissionError(13, 'Permission denied'), None))
  monkeypatch.setattr(export.shutil, 'rmtree', rmtree)
  with caplog.at_level('WARNING', logger='film_net.export'):
    Interpolator.random(Options.tiny(), seed=2).export_saved_model(str(shared / 'model'))
  (left,) = [p for p in shared.iterdir() if p.name.endswith('-old')]
  assert caplog.messages == [f'the export replaced, moved aside to {left}, could not be removed '
                             f'(Permission denied: {left}/saved_model.pb): remove it by hand']


def test_the_export_command_writes_a_saved_model_that_runs_as_the_file(tiny_model, tmp_path,
                                                                       capsys):
  """`python -m film_net.export` printed nothing, wrote nothing and exited 0 (no command line)."""
  from film_net import export  # pylint: disable=import-outside-toplevel
  model_path, interp = tiny_model
  out = str(tmp_path / 'saved')
  assert export.main(['--model', model_path, '--output', out]) == 0
  assert f'wrote a SavedModel of {model_path} to {out}' in capsys.readouterr().out
  x = np.random.default_rng(7).random((2, 1, 24, 40, 3), np.float32)
  np.testing.assert_allclose(Interpolator.from_path(out)(x[0], x[1]), interp(x[0], x[1]),
                             rtol=1e-5, atol=1e-5)
  loaded = tf.saved_model.load(out)
  image = loaded({'x0': x[0], 'x1': x[1], 'time': np.full((1, 1), 0.5, np.float32)},
                 training=False)['image']
  assert image.shape == (1, 24, 40, 3)
  with pytest.raises(SystemExit) as stop:
    export.main(['--model', str(tmp_path / 'gone.npz'), '--output', out])
  assert stop.value.code == 2 and 'gone.npz: no such file or folder' in capsys.readouterr().err
  (tmp_path / 'a_file').write_text('')  # a folder below a file cannot be made: a usage error
  with pytest.raises(SystemExit) as stop:
    export.main(['--model', model_path, '--output', str(tmp_path / 'a_file' / 'x')])
  assert stop.value.code == 2 and capsys.readouterr().err.endswith(
      f'error: --output {tmp_path / "a_file" / "x"}: {tmp_path / "a_file"} is a file, not a '
      f'folder\n')


def test_options_given_against_the_files_are_said(tmp_path, caplog):
  """Given with another pyramid depth (which the weight shapes cannot tell), the file's model ran
  otherwise without a word."""
  path = str(tmp_path / 'tiny.npz')
  Interpolator.random(Options.tiny(), seed=0).save(path)
  Interpolator.from_path(path, options=Options.tiny())
  assert not caplog.records
  deeper = dataclasses.replace(Options.tiny(), pyramid_levels=Options.tiny().pyramid_levels + 1)
  assert Interpolator.from_path(path, options=deeper).options == deeper
  (record,) = caplog.records
  assert record.getMessage() == (
      f"{path}: running with the options given, not those it records (pyramid_levels "
      f"{deeper.pyramid_levels}, the file's {Options.tiny().pyramid_levels})")


def test_the_fingerprint_is_of_the_options_too():
  """The pipeline's done markers are keyed by it: the same weights run at another depth are
  another model, whose frames must not pass for the first's."""
  weights = Interpolator.random(Options.tiny(), seed=0).net.released_weights()
  deeper = dataclasses.replace(Options.tiny(), pyramid_levels=Options.tiny().pyramid_levels + 1)
  assert weights_lib.fingerprint(weights, deeper) != weights_lib.fingerprint(weights,
                                                                            Options.tiny())


def test_options_inferred_from_weights_at_the_edges():
  """Eight fusion levels (the pyramid at least as deep), and a predictor without 3x3 convs."""
  opts = dataclasses.replace(Options.tiny(), pyramid_levels=8, fusion_pyramid_levels=8)
  inferred = weights_lib.infer_options(Interpolator.random(opts, seed=0).net.released_weights())
  assert (inferred.pyramid_levels, inferred.fusion_pyramid_levels) == (8, 8)
  opts = dataclasses.replace(Options.tiny(), flow_convs=(0, 1, 1))
  weights = Interpolator.random(opts, seed=0).net.released_weights()
  assert weights_lib.infer_options(weights, base=opts) == opts


def test_a_released_name_is_found_by_whole_scopes_only():
  assert weights_lib.canonical_name('model/fusion/conv2d/kernel:0') == 'fusion/conv2d/kernel'
  assert weights_lib.canonical_name('extra_fusion/conv2d/kernel:0') is None
  assert weights_lib.canonical_name('my_feat_net/x/kernel:0') is None


def test_a_saved_model_is_uploaded_with_its_graph_last(tmp_path, monkeypatch):
  """A worker that reads the export mid-upload finds no saved_model.pb, not one without its
  variables."""
  import contextlib  # pylint: disable=import-outside-toplevel
  import io  # pylint: disable=import-outside-toplevel
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel
  (tmp_path / 'variables').mkdir()
  for name in ('saved_model.pb', 'variables/variables.index', 'variables/z.data',
               'fingerprint.pb'):
    (tmp_path / name).write_bytes(b'x')
  order = []

  @contextlib.contextmanager
  def create(path, *_, **__):
    order.append(path)
    yield io.BytesIO()
  monkeypatch.setattr(FileSystems, 'create', staticmethod(create))
  weights_lib.upload_tree(str(tmp_path), 'gs://b/m')
  assert len(order) == 4 and order[-1] == 'gs://b/m/saved_model.pb'
