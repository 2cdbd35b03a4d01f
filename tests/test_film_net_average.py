"""`python -m film_net.average`: weight soups of one lineage, as the built-in model is made."""
import dataclasses
import os
import re

import numpy as np
import pytest

from film_net import Interpolator, Options
from film_net import average
from film_net import weights as weights_lib


@pytest.fixture(scope='module')
def two_models(tmp_path_factory):
  """(path A, path B): tiny models of different weights; A runs flip-averaged and mirror padded
  (its meta says so, as the built-in model's does), B runs FILM's plain way."""
  folder = tmp_path_factory.mktemp('soup')
  a, b = str(folder / 'a.npz'), str(folder / 'b.npz')
  Interpolator.random(Options.tiny(), seed=1, flip_average=True, padding='mirror').save(a)
  Interpolator.random(Options.tiny(), seed=2).save(b)
  return a, b


def _weights(path):
  return weights_lib.read_npz(path)[0]


def test_an_average_is_the_weighted_sum_and_runs_as_the_first_model(two_models, tmp_path,
                                                                    capsys):
  a, b = two_models
  out = str(tmp_path / 'soup.npz')
  assert average.main(['--output', out, '--shares', '0.75,0.25', a, b]) == 0
  assert 'the average runs as' in capsys.readouterr().err  # A and B run differently
  wa, wb, soup = _weights(a), _weights(b), _weights(out)
  assert soup.keys() == wa.keys()
  for name, value in soup.items():
    np.testing.assert_allclose(value, 0.75 * wa[name] + 0.25 * wb[name], rtol=1e-6, atol=1e-7)
  assert not np.allclose(soup['fusion/conv2d/kernel'], wa['fusion/conv2d/kernel'])
  model = Interpolator.from_path(out)
  assert (model.flip_average, model.padding) == (True, 'mirror')
  meta = weights_lib.read_meta(out)
  assert [(m['model'], m['share']) for m in meta['averaged']] == [(a, 0.75), (b, 0.25)]
  assert [m['fingerprint'] for m in meta['averaged']] == [
      weights_lib.fingerprint(w, Options.tiny()) for w in (wa, wb)]


def test_models_that_run_alike_average_without_a_warning(tmp_path, capsys):
  """A file without an inference entry and one whose entry says FILM's defaults run alike: the
  warning compared the entries as written."""
  weights = Interpolator.random(Options.tiny(), seed=3).net.released_weights()
  plain, spelt = str(tmp_path / 'plain.npz'), str(tmp_path / 'spelt.npz')
  weights_lib.save(plain, weights, Options.tiny())
  weights_lib.save(spelt, weights, Options.tiny(),
                   meta={'inference': dict(weights_lib.INFERENCE_DEFAULTS)})
  assert average.main(['--output', str(tmp_path / 'soup.npz'), plain, spelt]) == 0
  assert 'warning' not in capsys.readouterr().err


def test_a_model_averaged_with_itself_is_that_model(two_models, tmp_path):
  a, _ = two_models
  out = str(tmp_path / 'same.npz')
  assert average.main(['--output', out, a, a]) == 0
  assert Interpolator.from_path(out).fingerprint == Interpolator.from_path(a).fingerprint


def test_the_average_keeps_the_furthest_trained_step_for_a_fine_tune_of_it(tmp_path):
  """train's --init continues the learning-rate schedule at the file's `steps`."""
  weights = Interpolator.random(Options.tiny(), seed=3).net.released_weights()
  paths = []
  for steps in (120, 80):
    paths.append(str(tmp_path / f'run{steps}.npz'))
    weights_lib.save(paths[-1], weights, Options.tiny(), meta={'steps': steps, 'data': 'x'})
  out = str(tmp_path / 'soup.npz')
  assert average.main(['--output', out, *paths]) == 0
  meta = weights_lib.read_meta(out)
  assert meta['steps'] == 120 and meta['trainer'] == 'film_net.average'
  assert [m['steps'] for m in meta['averaged']] == [120, 80]


def _nan_model(path):
  weights = Interpolator.random(Options.tiny(), seed=4).net.released_weights()
  weights['fusion/conv2d/bias'] = np.full_like(weights['fusion/conv2d/bias'], np.nan)
  weights_lib.save(path, weights, Options.tiny())


def _wider_model(path):
  Interpolator.random(dataclasses.replace(Options.tiny(), filters=8), seed=5).save(path)


@pytest.mark.parametrize('make, reason', [
    (_nan_model, 'hold NaN or infinite values'),
    (_wider_model, 'only files of one architecture can be averaged'),
    (lambda path: open(path, 'w').write('not weights'), 'not a readable .npz weight file'),
])
def test_a_model_that_cannot_be_averaged_is_an_error_and_writes_nothing(two_models, tmp_path,
                                                                       capsys, make, reason):
  bad, out = str(tmp_path / 'bad.npz'), str(tmp_path / 'soup.npz')
  make(bad)
  assert average.main(['--output', out, two_models[0], bad]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and reason in err and len(err.splitlines()) == 1
  assert bad in err  # (another architecture was "model 2", naming no file)
  assert not list(tmp_path.glob('soup*')) and not list(tmp_path.glob('.tmp-*'))


def test_an_output_in_a_bucket_that_does_not_exist_is_a_usage_error_before_any_read(
    two_models, gcs, capsys, monkeypatch):
  """Every model was read and averaged first, then the storage client's raw 404."""
  del gcs  # (the loopback storage server, which knows no such bucket)
  monkeypatch.setattr(average, 'read_model', lambda path: pytest.fail(f'{path} read'))
  with pytest.raises(SystemExit) as stop:
    average.main(['--output', 'gs://no-such-bucket/soups/soup.npz', *two_models])
  assert stop.value.code == 2
  assert capsys.readouterr().err.splitlines()[-1].endswith(
      'error: --output gs://no-such-bucket/soups/soup.npz: its bucket no-such-bucket does not '
      'exist')


@pytest.mark.parametrize('argv, message', [
    (['--shares', '0.5,0.6'], '--shares sum to 1.1, not 1'),
    (['--shares', '0.5,0.05'], '--shares sum to 0.55, not 1'),  # (a typo: shrunken weights)
    (['--shares', '1'], '--shares gives 1 shares for 2 models'),
    (['--shares', '0,1'], 'must be in (0, 1], got 0'),
    (['--shares', 'nan,0.5'], 'must be in (0, 1], got nan'),
    (['--shares', '0.75,0.25,'], "must be numbers separated by commas (0.75,0.25), got "
                                 "'0.75,0.25,'"),
])
def test_shares_that_do_not_make_a_mean_are_a_usage_error(two_models, tmp_path, capsys, argv,
                                                          message):
  with pytest.raises(SystemExit) as stop:
    average.main(['--output', str(tmp_path / 'soup.npz'), *argv, *two_models])
  assert stop.value.code == 2 and message in capsys.readouterr().err.splitlines()[-1]
  assert not (tmp_path / 'soup.npz').exists()


def test_an_output_that_cannot_be_a_weight_file_is_a_usage_error(two_models, tmp_path, capsys):
  """A folder was exit status 1 with a message naming a temporary file of the write; a path
  below a file named that file as if it were the flag's value."""
  (tmp_path / 'folder').mkdir()
  (tmp_path / 'a_file').write_bytes(b'x')
  for output, message in (
      (tmp_path / 'folder', f'--output {tmp_path / "folder"} is a folder; --output names the '
                            f'weight file written'),
      (tmp_path / 'a_file' / 'soup.npz', f'--output {tmp_path / "a_file" / "soup.npz"}: its '
                                         f'folder {tmp_path / "a_file"} is a file')):
    with pytest.raises(SystemExit) as stop:
      average.main(['--output', str(output), *two_models])
    assert stop.value.code == 2 and message in capsys.readouterr().err.splitlines()[-1]
  assert sorted(os.listdir(tmp_path)) == ['a_file', 'folder'] and not os.listdir(
      tmp_path / 'folder')


def test_one_model_is_no_average(two_models, tmp_path, capsys):
  with pytest.raises(SystemExit) as stop:
    average.main(['--output', str(tmp_path / 'soup.npz'), two_models[0]])
  assert stop.value.code == 2 and 'two or more models' in capsys.readouterr().err


def test_the_built_in_model_says_how_it_was_averaged():
  """The shipped file is a soup of stage 12 and stage 11 (see its model card): its meta names
  both, with shares that make a mean, and runs as the built-in model is documented to run."""
  meta = weights_lib.read_meta(weights_lib.DEFAULT_MODEL)
  shares = [m['share'] for m in meta['averaged']]
  assert len(shares) >= 2 and sum(shares) == pytest.approx(1.0)
  assert meta['inference'] == {'flip_average': True, 'flip_weights': 'agreement_with_average',
                               'padding': 'mirror'}
  assert meta['steps'] == max(m['steps'] for m in meta['averaged'])


def test_the_model_cards_average_command_makes_the_built_in_model():
  """The card's last command (`film_net.average --output ... --shares ... A B`) names the files
  and shares the shipped file's meta records, so the card cannot lag a new average (its share
  went from 0.75 to 0.85)."""
  card = os.path.join(os.path.dirname(weights_lib.DEFAULT_MODEL), 'MODEL_CARD.md')
  with open(card) as f:
    command = re.search(r'python -m film_net\.average --output film_net/default_model/'
                        r'film_net_default\.npz \\\n\s+--shares (\S+) (\S+) (\S+)\n', f.read())
  assert command, 'the card has no command that writes the built-in model'
  shares, *models = command.groups()
  meta = weights_lib.read_meta(weights_lib.DEFAULT_MODEL)
  assert [(m['model'], m['share']) for m in meta['averaged']] == list(
      zip(models, map(float, shares.split(','))))
