"""Average the weights of models fine-tuned from one another (a weight soup, WiSE-FT).

Two files of one training lineage (a fine-tune and the file it started from) sit in one basin
of the loss: a weighted mean of their weights is a model of its own, often better than either,
and it can shed a fine-tune's drift while keeping most of its gain. The built-in model is such
an average (see default_model/MODEL_CARD.md). Files of unrelated runs average to noise: this
is for one lineage only.
"""
from __future__ import annotations

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import argparse
import json
import math
import os
import sys

import numpy as np

from film_net import flags
from film_net import specs
from film_net import weights as weights_lib
from film_net.options import Options


def read_model(path: str) -> tuple[dict[str, np.ndarray], Options, dict]:
  """(released-name weights, options, meta) of a weight file or SavedModel folder, local or
  remote; 'default' is the built-in model. ValueError naming `path` where it cannot be used."""
  local_path = weights_lib.DEFAULT_MODEL if path == 'default' else path
  try:
    weights, options, meta = weights_lib.read_model(local_path)
    options = options or weights_lib.infer_options(weights)
    weights_lib.check_finite(weights)  # a diverged run would turn the whole average into NaN
  except Exception as e:  # pylint: disable=broad-except  # a missing file, not a model, ...
    raise ValueError(f'{path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}') from e
  return weights, options, meta


def average(models: list[tuple[dict[str, np.ndarray], Options]], shares: list[float],
            paths: list[str] | None = None) -> dict[str, np.ndarray]:
  """sum(share * weights) over `models` (summed in float64), which must need the same
  convolutions; ValueError naming the first that differs (by its path, or its index) otherwise."""
  paths = paths or [f'model {index + 1}' for index in range(len(models))]
  first_specs = specs.conv_specs(models[0][1])
  names = [f'{s.name}/{part}' for s in first_specs for part in ('kernel', 'bias')]
  for index, (_, options) in enumerate(models[1:], start=1):
    if specs.conv_specs(options) != first_specs:
      raise ValueError(f'{paths[index]} ({options}) needs other weights than {paths[0]} '
                       f'({models[0][1]}): only files of one architecture can be averaged')
  return {name: sum(share * np.asarray(weights[name], np.float64)
                    for (weights, _), share in zip(models, shares)).astype(np.float32)
          for name in names}


def averaged_meta(paths: list[str], read: list[tuple], shares: list[float]) -> dict:
  """The average's meta: runs as the first model does (its `inference`); `steps` is the most any
  input was trained, so a fine-tune of the average goes on with the learning-rate schedule where
  the furthest-trained one left it; `averaged` names each input (path and the fingerprint of its
  weights: 'default' changes with the package), its share and its training."""
  metas = [meta for _, _, meta in read]
  meta = {'trainer': 'film_net.average',
          'steps': max(int(m.get('steps', 0)) for m in metas),
          'averaged': [{'model': path, 'share': share,
                        'fingerprint': weights_lib.fingerprint(weights, options),
                        **{k: m[k] for k in ('steps', 'seconds', 'data', 'trainer') if k in m}}
                       for path, (weights, options, m), share in zip(paths, read, shares)]}
  if 'inference' in metas[0]:
    meta['inference'] = metas[0]['inference']
  return meta


def _shares(text: str) -> list[float]:
  """--shares 0.75,0.25: each in (0, 1] (a share of 0 leaves a model out: name it not)."""
  share = flags.in_range(float, 0, 1, low_open=True)
  try:
    return [share(part) for part in text.split(',')]
  except ValueError:  # (argparse would name this function: "invalid _shares value")
    raise argparse.ArgumentTypeError(
        f'must be numbers separated by commas (0.75,0.25), got {text!r}') from None


def main(argv=None) -> int:
  """`python -m film_net.average --output FILE [--shares S,S,...] MODEL MODEL ...`."""
  flags.start_command()
  parser = flags.command_line(
      'film_net.average',
      'Write the weighted mean of the weights of models of one training lineage (a fine-tune '
      'and the file it started from) as a new weight file: a weight soup.')
  parser.add_argument('models', nargs='+', metavar='MODEL', type=flags.path_value,
                      help='weight files or SavedModel folders (local or gs://), two or more; '
                           '"default" is the built-in model. The average runs as the first '
                           'does (its flip averaging and padding)')
  parser.add_argument('--shares', type=_shares, default=None, metavar='S,S,...',
                      help='each model\'s share, in their order, comma-separated, summing to 1 '
                           '(default: equal)')
  parser.add_argument('--output', required=True, type=flags.path_value,
                      help='the weight file written (local or gs://), whole; one there already '
                           'is replaced')
  args = parser.parse_args(argv)
  if len(args.models) < 2:
    parser.error('name two or more models to average')
  shares = args.shares or [1.0 / len(args.models)] * len(args.models)
  if len(shares) != len(args.models):
    parser.error(f'--shares gives {len(shares)} shares for {len(args.models)} models')
  if not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
    parser.error(f'--shares sum to {sum(shares):g}, not 1')
  if not weights_lib.is_remote(args.output) and os.path.isdir(args.output):
    parser.error(f'--output {args.output} is a folder; --output names the weight file written')
  problem = flags.not_a_folder(f'--output {args.output}: its folder',  # (not the flag's value)
                               os.path.dirname(args.output) or '.')
  if problem:
    parser.error(problem)
  flags.check_paths(parser, models=[('MODEL', m) for m in args.models if m != 'default'])
  if weights_lib.is_remote(args.output):  # before the models are read: in the pipeline's words
    from transforms import files  # pylint: disable=import-outside-toplevel
    why = files.unreachable(args.output.rsplit('/', 1)[0])
    if why:
      parser.error(f'--output {args.output}: {why}')
  try:
    read = [read_model(path) for path in args.models]
    averaged = average([(weights, options) for weights, options, _ in read], shares,
                       args.models)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2  # as a model that cannot be loaded is for every command
  inferences = {json.dumps({**weights_lib.INFERENCE_DEFAULTS, **meta.get('inference', {})},
                           sort_keys=True) for _, _, meta in read}  # (as each runs, defaults in)
  if len(inferences) > 1:
    how = read[0][2].get('inference', "FILM's plain way")
    print(f'warning: the models run in different ways; the average runs as {args.models[0]} '
          f'does ({how})', file=sys.stderr)
  meta = averaged_meta(args.models, read, shares)
  try:
    weights_lib.save(args.output, averaged, read[0][1], meta=meta)
  except Exception as e:  # pylint: disable=broad-except
    why = str(e).splitlines()[0] if str(e) else type(e).__name__
    print(f'error: cannot write {args.output}: {why}', file=sys.stderr)
    return 1
  print(f'wrote {args.output}: ' + ' + '.join(f'{s:g} x {m}' for m, s in zip(args.models, shares)))
  return 0


if __name__ == '__main__':
  flags.exit_with(flags.run_command(main))
