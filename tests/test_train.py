"""Training: loss goes down, and an interrupted run resumes to the same weights."""
import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from film_net import Interpolator, Options
from film_net import specs
from film_net import train
from film_net import training
from film_net import weights as weights_lib
from film_net.model import FilmNet
from transforms.clips import clip_triplets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = json.dumps(Options.tiny().to_dict())


def _args(out_dir, steps, *extra):
  return ['--output_dir', str(out_dir), '--options', TINY, '--steps', str(steps),
          '--batch_size', '2', '--crop', '32', '--max_motion', '4', '--lr', '3e-3',
          '--init', 'none', '--log_every', '1', '--checkpoint_every', '3', *extra]


def _l1(interp, batch):
  x0, y, x1 = batch
  return float(np.abs(interp(x0, x1) - y).mean())


@pytest.fixture(scope='module')
def float32_run(tmp_path_factory):
  """One 40-step run from fresh weights, shared by the tests that need it: (folder, its log)."""
  folder = tmp_path_factory.mktemp('float32')
  log = io.StringIO()
  with contextlib.redirect_stdout(log):
    assert train.main(_args(folder, 40)) == 0
  return folder, log.getvalue()


@pytest.fixture(scope='module')
def short_runs(tmp_path_factory):
  """Plain runs of 3 and 6 steps from fresh weights, shared by the tests that start from or
  compare with one ({steps: folder}); a test that trains on in one works on its own copy. The
  6-step run keeps step 5 (`--keep_every 5`, between its checkpoints at 3 and 6)."""
  runs = {}
  for steps, extra in ((3, []), (6, ['--keep_every', '5'])):
    runs[steps] = tmp_path_factory.mktemp(f'steps{steps}')
    with contextlib.redirect_stdout(io.StringIO()):
      assert train.main(_args(runs[steps], steps, *extra)) == 0
  return runs


@pytest.fixture(scope='module')
def resumed_to_5(short_runs, tmp_path_factory):
  """The 3-step run, as if interrupted there, resumed by a run to step 5: (folder, its log)."""
  folder = _copy(short_runs[3], tmp_path_factory.mktemp('resumed') / 'run')
  log = io.StringIO()
  with contextlib.redirect_stdout(log):
    assert train.main(_args(folder, 5)) == 0  # a new run picks up the checkpoint
  return folder, log.getvalue()


def _copy(run, folder):
  shutil.copytree(run, folder)
  return folder


def test_a_few_steps_lower_the_loss(float32_run):
  held_out = training.make_batch(seed=123, step=0, batch_size=8, crop=32, max_motion=4)
  before = Interpolator.random(Options.tiny(), seed=0, align=None)  # the trainer's init
  folder, log = float32_run
  after = Interpolator.from_path(str(folder / 'latest.npz'), align=None)
  assert _l1(after, held_out) < 0.8 * _l1(before, held_out)
  assert 'step 40/40' in log and 'steps/s' in log and 'loss' in log


def test_bfloat16_training_lowers_the_loss_and_stays_near_the_float32_run(tmp_path, float32_run):
  held_out = training.make_batch(seed=123, step=0, batch_size=8, crop=32, max_motion=4)
  before = Interpolator.random(Options.tiny(), seed=0, align=None)
  runs = {'float32': str(float32_run[0] / 'latest.npz')}
  assert train.main(_args(tmp_path / 'bfloat16', 40, '--precision', 'bfloat16')) == 0
  runs['bfloat16'] = str(tmp_path / 'bfloat16' / 'latest.npz')
  for precision, path in runs.items():
    assert weights_lib.read_meta(path).get('precision') == (
        None if precision == 'float32' else precision)
  # The exported weights are float32 and run at float32 like any others.
  exact, rounded = (Interpolator.from_path(runs[p], align=None) for p in ('float32', 'bfloat16'))
  loss = {'before': _l1(before, held_out), 'float32': _l1(exact, held_out),
          'bfloat16': _l1(rounded, held_out)}
  assert loss['bfloat16'] < 0.8 * loss['before'], loss
  assert abs(loss['bfloat16'] - loss['float32']) < 0.1 * loss['float32'], loss
  a, _ = weights_lib.read_npz(runs['float32'])
  b, _ = weights_lib.read_npz(runs['bfloat16'])
  assert any(not np.array_equal(a[name], b[name]) for name in a)  # it did round


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(
    short_runs, resumed_to_5):
  resumed, log = resumed_to_5
  assert 'resumed' in log and 'step 4/5' in log and 'step 1/' not in log
  straight, _ = weights_lib.read_npz(str(short_runs[6] / 'step_5.npz'))  # kept on the way to 6
  again, _ = weights_lib.read_npz(str(resumed / 'latest.npz'))
  meta = weights_lib.read_meta(str(resumed / 'latest.npz'))
  assert meta['steps'] == 5 and meta['trainer'] == 'film_net.train'  # (as the GPU trainer's say)
  for name in straight:
    np.testing.assert_allclose(again[name], straight[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_without_a_checkpoint_training_starts_from_given_weights(tmp_path, capsys, short_runs):
  # A shipped file says how its model runs; training on from it keeps that, and resuming too.
  start = str(tmp_path / 'start.npz')
  shutil.copyfile(short_runs[3] / 'latest.npz', start)
  weights, options = weights_lib.read_npz(start)
  meta = {**weights_lib.read_meta(start), 'inference': {'flip_average': True}, 'seconds': 9e4}
  weights_lib.save(start, weights, options, meta=meta)
  second = tmp_path / 'second'
  argv = _args(second, 4)
  argv[argv.index('--init') + 1] = start
  assert train.main(argv) == 0
  assert 'started from' in capsys.readouterr().out
  assert weights_lib.read_meta(str(second / 'latest.npz'))['seconds'] < 600  # its own time
  argv[argv.index('--steps') + 1] = '5'
  assert train.main(argv) == 0
  assert 'resumed' in capsys.readouterr().out
  meta = weights_lib.read_meta(str(second / 'latest.npz'))
  assert meta['steps'] == 5 and meta['inference'] == {'flip_average': True}
  assert weights_lib.inference_defaults(str(second / 'latest.npz'))['flip_average']
  # A save killed before meta.json was written (or meta.json lost): the resume still finds how
  # the model runs, in the exported file.
  os.remove(second / 'meta.json')
  argv[argv.index('--steps') + 1] = '6'
  assert train.main(argv) == 0
  assert weights_lib.read_meta(str(second / 'latest.npz'))['inference'] == {'flip_average': True}


def test_training_can_go_on_with_a_deeper_pyramid_from_the_same_weights(
    tmp_path, capsys, short_runs):
  first = short_runs[3]
  deeper = Options.from_dict({**Options.tiny().to_dict(), 'pyramid_levels': 5})
  argv = _args(tmp_path / 'deeper', 4)
  argv[argv.index('--options') + 1] = deeper.to_json()
  argv[argv.index('--init') + 1] = str(first / 'latest.npz')
  assert train.main(argv) == 0
  assert '(step 3)' in capsys.readouterr().out
  a, _ = weights_lib.read_npz(str(first / 'latest.npz'))
  b, options = weights_lib.read_npz(str(tmp_path / 'deeper' / 'latest.npz'))
  assert options == deeper
  for name in a:  # one Adam step (lr 3e-3) away from the weights it started from
    np.testing.assert_allclose(b[name], a[name], rtol=0, atol=2 * 3e-3, err_msg=name)
  # Other convolutions need other weights: a file named is refused (training from random
  # weights was not what was asked for); the built-in model, `--init default`, passed over.
  wider = Options.from_dict({**Options.tiny().to_dict(), 'filters': 6})
  trainer = train.Trainer(wider, str(tmp_path / 'wider'), 3e-3, 20000, 0.5, seed=0)
  with pytest.raises(SystemExit, match=r'--init .*latest.npz: its options \(.*\) differ from '
                                       r'--options .* or --init none'):
    trainer.restore(str(first / 'latest.npz'))
  assert trainer.restore(weights_lib.DEFAULT_MODEL).startswith('started from random weights')
  assert 'options differ' in capsys.readouterr().out


def test_an_init_file_that_is_no_weight_file_is_one_line(tmp_path):
  (tmp_path / 'notes.npz').write_text('not weights')
  good, _ = _weight_file_at_step(tmp_path, 5)
  with open(good, 'rb') as f:
    (tmp_path / 'cut.npz').write_bytes(f.read()[:300])
  np.savez(tmp_path / 'foreign.npz', x=np.zeros(3))
  for name, says in (('notes.npz', 'not a readable .npz weight file'),
                     ('cut.npz', 'not a readable .npz weight file'),
                     ('foreign.npz', 'no film_net weights found')):
    with pytest.raises(SystemExit, match=f'^error: --init .*{name}: .*{says}'):
      training.read_init(str(tmp_path / name), Options.tiny())


def test_a_saved_model_folder_is_an_init_as_it_is_a_model_path(tmp_path):
  """--model_path takes FILM's released SavedModels everywhere; --init refused them as 'not a
  readable .npz weight file', so the released weights could not be fine-tuned."""
  model = Interpolator.random(Options.tiny(), seed=4, flip_average=True, padding='mirror',
                               flip_weights='agreement_with_average')
  model.export_saved_model(str(tmp_path / 'saved'))
  loaded, meta = training.read_init(str(tmp_path / 'saved'), Options.tiny())
  want = model.net.released_weights()
  # An export of the built-in model records how it runs; the file trained from it runs so too.
  assert sorted(loaded) == sorted(want) and meta == {'inference': {
      'flip_average': True, 'padding': 'mirror', 'flip_weights': 'agreement_with_average'}}
  assert training.carried_meta(meta) == meta
  for name, value in want.items():
    np.testing.assert_array_equal(loaded[name], value)
  with pytest.raises(SystemExit, match=r'^error: --init .*saved: its options \(.*\) differ'):
    training.read_init(str(tmp_path / 'saved'),
                       Options.from_dict({**Options.tiny().to_dict(), 'filters': 8}))


def test_a_plain_init_file_of_other_widths_is_refused_by_its_shapes(tmp_path):
  """A file without options (the released names alone, as the fixtures hold them) skipped the
  check and failed in a traceback deep in the model; of the same widths it is taken."""
  for filters in (8, Options.tiny().filters):
    options = Options.from_dict({**Options.tiny().to_dict(), 'filters': filters})
    weights = FilmNet(options, seed=0).released_weights()
    path = str(tmp_path / f'plain{filters}.npz')
    np.savez(path, **{f'weight/{name}:0': value for name, value in weights.items()})
    if filters == 8:
      with pytest.raises(SystemExit, match=r'^error: --init .*plain8.npz: its options \(.*\) '
                                           r'differ from --options'):
        training.read_init(path, Options.tiny())
    else:
      loaded, _ = training.read_init(path, Options.tiny())
      assert sorted(loaded) == sorted(weights)


def test_batches_are_a_function_of_seed_and_step():
  a = training.make_batch(seed=1, step=7, batch_size=2, crop=32, max_motion=4)
  b = training.make_batch(seed=1, step=7, batch_size=2, crop=32, max_motion=4)
  c = training.make_batch(seed=1, step=8, batch_size=2, crop=32, max_motion=4)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a[0], c[0])
  assert all(x.shape == (2, 32, 32, 3) and x.dtype == np.float32 for x in a)
  extended = training.make_batch(seed=1, step=7, batch_size=2, crop=32, max_motion=4,
                                 small_objects=2, regular_share=0.5, motion_blur=0.5)
  np.testing.assert_array_equal(
      extended[1], training.make_batch(1, 7, 2, 32, 4, small_objects=2, regular_share=0.5,
                                       motion_blur=0.5)[1])
  assert not np.array_equal(a[1], extended[1])  # the scene options reach the renderer


def test_views_per_scene_fills_several_slots_with_one_scene_seen_differently():
  x0, y, x1 = training.make_batch(seed=2, step=3, batch_size=4, crop=32, max_motion=4,
                                  views_per_scene=2)
  again = training.make_batch(seed=2, step=3, batch_size=4, crop=32, max_motion=4,
                              views_per_scene=2)
  np.testing.assert_array_equal(y, again[1])
  def same_scene(a, b):  # b is one of a's flips and rotations
    turns = [np.rot90(a, k) for k in range(4)]
    return any(np.array_equal(b, t) for t in turns + [t[:, ::-1] for t in turns])
  assert same_scene(y[0], y[1]) and same_scene(y[2], y[3])  # two scenes, two views each
  assert not np.array_equal(y[0], y[1]) and not same_scene(y[0], y[2])
  # One view per scene draws the batches it always did (the model card's commands).
  plain = training.make_batch(seed=2, step=3, batch_size=4, crop=32, max_motion=4)
  assert not same_scene(plain[1][0], plain[1][1])
  with pytest.raises(ValueError, match='must divide batch_size 3'):
    training.make_batch(seed=2, step=3, batch_size=3, crop=32, max_motion=4, views_per_scene=2)
  with pytest.raises(SystemExit):
    train.parse_args(['--output_dir', 'x', '--steps', '1', '--batch_size', '4',
                      '--views_per_scene', '3'])


def test_the_trainer_takes_its_batches_with_the_views_per_scene_asked_for(tmp_path, short_runs):
  assert train.main(_args(tmp_path / 'two', 3, '--views_per_scene', '2')) == 0
  one, _ = weights_lib.read_npz(str(short_runs[3] / 'latest.npz'))  # one view per scene
  two, _ = weights_lib.read_npz(str(tmp_path / 'two' / 'latest.npz'))
  assert any(not np.array_equal(one[name], two[name]) for name in one)  # other batches
  assert weights_lib.read_meta(str(short_runs[3] / 'latest.npz'))['data'] == 'rendered'
  assert weights_lib.read_meta(str(tmp_path / 'two' / 'latest.npz'))['data'] == (
      'rendered, 2 views per triplet')


def test_blend_initialisation_starts_at_the_frame_average():
  interp = Interpolator.random(Options.compact(), seed=0, align=None)
  random = interp.net.released_weights()
  blended = training.blend_initialised(random, Options.compact())
  output = specs.fusion_conv_names(Options.compact())[-1] + '/kernel'
  assert not np.array_equal(random[output], blended[output])  # a copy; the input is unchanged
  interp.net.set_released_weights(blended)
  x0, _, x1 = training.make_batch(seed=5, step=0, batch_size=2, crop=64, max_motion=8)
  np.testing.assert_allclose(interp(x0, x1), (x0 + x1) / 2, atol=1e-5)
  assert training.blend_initialised(random, Options.compact(), 'glorot') is None
  # Too few fusion filters to pass both frames through: left as it is.
  tiny = Interpolator.random(Options.tiny()).net.released_weights()
  assert training.blend_initialised(tiny, Options.tiny()) is None


def _weight_file_at_step(tmp_path, steps):
  """Tiny random weights saved as if a run had reached `steps`; returns (path, weights)."""
  weights = FilmNet(Options.tiny(), seed=0, name='film_net').released_weights()
  path = str(tmp_path / 'init.npz')
  weights_lib.save(path, weights, Options.tiny(), meta={'steps': steps})
  return path, weights


@pytest.fixture(scope='module')
def from_a_file(tmp_path_factory):
  """Runs from tiny random weights saved as if a run had reached step 10000: ({name: folder},
  the start weights). 'straight' goes to 10006 keeping every step, 'resumed' stops at 10003
  and goes on to 10006, 'legacy' makes one step with --legacy_adam_count."""
  folder = tmp_path_factory.mktemp('from_a_file')
  init, start = _weight_file_at_step(folder, 10000)
  runs = {}
  for name, stops, extra in (('straight', [10006], ['--keep_every', '1']),
                             ('resumed', [10003, 10006], []),
                             ('legacy', [10001], ['--legacy_adam_count'])):
    runs[name] = folder / name
    for steps in stops:
      argv = _args(runs[name], steps, *extra)
      argv[argv.index('--init') + 1] = init
      with contextlib.redirect_stdout(io.StringIO()):
        assert train.main(argv) == 0
  return runs, start


def test_a_run_from_a_weight_file_restarts_adam_but_keeps_the_global_learning_rate(from_a_file):
  """From a file at step 10000, Adam's first step moves each weight by at most the learning
  rate at step 10000 (its moments and bias correction restart); counting on from 10000 (the old
  behaviour, kept to reproduce earlier runs) makes it ~3x larger."""
  runs, start = from_a_file
  lr = 3e-3 * 0.5 ** (10000 / 20000)  # --lr 3e-3 decayed by the default schedule
  largest = {}
  for name, path in (('fresh', runs['straight'] / 'step_10001.npz'),
                     ('legacy', runs['legacy'] / 'latest.npz')):
    assert weights_lib.read_meta(str(path))['steps'] == 10001
    after, _ = weights_lib.read_npz(str(path))
    largest[name] = max(float(np.abs(after[n] - start[n]).max()) for n in start)
  assert 0.98 * lr < largest['fresh'] < 1.001 * lr
  assert largest['legacy'] > 2.5 * lr


def test_a_run_from_a_weight_file_resumes_to_the_same_weights(from_a_file):
  """The learning rate follows the global step, not Adam's count, after a resume too (at
  Adam's count, the resumed steps would run at 1.41x)."""
  runs, start = from_a_file
  straight, _ = weights_lib.read_npz(str(runs['straight'] / 'latest.npz'))
  resumed, _ = weights_lib.read_npz(str(runs['resumed'] / 'latest.npz'))
  assert max(np.abs(straight[n] - start[n]).max() for n in start) > 1e-3
  for name in start:
    np.testing.assert_allclose(resumed[name], straight[name], rtol=1e-5, atol=1e-6,
                               err_msg=name)


def test_moving_average_is_exported_and_resumes_exactly(tmp_path, short_runs):
  """With --ema_decay the file holds the weight average: it lags the raw weights, and a resumed
  run (the average is in the checkpoint) ends where an uninterrupted one does."""
  raw, straight, resumed = short_runs[6], tmp_path / 'straight', tmp_path / 'resumed'
  ema = ['--ema_decay', '0.5', '--keep_every', '3']
  assert train.main(_args(straight, 6, *ema)) == 0
  assert train.main(_args(resumed, 3, *ema)) == 0
  assert train.main(_args(resumed, 6, *ema)) == 0
  assert weights_lib.read_meta(str(resumed / 'latest.npz'))['ema_decay'] == 0.5
  assert os.path.exists(resumed / 'step_3.npz') and os.path.exists(resumed / 'step_6.npz')
  start = FilmNet(Options.tiny(), seed=0, name='film_net').released_weights()
  last_raw, _ = weights_lib.read_npz(str(raw / 'latest.npz'))
  averaged, _ = weights_lib.read_npz(str(straight / 'latest.npz'))
  again, _ = weights_lib.read_npz(str(resumed / 'latest.npz'))
  for name in averaged:
    np.testing.assert_allclose(again[name], averaged[name], rtol=1e-5, atol=1e-6, err_msg=name)
  name = max(last_raw, key=lambda n: np.abs(last_raw[n] - start[n]).max())
  moved, lag = last_raw[name] - start[name], averaged[name] - start[name]
  assert np.abs(lag).max() > 0
  assert np.abs(lag).max() < 0.99 * np.abs(moved).max()


def test_a_weight_average_turned_on_at_a_resume_starts_from_the_weights_then(tmp_path, short_runs):
  run = _copy(short_runs[6], tmp_path / 'run')
  at_six, _ = weights_lib.read_npz(str(run / 'latest.npz'))
  start = FilmNet(Options.tiny(), seed=0, name='film_net').released_weights()  # the run's start
  assert train.main(_args(run, 7, '--ema_decay', '0.999')) == 0
  averaged, _ = weights_lib.read_npz(str(run / 'latest.npz'))
  moved = max(float(np.abs(at_six[n] - start[n]).max()) for n in start)
  lag = max(float(np.abs(averaged[n] - at_six[n]).max()) for n in start)
  assert lag < 0.01 * moved, (lag, moved)  # not the average of the step-0 weights


def test_start_steps_and_output_folders_that_cannot_work_stop_with_the_reason(
    tmp_path, capsys, short_runs):
  init, _ = _weight_file_at_step(tmp_path, 10000)
  argv = _args(tmp_path / 'new' / 'past', 2000)
  argv[argv.index('--init') + 1] = init
  with pytest.raises(SystemExit) as stop:
    train.main(argv)
  assert stop.value.code == 2  # a usage error
  assert 'error: --steps 2000 is not past the start step 10000' in capsys.readouterr().err
  assert not (tmp_path / 'new').exists()  # refused: the folders made for the run went again
  done = _copy(short_runs[3], tmp_path / 'done')
  assert train.main(_args(done, 3)) == 0  # a finished run, resumed: nothing to do
  out = capsys.readouterr().out
  assert 'nothing to do: the run is at step 3' in out and 'warning' not in out
  assert train.main(_args(done, 4, '--lr', '1e-3', '--small_objects', '2')) == 0
  assert ('warning: resuming with --lr 0.001 (was 0.003); --small_objects 2 (was 0): from here '
          'the run differs' in capsys.readouterr().out)  # (the data's words said it again)
  # The weight average turned on or off (a resume that left the flag out exported raw weights
  # without a word):
  assert train.main(_args(done, 5, '--lr', '1e-3', '--small_objects', '2', '--ema_decay',
                          '0.99')) == 0
  assert ('warning: resuming with --ema_decay 0.99 (was 0.0): from here the run differs'
          in capsys.readouterr().out)
  # A share changed by less than the data's words show (motion blur 0% either way):
  assert train.main(_args(done, 6, '--lr', '1e-3', '--small_objects', '2', '--ema_decay',
                          '0.99', '--motion_blur', '0.004')) == 0
  assert ('warning: resuming with --motion_blur 0.004 (was 0.0): from here the run differs'
          in capsys.readouterr().out)
  shutil.rmtree(done / 'ckpt')  # e.g. only the results were copied to this machine
  with pytest.raises(SystemExit, match='holds latest.npz but no checkpoint'):
    train.main(_args(done, 6))
  for extra in (['--log_every', '0'], ['--checkpoint_every', '0'], ['--batch_size', '0']):
    with pytest.raises(SystemExit) as stop:
      train.main(_args(tmp_path / 'flags', 3, *extra))
    assert stop.value.code == 2
  with pytest.raises(SystemExit) as stop:
    train.main(_args('gs://bucket/run', 3))
  assert stop.value.code == 2 and '--output_dir must be a local folder' in capsys.readouterr().err
  # A run resumed with options of other weights: refused by name, not a TensorFlow traceback.
  wider = json.dumps({**Options.tiny().to_dict(), 'filters': Options.tiny().filters * 2})
  resumed = _copy(short_runs[3], tmp_path / 'other_options')
  argv = _args(resumed, 6)
  argv[argv.index('--options') + 1] = wider
  with pytest.raises(SystemExit, match='holds a run of --options .* pass its options to resume'):
    train.main(argv)
  os.remove(resumed / 'latest.npz')  # its options unknown: the restore's failure says it
  with pytest.raises(SystemExit, match='cannot resume .* pass the run\'s own --options'):
    train.main(argv)
  with pytest.raises(SystemExit) as stop:
    train.main(_args(tmp_path / 'zero', 0))
  assert stop.value.code == 2
  assert re.search('--steps 0 trains nothing: .* starts at step 0', capsys.readouterr().err)
  # The same command resumes a run whose start file has since gone: it is not read again.
  moved = _copy(short_runs[3], tmp_path / 'moved_init')
  argv = _args(moved, 3)
  argv[argv.index('--init') + 1] = str(tmp_path / 'gone.npz')
  assert train.main(argv) == 0


def test_flags_out_of_range_are_usage_errors_naming_the_flag(tmp_path, capsys):
  """Both trainers' flags: each of these trained on, was ignored or ended in a traceback (a crop
  too small for the model deep in TensorFlow) before it was a usage error."""
  trainers = [train]
  try:
    from film_net import train_torch  # pylint: disable=import-outside-toplevel
    trainers.append(train_torch)
  except ImportError:  # machines without PyTorch check the TensorFlow trainer only
    pass
  bad = [(['--crop', '15'], '--crop must be >= 16 for --options {'),
         (['--options', 'compact', '--crop', '63'], '--crop must be >= 64 for --options compact'),
         (['--crop', '100000'], '--crop must be at most 2048'),
         (['--options', 'nosuch'], "--options: unknown options preset 'nosuch'; choose from"),
         (['--ema_decay', '1'], 'argument --ema_decay: must be in [0, 1)'),
         (['--clips_fraction', '1.5'], 'argument --clips_fraction: must be in [0, 1]'),
         (['--clips_fraction', '0.3'], '--clips_fraction 0.3 needs --clips'),
         (['--keep_every', '-1'], 'argument --keep_every: must be >= 0'),
         (['--seed', '-1'], 'argument --seed: must be >= 0'),
         (['--max_motion', '0'], 'argument --max_motion: must be in [0.01, 2048.0], got 0'),
         (['--max_motion', '1e-14'], 'must be in [0.01, 2048.0], got 1e-14'),  # hung its batch
         (['--max_motion', 'inf'], 'argument --max_motion: must be in [0.01, 2048.0], got inf'),
         # a scene's zoom overflowed as it was rescaled: a traceback at that step, every resume
         (['--max_motion', '2048'], '--max_motion 2048 is more than 8 times --crop 32 (256 px)'),
         (['--output_dir', ''], 'argument --output_dir: may not be empty'),  # a traceback
         (['--lr', 'inf'], 'argument --lr: must be a finite number'),
         (['--init', str(tmp_path / 'gone.npz')], 'gone.npz: no such file'),
         (['--output_dir', str(tmp_path / 'a_file')], 'a_file is a file, not a folder'),
         (['--output_dir', str(tmp_path / 'a_file' / 'run')],
          f'run: {tmp_path / "a_file"} is a file, not a folder')]
  (tmp_path / 'a_file').write_text('not a folder')
  bad += [([f'--{flag}', '1.5'], f'argument --{flag}: must be in [0, 1]')
          for flag in ('regular_share', 'motion_blur', 'deform', 'static_share')]
  for trainer in trainers:
    for extra, message in bad:
      with pytest.raises(SystemExit) as stop:
        trainer.parse_args(_args(tmp_path / 'run', 3, *extra))
      assert stop.value.code == 2 and message in capsys.readouterr().err, (trainer, extra)
    # The ends of the ranges are fine, and so is the default --clips_fraction without --clips.
    args = trainer.parse_args(_args(tmp_path / 'run', 3, '--crop', '16', '--ema_decay', '0',
                                    '--regular_share', '1', '--clips_fraction', '0.5'))
    assert (args.crop, args.regular_share) == (16, 1.0)
  assert not (tmp_path / 'run').exists()


def test_keep_every_keeps_steps_between_checkpoints(short_runs, resumed_to_5):
  """--keep_every need not be a multiple of --checkpoint_every: step 5 is kept from a run that
  checkpoints every 3 steps, and it is the weights a run stopped at step 5 ends with."""
  kept = sorted(p.name for p in short_runs[6].glob('step_*.npz'))
  assert kept == ['step_5.npz']
  at_five, _ = weights_lib.read_npz(str(short_runs[6] / 'step_5.npz'))
  assert weights_lib.read_meta(str(short_runs[6] / 'step_5.npz'))['steps'] == 5
  stopped, _ = weights_lib.read_npz(str(resumed_to_5[0] / 'latest.npz'))
  for name in stopped:
    np.testing.assert_allclose(at_five[name], stopped[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_save_killed_before_latest_npz_is_mended_by_the_resume(short_runs, tmp_path, capsys):
  """SIGTERM or SIGKILL (not deferred as Ctrl-C is) between the checkpoint and latest.npz left
  latest.npz steps behind for good, and a --keep_every copy of that step never written."""
  folder = _copy(short_runs[6], tmp_path / 'run')
  shutil.copyfile(folder / 'step_5.npz', folder / 'latest.npz')  # as the cut save left it
  left = [folder / f'.tmp-{"0123abcd" * 4}.npz', folder / 'step_6.npz.tmp']  # its temporaries
  for path in left:
    shutil.copyfile(folder / 'step_5.npz', path)
  assert train.main(_args(folder, 6, '--keep_every', '2')) == 0
  out = capsys.readouterr().out
  assert 'latest.npz was behind the checkpoint' in out and 'nothing to do' in out
  assert not [path for path in left if path.exists()]
  for mended in ('latest.npz', 'step_6.npz'):
    weights, _ = weights_lib.read_npz(str(folder / mended))
    finished, _ = weights_lib.read_npz(str(short_runs[6] / 'latest.npz'))
    for name in finished:
      np.testing.assert_array_equal(weights[name], finished[name], err_msg=name)
    assert weights_lib.read_meta(str(folder / mended))['steps'] == 6
  assert train.main(_args(folder, 6, '--keep_every', '2')) == 0  # whole now: nothing to mend
  assert 'behind' not in capsys.readouterr().out
  # Mended at a step that is no multiple of --keep_every: no copy was asked for, none is made.
  other = _copy(short_runs[6], tmp_path / 'other')
  shutil.copyfile(other / 'step_5.npz', other / 'latest.npz')
  assert train.main(_args(other, 6, '--keep_every', '4')) == 0
  assert 'latest.npz was behind' in capsys.readouterr().out
  assert sorted(p.name for p in other.glob('step_*.npz')) == ['step_5.npz']


def test_temporaries_go_from_a_run_folder_named_like_a_glob_and_only_from_it(tmp_path):
  run, sibling = tmp_path / 'run [1]', tmp_path / 'run 1'
  # (the PyTorch trainer's checkpoint and meta.json are written whole through such temporaries)
  left = [f'.tmp-{"0123abcd" * 4}.npz', f'.tmp-{"4567cdef" * 4}.pt', f'.tmp-{"89abcdef" * 4}.json']
  for folder in (run, sibling):
    folder.mkdir()
    for name in left:
      (folder / name).write_bytes(b'part of a save')
  # Not theirs: a file of the user's, and an export's staging folder (a killed
  # `film_net.export --output run/saved_model`), which made every resume fail.
  (run / '.tmp-notes.txt').write_text('mine')
  (run / '.tmp-export-x1y2z3' / 'variables').mkdir(parents=True)
  training.mend_exports(str(run), 3, 0, lambda path: None)
  assert not any((run / name).exists() for name in left)
  assert all((sibling / name).exists() for name in left)
  assert (run / '.tmp-notes.txt').read_text() == 'mine'
  assert (run / '.tmp-export-x1y2z3' / 'variables').is_dir()


def test_exports_cut_short_are_mended_and_other_options_warned_of(short_runs, tmp_path, capsys):
  """A latest.npz or meta.json cut short (a partial copy; the checkpoint whole) stopped the
  resume with a traceback before the mend; options of the same weights (one more pyramid level)
  went on without the warning changed flags get."""
  def cut(*names):
    for name in names:
      (folder / name).write_bytes((folder / name).read_bytes()[:100])
  folder = _copy(short_runs[3], tmp_path / 'run')
  cut('latest.npz')
  assert train.main(_args(folder, 5)) == 0
  assert 'warning' not in capsys.readouterr().out
  assert weights_lib.read_meta(str(folder / 'latest.npz'))['steps'] == 5
  cut('meta.json', 'latest.npz')  # the meta nowhere: refused, not dropped for good
  with pytest.raises(SystemExit, match=r"^error: cannot read the run's meta in .*: meta.json and "
                                       r'latest.npz are both cut short'):
    train.main(_args(folder, 6))
  for name in ('meta.json', 'latest.npz'):  # the ckpt/ folder alone: it resumed, and the file
    (folder / name).unlink()                # it wrote ran as FILM's plain run, unaveraged
  with pytest.raises(SystemExit, match=r"^error: cannot read the run's meta in .*: meta.json and "
                                       r'latest.npz are both cut short, unreadable or gone'):
    train.main(_args(folder, 6))
  folder = _copy(short_runs[3], tmp_path / 'run2')
  cut('meta.json')  # latest.npz holds a copy of it
  deeper = dict(json.loads(TINY), pyramid_levels=json.loads(TINY)['pyramid_levels'] + 1)
  argv = _args(folder, 6)
  argv[argv.index('--options') + 1] = json.dumps(deeper)
  assert train.main(argv) == 0
  out = capsys.readouterr().out
  deeper_json, tiny_json = Options.from_dict(deeper).to_json(), Options.tiny().to_json()
  assert out.startswith(f'warning: resuming with --options {deeper_json} (was {tiny_json}), the '
                        f'same weights run another way')
  assert weights_lib.read_npz(str(folder / 'latest.npz'))[1].pyramid_levels == 5


def test_a_checkpoint_cut_short_or_gone_is_one_line_naming_it(short_runs, tmp_path):
  """A partial copy of a run folder to a fresh machine ended in TensorFlow's traceback."""
  cut = _copy(short_runs[3], tmp_path / 'cut')
  (data,) = (cut / 'ckpt').glob('ckpt-3.data-*')
  data.write_bytes(data.read_bytes()[:100])
  gone = _copy(short_runs[3], tmp_path / 'gone')
  for path in (gone / 'ckpt').glob('ckpt-3.*'):
    path.unlink()
  for folder in (cut, gone):
    with pytest.raises(SystemExit, match=r'^error: cannot read the checkpoint .*ckpt-3 \(.+\): '
                                         r'copy the run folder\'s ckpt/ whole'):
      train.main(_args(folder, 5))


def test_a_checkpoint_state_file_cut_short_or_empty_is_refused_not_started_over(
    short_runs, tmp_path):
  """TensorFlow passed over a cut `ckpt/checkpoint` with a warning and the run started at step 0
  over its own folder (exit 0); an empty one was a traceback."""
  for name, cut_to in (('cut', 20), ('empty', 0)):
    folder = _copy(short_runs[3], tmp_path / name)
    state = folder / 'ckpt' / 'checkpoint'
    state.write_bytes(state.read_bytes()[:cut_to])
    latest = (folder / 'latest.npz').read_bytes()
    with pytest.raises(SystemExit, match=r'^error: cannot read the checkpoint state '
                                         r'.*ckpt/checkpoint \(.+\): copy the run folder\'s '
                                         r'ckpt/ whole, or continue in a new --output_dir with '
                                         r'--init .*latest.npz$'):
      train.main(_args(folder, 5))
    assert (folder / 'latest.npz').read_bytes() == latest


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='needs Linux /proc, which no '
                    'one can write to, root included')
@pytest.mark.parametrize('folder', ['/proc', '/proc/film-test-run'])
def test_an_output_dir_it_cannot_write_is_one_line_before_any_step(folder, tmp_path, capsys):
  """A folder it could not make was a traceback; one it could not write failed at the first
  save, after --checkpoint_every steps of training that were lost."""
  with pytest.raises(SystemExit, match=rf'^error: --output_dir {folder}: cannot write there '
                                       r'\(.+\)$'):
    train.main(_args(folder, 3))
  assert 'step 1' not in capsys.readouterr().out


def test_a_checkpoint_state_file_gone_is_refused_not_started_over(short_runs, tmp_path):
  """A copy without `ckpt/checkpoint` (the data and index files alone), or with ckpt/ empty,
  started the run at step 0 over its own latest.npz and checkpoints, exit 0."""
  gone = _copy(short_runs[3], tmp_path / 'gone')
  (gone / 'ckpt' / 'checkpoint').unlink()
  empty = _copy(short_runs[3], tmp_path / 'empty')
  for part in (empty / 'ckpt').iterdir():
    part.unlink()
  for folder, message in (
      (gone, r'^error: the checkpoint state .*ckpt/checkpoint is gone, beside checkpoint files '
             r'\(ckpt-3\.data-00000-of-00001, ckpt-3\.index\): copy the run folder\'s ckpt/ '
             r'whole, or continue in a new --output_dir with --init .*latest.npz$'),
      (empty, r'^error: .* holds latest.npz but no checkpoint of this trainer')):
    latest = (folder / 'latest.npz').read_bytes()
    with pytest.raises(SystemExit, match=message):
      train.main(_args(folder, 5))
    assert (folder / 'latest.npz').read_bytes() == latest


def test_clips_in_a_bucket_that_does_not_exist_is_one_line(gcs, tmp_path, capsys):
  """It was Beam's whole BeamIOError; the pipeline and the evaluation say it in words. It came
  after the line saying where the run started, as if it had."""
  with pytest.raises(SystemExit, match=r'^--clips gs://no-such-bucket/clips: its bucket '
                                       r'no-such-bucket does not exist$'):
    train.main(_args(tmp_path / 'run', 3, '--clips', 'gs://no-such-bucket/clips'))
  assert capsys.readouterr().out == ''
  empty = gcs.client.create_bucket('film-test-empty-clips').name  # (Beam cannot ask a bucket's
  for clips in (f'gs://{empty}', f'gs://{empty}/'):  # root)
    with pytest.raises(SystemExit, match=rf'^--clips {clips}: no such folder$'):
      train.main(_args(tmp_path / 'run', 3, '--clips', clips))
  argv = _args(tmp_path / 'run', 3)
  argv[argv.index('--init') + 1] = 'gs://no-such-bucket/w/model.npz'
  with pytest.raises(SystemExit, match=r'^error: --init gs://no-such-bucket/w/model.npz: its '
                                       r'bucket no-such-bucket does not exist$'):
    train.main(argv)


def test_ctrl_c_stops_training_with_one_line_and_status_130(capsys):
  """What both trainers' loop does when Ctrl-C lands mid-step: no traceback, the step it
  stopped at, and that the same command resumes; nothing is saved after the interrupt."""
  done, saved = [], []

  def step(batch):
    if batch == 3:
      raise KeyboardInterrupt
    done.append(batch)
    return 0.5

  args = argparse.Namespace(log_every=100, checkpoint_every=2, keep_every=0, steps=10,
                            max_minutes=0, output_dir='unused')
  with pytest.raises(SystemExit) as stop:
    training.run_steps(args, iter(range(10)), step, current_step=lambda: len(done),
                       learning_rate=lambda: 1e-4,
                       save=lambda seconds: saved.append(len(done)) or 'ckpt',
                       seconds_before=0.0, weights_finite=lambda: True)
  assert stop.value.code == 130 and saved == [2]
  err = capsys.readouterr().err
  assert err.strip() == ('interrupted at step 3; the same command resumes from the last '
                         'checkpoint (saved every 2 steps)')


def test_a_run_that_diverges_stops_in_one_line_and_saves_nothing(tmp_path, capsys):
  """A learning rate far too large: the weights went NaN, a run ending there exported them
  with exit status 0 (and a resume started from them), a longer one failed in the warp's
  gather with a TensorFlow traceback."""
  with pytest.raises(SystemExit) as stop:
    train.main(_args(tmp_path, 3, '--lr', '1e38', '--checkpoint_every', '1'))
  assert str(stop.value).startswith('training diverged at step 2: the weights are no longer '
                                    'finite numbers (nan or inf), and are not saved. Lower --lr '
                                    '(now 1e+38)')
  assert 'saved step 1 ->' in capsys.readouterr().out
  assert weights_lib.read_meta(str(tmp_path / 'latest.npz'))['steps'] == 1
  assert all(np.isfinite(w).all() for w in np.load(tmp_path / 'latest.npz').values()
             if w.dtype.kind == 'f')


def test_a_run_that_diverges_stops_at_the_logged_step_not_the_next_save(capsys):
  """Weights that went NaN at step 3 trained on to the next save (up to --checkpoint_every
  steps, 200 by default) before the run stopped naming that later step."""
  done, saved = [], []
  args = argparse.Namespace(log_every=1, checkpoint_every=100, keep_every=0, steps=10,
                            max_minutes=0, output_dir='unused', lr=1e38)
  with pytest.raises(SystemExit, match='training diverged at step 3: '):
    training.run_steps(args, iter(range(10)), lambda batch: done.append(batch) or (
        float('nan') if batch >= 2 else 0.5), current_step=lambda: len(done),
                       learning_rate=lambda: 1e-4,
                       save=lambda seconds: saved.append(len(done)) or 'ckpt',
                       seconds_before=0.0, weights_finite=lambda: len(done) < 3)
  assert len(done) == 3 and not saved
  assert 'step 3/10  loss nan' in capsys.readouterr().out


@pytest.mark.parametrize('signum, status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_during_a_save_takes_effect_once_the_save_is_whole(tmp_path, capsys, signum,
                                                                   status):
  """Cut between the checkpoint and latest.npz, a save left latest.npz steps behind while the
  resume found the checkpoint at --steps and had nothing to do; the --keep_every copy was lost."""
  done, saved = [], []

  def save(seconds):
    saved.append(len(done))
    os.kill(os.getpid(), signum)  # Ctrl-C or SIGTERM between the checkpoint and latest.npz
    (tmp_path / 'latest.npz').write_text(str(len(done)))
    return str(tmp_path / 'latest.npz')

  args = argparse.Namespace(log_every=100, checkpoint_every=100, keep_every=2, steps=10,
                            max_minutes=0, output_dir=str(tmp_path))

  def train():
    training.run_steps(args, iter(range(10)), lambda batch: done.append(batch) or 0.5,
                       current_step=lambda: len(done), learning_rate=lambda: 1e-4, save=save,
                       seconds_before=0.0, weights_finite=lambda: True)

  default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
  inherited = signal.getsignal(signum)  # (SIGINT is ignored where a script started the tests
  try:                                  # in the background)
    signal.signal(signum, default)
    with pytest.raises(SystemExit) as stop:
      train()
    assert stop.value.code == status and saved == [2] and len(done) == 2
    assert (tmp_path / 'latest.npz').read_text() == (tmp_path / 'step_2.npz').read_text() == '2'
    stopped = 'interrupted' if signum == signal.SIGINT else 'terminated (SIGTERM)'
    assert capsys.readouterr().err.startswith(f'{stopped} at step 2; the same command resumes')
    assert signal.getsignal(signum) is default
    # A trainer that ignores the signal (SIGINT, started in the background) is not stopped by
    # one at a save.
    signal.signal(signum, signal.SIG_IGN)
    done.clear()
    saved.clear()
    train()
    assert len(done) == 10 and saved == [2, 4, 6, 8, 10]
    assert signal.getsignal(signum) is signal.SIG_IGN
  finally:
    signal.signal(signum, inherited)


def test_sigterm_stops_the_training_command_in_one_line_keeping_its_checkpoints(tmp_path):
  """A spot VM's preemption or a scheduler's stop sends SIGTERM: it killed the trainer with
  status 143 and no word of the step it reached. Now it says so, as Ctrl-C does, and the
  checkpoint it leaves resumes."""
  argv = _args(tmp_path / 'run', 10_000, '--checkpoint_every', '2')
  job = subprocess.Popen([sys.executable, '-m', 'film_net.train', *argv], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    for line in job.stdout:
      if line.startswith('saved step 4 '):
        break
    job.send_signal(signal.SIGTERM)
    stdout, stderr = job.communicate(timeout=120)
  finally:
    job.kill()
  steps = [int(line.split()[2]) for line in stdout.splitlines() if line.startswith('saved step')]
  assert job.returncode == 143, stderr
  last = stderr.strip().splitlines()[-1]
  assert re.fullmatch(r'terminated \(SIGTERM\) at step \d+; the same command resumes from the '
                      r'last checkpoint \(saved every 2 steps\)', last), stderr
  assert 'Traceback' not in stderr
  saved = steps[-1] if steps else 4
  assert weights_lib.read_meta(str(tmp_path / 'run' / 'latest.npz'))['steps'] == saved
  resumed = subprocess.run([sys.executable, '-m', 'film_net.train',
                            *_args(tmp_path / 'run', saved + 1)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
  assert resumed.returncode == 0, resumed.stderr
  assert f'saved step {saved + 1} ->' in resumed.stdout


def test_batches_come_in_order_errors_in_their_turn_and_a_stuck_one_holds_no_exit():
  """Batches were made in an executor's thread, which Python joins at exit: a batch that never
  ended (a stalled read, or --max_motion 1e-14 before it was bounded) kept a stopped run from
  ending, Ctrl-C or not."""
  assert list(train.prefetched(lambda step: step * 10, range(3, 8))) == [30, 40, 50, 60, 70]

  def failing(step):
    if step == 2:
      raise OSError('read failed')
    return step
  got = []
  with pytest.raises(OSError, match='read failed'):
    for batch in train.prefetched(failing, range(5)):
      got.append(batch)
  assert got == [0, 1]
  script = ('import contextlib, threading\n'
            'from film_net.train import prefetched\n'
            'never = threading.Event()\n'
            'make = lambda step: never.wait() if step else step\n'
            'with contextlib.closing(prefetched(make, range(3))) as batches:\n'
            '  print(next(batches), flush=True)\n')
  done = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  assert done.returncode == 0 and done.stdout.strip() == '0', done.stderr


def test_clips_mix_real_frames_cropped_together(tmp_path):
  folder = tmp_path / 'clip'
  folder.mkdir()
  for i, value in enumerate((0, 60, 120, 180, 240)):
    Image.fromarray(np.full((30, 40, 3), value, np.uint8)).save(folder / f'f{i}.png')
  triplets = clip_triplets(str(tmp_path))
  x0, y, x1 = training.make_batch(seed=1, step=0, batch_size=4, crop=16, max_motion=4,
                                  clips=triplets, clips_fraction=1.0)
  assert x0.shape == (4, 16, 16, 3)
  np.testing.assert_allclose(y, (x0 + x1) / 2, atol=1e-6)  # the frames brighten linearly
  np.testing.assert_allclose(np.abs(x1 - x0), 120 / 255, atol=1e-6)
  # Clips smaller than the crop are refused before training, not at the step that draws them.
  argv = _args(tmp_path / 'run', 3, '--clips', str(tmp_path), '--crop', '32')
  with pytest.raises(SystemExit, match='f0.png is 40x30, smaller than the 32px training crop'):
    train.main(argv)


def _clip(folder, sizes):
  """A clip of frames of these (width, height), brightening; returns the frame paths."""
  folder.mkdir(parents=True)
  paths = []
  for i, (width, height) in enumerate(sizes):
    paths.append(folder / f'f{i}.png')
    Image.fromarray(np.full((height, width, 3), 60 * i, np.uint8)).save(paths[-1])
  return paths


def test_clips_that_cannot_be_trained_on_stop_before_training_with_one_line_naming_them(
    tmp_path):
  """Each of these ended in a traceback, trained on frames cropped out of line with each other
  (a clip of mixed sizes), or failed only at the step that drew the frame, hanging there."""
  good = _clip(tmp_path / 'good' / 'c', [(40, 30)] * 3)
  _clip(tmp_path / 'one' / 'c', [(40, 30)])
  mixed = _clip(tmp_path / 'mixed' / 'c', [(40, 30), (40, 30), (48, 30)])
  later = _clip(tmp_path / 'later' / 'c', [(40, 30)] * 3)
  later[1].write_bytes(b'not a png')
  first = _clip(tmp_path / 'first' / 'c', [(40, 30)] * 3)
  first[0].write_bytes(b'not a png')
  webp = _clip(tmp_path / 'webp' / 'c', [(40, 30)] * 3)  # stopped the run at the step drawing it
  Image.open(webp[1]).save(webp[1], format='WEBP')
  bracketed = tmp_path / 'take[1].png'
  bracketed.write_bytes(good[0].read_bytes())
  cases = [(tmp_path / 'nosuch', f'--clips {tmp_path / "nosuch"}: no such folder'),
           (tmp_path / 'nosuch' / 'reel_*', 'reel_*: no such folder'),  # (a glob's folder)
           (tmp_path / 'good' / 'x*', 'x*: no clip folder with at least 3 frames matches'),
           (bracketed, f'--clips {bracketed}: is a file; --clips takes a folder of clips'),
           (tmp_path / 'one', 'no clip folder with at least 3 frames'),
           (good[0], f'--clips {good[0]}: is a file; --clips takes a folder of clips'),
           (tmp_path / 'mixed', f'{mixed[2]} is 48x30, but {mixed[0]} of the same clip is 40x30'),
           (tmp_path / 'later', f'{later[1]}: not a readable image (no PNG, JPEG, TIFF or DPX'),
           (tmp_path / 'first', f'{first[0]}: not a readable image (no PNG, JPEG, TIFF or DPX'),
           (tmp_path / 'webp', f'{webp[1]} is not a readable image (BadImage: unsupported image '
                               f'format WEBP)')]
  for clips, message in cases:
    with pytest.raises(SystemExit) as stop:
      training.load_clips(argparse.Namespace(clips=str(clips), crop=16))
    assert message in str(stop.value) and '\n' not in str(stop.value), (clips, stop.value)
  assert len(training.load_clips(argparse.Namespace(clips=str(tmp_path / 'good'), crop=16))) == 1


def test_a_clip_of_frames_pil_cannot_open_is_trained_on_as_the_pipeline_reads_it(tmp_path):
  """16-bit gray+alpha TIFF: the pipeline decodes it, PIL cannot open it, so the header-only
  size check refused the clip as unreadable."""
  tifffile = pytest.importorskip('tifffile', reason='tifffile writes 16-bit gray+alpha TIFF')
  folder = tmp_path / 'clips' / 'c'
  folder.mkdir(parents=True)
  for i in range(3):
    frame = np.stack([np.full((30, 40), 20000 * i, np.uint16), np.full((30, 40), 65535,
                                                                         np.uint16)], -1)
    tifffile.imwrite(folder / f'f{i}.tif', frame, photometric='minisblack',
                     extrasamples=['unassalpha'])
  (triplet,) = training.load_clips(argparse.Namespace(clips=str(tmp_path / 'clips'), crop=16))
  # pylint: disable=protected-access
  frames = training._crop(np.random.default_rng(0), triplet, training._decoded(triplet), 16)
  np.testing.assert_allclose([f.mean() for f in frames], [0, 20000 / 65535, 40000 / 65535],
                             atol=1e-6)


def test_clip_triplets_across_a_scene_cut_or_a_repeated_frame_are_not_trained_on(
    tmp_path, monkeypatch):
  """Every triplet was trained on: across an edit's cut the model learnt to cross-fade, and
  at a freeze to hold, where leave-one-out scoring (`--scene_cuts`) leaves both out."""
  from pipeline import sample_footage  # pylint: disable=import-outside-toplevel
  frames = list(sample_footage.edited_frames(5, 160, 96))  # a cut between frames 4 and 5
  frames[8] = frames[7]  # a freeze: frame 7 repeated
  folder = tmp_path / 'clips' / 'edit'
  folder.mkdir(parents=True)
  for i, frame in enumerate(frames):
    Image.fromarray(frame).save(folder / f'f{i:02d}.png')
  clips = training.load_clips(argparse.Namespace(clips=str(tmp_path / 'clips'), crop=16))
  assert len(clips) == 8
  monkeypatch.setattr(training, '_crop', lambda rng, triplet, frames, crop: triplet.truth)
  draw = training._clip_triplet  # pylint: disable=protected-access
  drawn = {draw(np.random.default_rng(seed), clips, 16) for seed in range(60)}
  assert drawn == {str(folder / f'f{i:02d}.png') for i in (1, 2, 3, 6)}
  # One usable triplet among 60 (20 draws all miss it 72% of the time): every batch finds it,
  # where giving up after 20 stopped training at a step every resume drew again.
  mostly_held = clips[3:5] * 30
  mostly_held[37] = clips[1]
  assert {draw(np.random.default_rng(seed), mostly_held, 16) for seed in range(20)} == {
      str(folder / 'f02.png')}
  with pytest.raises(training.NoUsableClipTriplet, match=r'each of its 4 triplets is across a '
                                                         r'scene cut or a repeated frame'):
    draw(np.random.default_rng(0), clips[3:5] + clips[6:], 16)
  # No frame of it is at fault: the stop says what the footage lacks, not to replace a frame.
  stop = training.stop_at_bad_clip_frame(training.NoUsableClipTriplet('each of its 4 ...'), 7)
  assert str(stop) == '--clips: each of its 4 ...; stopped at step 7'


def test_clip_frames_whose_names_are_not_utf8_are_named_as_left_out(tmp_path, capsys):
  """A Latin-1 `café` from an old volume: a clip or a frame so named was left out unsaid (the
  frame's neighbours then read as a lost scan, the clip was missing from the data)."""
  frames = _clip(tmp_path / 'clips' / 'c', [(40, 30)] * 4)
  os.rename(frames[3], os.fsencode(tmp_path / 'clips' / 'c') + b'/f3\xe9.png')
  os.rename(_clip(tmp_path / 'other', [(40, 30)] * 3)[0].parent,
            os.fsencode(tmp_path / 'clips') + b'/\xe9t\xe9')
  clips = training.load_clips(argparse.Namespace(clips=str(tmp_path / 'clips'), crop=16))
  assert [(c.frame0, c.truth, c.frame1) for c in clips] == [tuple(map(str, frames[:3]))]
  assert capsys.readouterr().err == (
      f'--clips: 4 frame(s) left out, e.g. {tmp_path}/clips/c/f3\\xe9.png: its name is not '
      'UTF-8 (written on a system of another code page?), which Beam cannot carry between its '
      'steps (rename it)\n')


def test_clip_folders_that_cannot_be_listed_are_named_as_left_out(tmp_path, capsys,
                                                                  unreadable_folders):
  """A clip folder of another user's (mode 0700) was left out of the training data unsaid."""
  frames = _clip(tmp_path / 'clips' / 'c', [(40, 30)] * 3)
  _clip(tmp_path / 'clips' / 'locked', [(40, 30)] * 3)
  unreadable_folders.append(str(tmp_path / 'clips' / 'locked'))
  clips = training.load_clips(argparse.Namespace(clips=str(tmp_path / 'clips'), crop=16))
  assert [(c.frame0, c.truth, c.frame1) for c in clips] == [tuple(map(str, frames))]
  assert capsys.readouterr().err == (f'--clips: 1 folder(s) cannot be listed, their clips left '
                                     f'out, e.g. {tmp_path}/clips/locked: Permission denied\n')


def test_clip_triplets_across_a_lost_frame_are_not_trained_on(tmp_path, capsys, monkeypatch):
  """f0, f1, f3, f4, f5: the triplets around the missing f2 have no true middle frame."""
  frames = _clip(tmp_path / 'clips' / 'c', [(40, 30)] * 3)
  frames += _clip(tmp_path / 'more', [(40, 30)] * 3)
  for k in (3, 4, 5):  # f3, f4, f5 in the clip; f2 is lost
    frames[k] = frames[k].rename(tmp_path / 'clips' / 'c' / f'f{k}.png')
  frames[2].unlink()
  _clip(tmp_path / 'clips' / 'short', [(40, 30)] * 2)  # no triplet: named, not dropped unsaid
  clips = training.load_clips(argparse.Namespace(clips=str(tmp_path / 'clips'), crop=16))
  assert [(c.frame0, c.truth, c.frame1) for c in clips] == [
      tuple(str(frames[k]) for k in (3, 4, 5))]
  err = capsys.readouterr().err
  assert ('2 triplets left out, their frame numbers unevenly spaced (a frame lost or repeated?), '
          f'e.g. the one around {frames[1]}') in err
  assert ('--clips: 1 clip folder(s) of fewer than 3 frames left out (no triplet), e.g. '
          f'{tmp_path / "clips" / "short"}') in err
  # A clip whose every triplet skips a number holds frames enough: that is not why.
  gappy = _clip(tmp_path / 'gappy' / 'c', [(40, 30)] * 3)
  gappy[2].rename(tmp_path / 'gappy' / 'c' / 'f3.png')  # f0, f1, f3
  with pytest.raises(SystemExit, match='every triplet left out, its frame numbers unevenly'):
    training.load_clips(argparse.Namespace(clips=str(tmp_path / 'gappy'), crop=16))
  # The same folder, however it is spelled, is the same data (a resume compares the words).
  args = argparse.Namespace(clips=str(tmp_path / 'clips'), clips_fraction=0.5, crop=16,
                            views_per_scene=1, **{f: 0 for f in (
                                'small_objects', 'regular_share', 'motion_blur', 'deform',
                                'static_share')})
  described = training.describe_data(args, clips)
  monkeypatch.chdir(tmp_path)
  for spelled in (f'{tmp_path}/clips/', f'{tmp_path}/./clips',  # ('./x' against 'x' warned)
                  f'{tmp_path}/clips/../clips', 'clips', './clips/'):  # (relative: as listed)
    args.clips = spelled
    assert training.describe_data(args, training.load_clips(args)) == described, spelled
  args.clips = 'gs://bucket/clips/'
  assert 'clips gs://bucket/clips (50%, 1 triplets ' in training.describe_data(args, clips)
  # Footage added to the folder between a stop and the resume: the resume said nothing.
  args.clips = str(tmp_path / 'clips')
  _clip(tmp_path / 'clips' / 'added', [(40, 30)] * 3)
  more = training.load_clips(args)
  assert len(more) == 2 and training.describe_data(args, more) != described
  capsys.readouterr()
  saved = {'flags': {'motion_blur': 0, 'clips_fraction': 0.5}, 'data': described}
  args.motion_blur = 0.3  # named once, as its flag (the data's words said it again)
  training.warn_changed_flags(saved, args, training.describe_data(args, clips), clips)
  assert capsys.readouterr().out == ('warning: resuming with --motion_blur 0.3 (was 0): from '
                                     'here the run differs from one that was not interrupted\n')
  # and the footage added besides:
  training.warn_changed_flags(saved, args, training.describe_data(args, more), more)
  out = capsys.readouterr().out
  assert out.startswith('warning: resuming with --motion_blur 0.3 (was 0); data rendered (small '
                        'objects <= 0, regular textures 0%, motion blur 30%) + clips ')
  assert out.count('motion blur 30%') == 1 and f'(was {described})' in out


def test_a_frame_that_fails_mid_run_stops_training_with_one_line(tmp_path):
  """A frame whose header reads but whose data is cut short fails when a batch draws it: the
  trainer stops with a line naming it (under tf.data: a traceback, after which it could hang)."""
  frames = _clip(tmp_path / 'clips' / 'c', [(40, 30)] * 3)
  data = frames[1].read_bytes()
  frames[1].write_bytes(data[:len(data) // 2])
  argv = _args(tmp_path / 'run', 3, '--crop', '16', '--clips', str(tmp_path / 'clips'),
               '--clips_fraction', '1')
  result = subprocess.run([sys.executable, '-m', 'film_net.train', *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode == 1 and last.startswith(f'--clips: {frames[1]}: '), result.stderr
  assert 'truncated' in last and 'stopped at step 0: replace or remove that frame' in last
