"""Quality benchmark on Middlebury-Other: mean PSNR/SSIM per method and wins against DIS flow.

    python bench/bench_quality.py [--model_path P | --no_model] [--data DIR] [--output OUT]

Runs `pipeline.evaluate` on the 12 Middlebury sequences (read from ../shared at run time, never
copied or trained on) for the model and every baseline this machine can run, then prints the
mean table, each sequence's PSNR per method, and on how many sequences each method beats the DIS
flow baseline (the issue's target for the default model: at least 10 of 12).
"""

import argparse
import json
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from film_net import specs  # pylint: disable=wrong-import-position
from film_net.flags import add_flip_average_flags  # pylint: disable=wrong-import-position
from pipeline import evaluate  # pylint: disable=wrong-import-position

DEFAULT_DATA = os.path.join(_ROOT, '..', 'shared', 'data', 'middlebury-other')


def per_sequence_table(report, reference='dis'):
  """Each sequence's PSNR per method (inf: exact, as results.json's null), then each method's
  wins against `reference`, or why there are none."""
  methods = list(report['mean'])
  psnr = {}
  for row in report['triplets']:
    psnr.setdefault(row['key'], {})[row['method']] = (
        float('inf') if row['psnr'] is None else row['psnr'])
  lines = [f'{"sequence":<14}' + ''.join(f'{m:>14}' for m in methods)]
  for key in sorted(psnr):
    lines.append(f'{key:<14}' + ''.join(f'{psnr[key].get(m, float("nan")):>14.2f}'
                                        for m in methods))
  if reference in methods:
    wins = {m: sum(v.get(m, float('nan')) > v.get(reference, float('nan'))
                   for v in psnr.values()) for m in methods if m != reference}
    lines.append(f'wins vs {reference} (of {len(psnr)}): ' +
                 ', '.join(f'{m} {n}' for m, n in wins.items()))
  else:
    lines.append(f'wins vs {reference}: n/a, {reference} was not run (see the warnings above; '
                 'DIS needs OpenCV: pip install opencv-python-headless)')
  return '\n'.join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--data', default=DEFAULT_DATA)
  parser.add_argument('--output', default=os.path.join(_ROOT, 'out', 'bench_quality'))
  parser.add_argument('--model_path', default=None, help='default: the built-in model')
  parser.add_argument('--no_model', action='store_true', help='baselines only')
  parser.add_argument('--align', default='64')
  add_flip_average_flags(parser)
  parser.add_argument('--precision', choices=specs.PRECISIONS, default='float32',
                      help="arithmetic inside the model's convolutions")
  args = parser.parse_args(argv)
  if not os.path.isdir(args.data):
    where = f'{args.data} not found: the Middlebury-Other triplets live in ../shared/data'
    if args.data == DEFAULT_DATA:  # (`make bench` on a machine without them goes on)
      print(f'skipped: {where}', flush=True)
      return 0
    sys.exit(where)
  flags = ['--input', args.data, '--output', args.output, '--align', args.align,
           '--precision', args.precision]
  flags += ['--no_model'] if args.no_model else (
      ['--model_path', args.model_path] if args.model_path else [])
  if args.flip_average is not None:
    flags += ['--flip_average' if args.flip_average else '--no_flip_average']
  # evaluate's command: its table, a triplet that could not be scored named (each mean is then
  # over fewer sequences) and its exit status; a usage error in one line.
  status = evaluate.main(flags)
  if status == 2:
    return status
  with open(os.path.join(args.output, 'results.json')) as f:
    report = json.load(f)
  print()
  print(per_sequence_table(report))
  print(f'\nfull results: {args.output}/results.json, results.csv, comparisons/*.png')
  return status


if __name__ == '__main__':
  sys.exit(main())
