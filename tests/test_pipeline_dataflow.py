"""run_dataflow.sh --dry_run builds the whole Dataflow job offline, and the sdist staged for the
workers carries the packages and the built-in model."""

import glob
import os
import subprocess
import tarfile

from apache_beam.portability.api import beam_runner_api_pb2

from conftest import ROOT
from pipeline import run as run_module

STEPS = ['DiscoverClips', 'SplitIntoUnits', 'SpreadUnits', 'InterpolateUnits',
         'WritePairRecords', 'WriteErrorRecords', 'WriteSummary']


def test_run_dataflow_dry_run_is_offline_and_passes_flags_through(tiny_model):
  model_path, _ = tiny_model
  env = dict(os.environ, PYTHON=os.path.join(ROOT, '.venv', 'bin', 'python')
             if os.path.exists(os.path.join(ROOT, '.venv')) else 'python3')
  for name in ('STORAGE_EMULATOR_HOST', 'GCE_METADATA_HOST', 'GCE_METADATA_IP'):
    env.pop(name, None)
  proc = subprocess.run(
      [os.path.join(ROOT, 'run_dataflow.sh'), '--dry_run', '--project', 'demo', '--region',
       'us-central1', '--temp_location', 'gs://demo/tmp', '--input', 'gs://demo/in', '--output',
       'gs://demo/out', '--model_path', model_path, '--gpu', 'nvidia-tesla-t4',
       '--times_to_interpolate=3', '--max_num_workers', '4'],
      capture_output=True, text=True, env=env, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = proc.stdout
  for step in STEPS:
    assert f'  {step}\n' in out
  assert 'worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver' in out
  assert '--max_num_workers=4' in out and '--project=demo' in out


def test_staged_sdist_contains_packages_and_default_model(tiny_model):
  model_path, _ = tiny_model
  result = run_module.run([
      '--runner=DataflowRunner', '--project=demo', '--region=us-central1',
      '--temp_location=gs://demo/tmp', '--input=gs://demo/in', '--output=gs://demo/out',
      f'--model_path={model_path}', '--dry_run=True', f'--setup_file={ROOT}/setup.py'])
  staged = {}
  for env in result.job.proto_pipeline.components.environments.values():
    for dep in env.dependencies:
      path = beam_runner_api_pb2.ArtifactFilePayload.FromString(dep.type_payload).path
      staged[os.path.basename(path)] = path
  (sdist,) = [p for name, p in staged.items() if name.endswith('.tar.gz')]
  with tarfile.open(sdist) as tar:
    names = {n.split('/', 1)[1] for n in tar.getnames() if '/' in n}
  for module in ('film_net/__init__.py', 'film_net/interpolator.py', 'pipeline/run.py',
                 'transforms/interpolate.py', 'setup.py'):
    assert module in names
  model_files = {os.path.relpath(p, ROOT) for p in glob.glob(
      os.path.join(ROOT, 'film_net', 'default_model', '*'))}
  assert model_files <= names
  assert {n for n in names if n.startswith('film_net/default_model/')} == model_files
