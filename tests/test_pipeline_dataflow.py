"""run_dataflow.sh --dry_run builds the whole Dataflow job offline, and the sdist staged for the
workers carries the packages and the built-in model."""

import contextlib
import glob
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

from apache_beam.portability.api import beam_runner_api_pb2
from PIL import Image
import pytest

from conftest import BUCKET
from conftest import ROOT
from pipeline import evaluate
from pipeline import launch
from pipeline import run as run_module

STEPS = ['DiscoverClips', 'SpreadClips', 'SplitIntoUnits', 'SpreadUnits', 'InterpolateUnits',
         'WritePairRecords', 'WriteErrorRecords', 'WriteSummary']


def test_run_dataflow_dry_run_is_offline_and_passes_flags_through():
  env = dict(os.environ, PYTHON=os.path.join(ROOT, '.venv', 'bin', 'python')
             if os.path.exists(os.path.join(ROOT, '.venv')) else 'python3')
  for name in ('STORAGE_EMULATOR_HOST', 'GCE_METADATA_HOST', 'GCE_METADATA_IP'):
    env.pop(name, None)
  proc = subprocess.run(
      [os.path.join(ROOT, 'run_dataflow.sh'), '--dry_run', '--project', 'demo', '--region',
       'us-central1', '--temp_location', 'gs://demo/tmp', '--input', 'gs://demo/in', '--output',
       'gs://demo/out', '--model_path', 'gs://demo/models/tiny.npz', '--gpu', 'nvidia-tesla-t4',
       '--sdk_container_image', 'us-docker.pkg.dev/demo/film/worker:1', '--times_to_interpolate=3', '--input_fps', '24000/1001', '--output_fps=30000/1001',
       '--max_num_workers', '4'],
      capture_output=True, text=True, env=env, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'No module named build' not in proc.stdout + proc.stderr  # the sdist built by `build`
  assert 'previously-included' not in proc.stdout + proc.stderr  # (MANIFEST.in's prune tests)
  out = proc.stdout
  for step in STEPS:
    assert f'  {step}\n' in out
  assert 'worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver' in out
  assert '--max_num_workers=4' in out and '--project=demo' in out
  assert '--machine_type=n1-standard-8' in out
  # The pipeline's own settings, as its records will say them, beside Beam's options.
  assert '  input: "gs://demo/in"\n' in out and '"times_to_interpolate": 3' in out
  assert '"input_fps": "24000/1001", "output_fps": "30000/1001"' in out
  # One SDK process per worker, GPU or not: the model once, its calls one at a time.
  assert "--experiments=['use_runner_v2', 'no_use_multiple_sdk_containers']" in out
  # An L4 goes on a G2 machine, and a machine type that cannot take it is refused.
  def dry_run(*flags):
    return subprocess.run(
        [os.path.join(ROOT, 'run_dataflow.sh'), '--dry_run', '--project', 'demo',
         '--bucket', 'gs://demo/', '--input', 'gs://demo/in', '--output', 'gs://demo/out',
         *flags], capture_output=True, text=True, env=env, timeout=300, check=False)
  proc = dry_run('--gpu', 'nvidia-l4')  # as the real run, a GPU needs an image with CUDA's TF
  assert proc.returncode == 2 and 'needs --sdk_container_image' in proc.stderr
  # Beam's old name for the image: refused as none with --gpu, and let past the image's check.
  # (A model on cloud storage: the dry run leaves it to the workers, not loading TensorFlow.)
  proc = dry_run('--gpu', 'nvidia-l4', '--worker_harness_container_image',
                 'us-docker.pkg.dev/d/f/w:1', '--model_path', 'gs://demo/models/tiny.npz')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '--sdk_container_image=us-docker.pkg.dev/d/f/w:1' in proc.stdout
  assert '--machine_type=g2-standard-8' in proc.stdout
  assert "--experiments=['use_runner_v2', 'no_use_multiple_sdk_containers']" in proc.stdout
  proc = dry_run()  # CPU workers too
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "--experiments=['use_runner_v2', 'no_use_multiple_sdk_containers']" in proc.stdout
  assert 'worker_accelerator' not in proc.stdout
  assert '--temp_location=gs://demo/dataflow/tmp' in proc.stdout
  # A machine type that cannot take the GPU, or carries several, is refused before any work.
  for flags in (('--gpu', 'nvidia-l4', '--machine_type', 'n1-standard-8'),
                ('--gpu', 'nvidia-l4', '--machine_type', 'g2-standard-24'),
                ('--gpu', 'nvidia-tesla-t4', '--machine_type', 'g2-standard-8'),
                ('--gpu', 'nvidia-tesla-a100', '--machine_type', 'a2-highgpu-4g'),
                ('--gpu', 'nvidia-h100-80gb', '--machine_type', 'a3-highgpu-8g'),
                ('--gpu', 'nvidia-rtx-pro-6000', '--machine_type', 'g4-standard-96')):
    proc = dry_run(*flags)
    assert proc.returncode == 2 and 'needs a machine type that carries one' in proc.stderr, flags
  assert proc.stderr.endswith('carries one, not g4-standard-96\n')  # (no default to name)
  proc = dry_run('--gpu', 'nvidia-h100-80gb')  # no default machine type we could vouch for
  assert proc.returncode == 2 and 'pass --machine_type' in proc.stderr
  proc = dry_run('--gpu', 'NVIDIA-L4')  # sent as typed, Dataflow refused it once submitted
  assert proc.returncode == 2 and 'lowercase' in proc.stderr
  proc = dry_run('--gpu', 'nvidia-l4', '--gpu_count', '2')  # the second GPU would sit idle
  assert proc.returncode == 2 and 'one GPU' in proc.stderr
  proc = dry_run('--project', '--bucket', 'b')  # a flag is no value
  assert proc.returncode == 2 and '--project needs a value' in proc.stderr
  # Names Dataflow would refuse: one line each, before any work (a traceback after the model
  # loaded, or for a bucket a search for a default one online, dry run or not).
  for flags, message in ((('--project', 'My_Project'), 'Invalid Project ID (My_Project)'),
                         (('--job_name', 'My_Job'), 'Invalid job_name (My_Job)'),
                         (('--job_name=',), '--job_name is empty'),
                         (('--runner', 'DirectRunner'), 'this script submits to Dataflow'),
                         (('--bucket', 'My_Bucket'), 'Invalid GCS bucket (gs://My_Bucket/'),
                         (('--max_workers', 'ten'), '--max_workers ten: give a whole number'),
                         (('--input', 'file:///tmp/in'), 'cannot read this machine\'s disk')):
    proc = dry_run(*flags)
    assert proc.returncode == 2 and message in proc.stderr, (flags, proc.stderr[-2000:])
    assert 'Traceback' not in proc.stderr
  # Put on PATH as a link, the script looked for the project beside the link.
  link = os.path.join(tempfile.mkdtemp(), 'film-dataflow')
  os.symlink(os.path.join(ROOT, 'run_dataflow.sh'), link)
  proc = subprocess.run([link, '--dry_run', '--project', 'demo', '--bucket', 'demo', '--job_name',
                         'My_Job', '--input', 'gs://demo/in', '--output', 'gs://demo/out'],
                        capture_output=True, text=True, env=env, timeout=300, check=False)
  shutil.rmtree(os.path.dirname(link))
  assert proc.returncode == 2 and 'Invalid job_name (My_Job)' in proc.stderr, proc.stderr[-2000:]


def test_run_dataflow_reads_dry_run_values_as_the_pipeline_does(tmp_path):
  """Only 1/true/True/yes were a dry run: --dry_run=TRUE or =on submitted the job."""
  stand_in = tmp_path / 'python'  # prints the command run_dataflow.sh would run
  stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
  stand_in.chmod(0o755)
  def launch(value):
    return subprocess.run(
        [os.path.join(ROOT, 'run_dataflow.sh'), f'--dry_run={value}', '--project', 'demo',
         '--bucket', 'demo', '--input', 'gs://demo/in', '--output', 'gs://demo/out'],
        capture_output=True, text=True, env=dict(os.environ, PYTHON=str(stand_in)), timeout=60,
        check=False)
  for value in ('1', 'true', 'TRUE', 'Yes'):
    proc = launch(value)
    assert proc.returncode == 0 and '--dry_run=True\n' in proc.stdout, value
  for value in ('0', 'False', 'no'):
    proc = launch(value)
    assert proc.returncode == 0 and '--dry_run' not in proc.stdout, value
  proc = launch('on')
  assert proc.returncode == 2 and '--dry_run=on: give true or false' in proc.stderr
  assert not proc.stdout
  # A value after a space, as pipeline.run reads it: `--dry_run false` was a dry run here and
  # then an unknown argument `false` there.
  def launch_spaced(*flags, **env):
    return subprocess.run(
        [os.path.join(ROOT, 'run_dataflow.sh'), *flags, '--project', 'demo', '--bucket', 'demo',
         '--input', 'gs://demo/in', '--output', 'gs://demo/out'], capture_output=True, text=True,
        env=dict(os.environ, PYTHON=str(stand_in), **env), timeout=60, check=False)
  proc = launch_spaced('--dry_run', 'false')
  assert proc.returncode == 0 and '--dry_run' not in proc.stdout and 'false' not in proc.stdout
  proc = launch_spaced('--dry_run', 'TRUE')
  assert proc.returncode == 0 and '--dry_run=True\n' in proc.stdout and 'TRUE' not in proc.stdout
  # A CI server's own JOB_NAME (Jenkins: folder/job) was refused as if it were the user's.
  proc = launch_spaced(JOB_NAME='film-pipeline/nightly')
  assert proc.returncode == 2
  assert "the environment's JOB_NAME (film-pipeline/nightly) is no Dataflow job" in proc.stderr
  proc = launch_spaced('--job_name', 'nightly', JOB_NAME='film-pipeline/nightly')
  assert proc.returncode == 0 and '--job_name=nightly\n' in proc.stdout


def test_run_dataflow_reads_paths_from_the_callers_folder(tmp_path):
  """The script ran the pipeline from the checkout: a relative --requirements_file was looked
  for there (a traceback), or the checkout's file of the same name was taken in its place."""
  (tmp_path / 'my-requirements.txt').write_text('tensorflow==2.21.*\n')
  (tmp_path / 'pipeline').mkdir()  # a folder of the caller's by a package's name
  (tmp_path / 'pipeline' / '__init__.py').write_text('raise SystemExit("the caller\'s own")\n')
  env = dict(os.environ, PYTHON=os.path.join(ROOT, '.venv', 'bin', 'python')
             if os.path.exists(os.path.join(ROOT, '.venv')) else 'python3')
  for name in ('STORAGE_EMULATOR_HOST', 'GCE_METADATA_HOST', 'GCE_METADATA_IP', 'JOB_NAME'):
    env.pop(name, None)
  proc = subprocess.run(
      [os.path.join(ROOT, 'run_dataflow.sh'), '--dry_run', '--project', 'demo', '--bucket',
       'demo', '--input', 'gs://demo/in', '--output', 'gs://demo/out', '--requirements_file',
       'my-requirements.txt'], cwd=tmp_path, capture_output=True, text=True, env=env,
      timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '--requirements_file=my-requirements.txt\n' in proc.stdout
  assert '--requirements_cache=skip\n' in proc.stdout  # (a dry run fetches nothing)


def test_a_worker_image_of_another_beam_or_python_than_the_launcher_is_refused():
  """Dataflow wants a custom image's Beam SDK and Python to be the launcher's; `pip install .`
  can give the launcher any Beam setup.py allows, the image pins one (Dockerfile.worker)."""
  import apache_beam  # pylint: disable=import-outside-toplevel
  python = f'{sys.version_info[0]}.{sys.version_info[1]}'
  with open(os.path.join(ROOT, 'Dockerfile.worker')) as f:
    dockerfile = f.read()
  assert f'FROM apache/beam_python{python}_sdk:{apache_beam.__version__}\n' in dockerfile
  assert f"'apache-beam[gcp]=={apache_beam.__version__}'" in dockerfile  # kept as TF comes
  env = dict(os.environ, PYTHON=sys.executable)
  for name in ('STORAGE_EMULATOR_HOST', 'GCE_METADATA_HOST', 'GCE_METADATA_IP'):
    env.pop(name, None)
  flags = [os.path.join(ROOT, 'run_dataflow.sh'), '--dry_run', '--project', 'demo', '--bucket',
           'demo', '--input', 'gs://demo/in', '--output', 'gs://demo/out', '--gpu', 'nvidia-l4',
           '--sdk_container_image', 'us-docker.pkg.dev/demo/film/worker:1']
  for skew, message in (({'IMAGE_BEAM_VERSION': '2.70.0'}, f'Python {python} with Beam 2.70.0'),
                        ({'IMAGE_PYTHON_VERSION': '3.12'}, 'Python 3.12 with Beam')):
    proc = subprocess.run(flags, capture_output=True, text=True, env=dict(env, **skew),
                          timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f'the worker image {message}' in proc.stderr
  proc = subprocess.run(flags, capture_output=True, text=True, env=env, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '--sdk_container_image=us-docker.pkg.dev/demo/film/worker:1' in proc.stdout


DATAFLOW_DRY_RUN = ['--runner=DataflowRunner', '--project=demo', '--region=us-central1',
                    '--temp_location=gs://demo/tmp', '--dry_run=True']  # setup.py: this project's


def test_the_sdist_ships_the_model_and_its_card_and_no_stray_file_beside_them(tmp_path):
  """Beam builds the workers' sdist from the launcher's working tree: a .DS_Store, a cache or a
  partial copy in film_net/default_model/ shipped with the model; and run_dataflow.sh shipped
  without the worker requirements it passes, so from an unpacked sdist it failed (exit 2)."""
  tree = tmp_path / 'tree'
  shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
      '.venv', '.git', 'out', 'sample_footage', '*.egg-info', 'build', 'dist', 'tests'))
  model = tree / 'film_net' / 'default_model'
  (model / '.DS_Store').write_bytes(b'junk')
  (model / 'film_net_default.npz.partial').write_bytes(b'half a copy')
  (model / 'film_net_default copy.npz').write_bytes(b'a second copy')
  (model / '__pycache__').mkdir(exist_ok=True)
  (model / '__pycache__' / 'x.cpython-311.pyc').write_bytes(b'junk')
  # setuptools reads the last build's list first: a file an earlier MANIFEST.in took (a copy of
  # the model, a SavedModel once exported into the package) shipped for as long as it existed.
  (tree / 'film_net' / 'saved').mkdir()
  (tree / 'film_net' / 'saved' / 'saved_model.pb').write_bytes(b'an export')
  (tree / 'film_interpolation.egg-info').mkdir()
  (tree / 'film_interpolation.egg-info' / 'SOURCES.txt').write_text(
      'setup.py\nfilm_net/__init__.py\nfilm_net/default_model/film_net_default copy.npz\n'
      'film_net/saved/saved_model.pb\n', encoding='utf-8')
  done = subprocess.run([sys.executable, 'setup.py', '-q', 'sdist', '-d', str(tmp_path / 'dist')],
                        cwd=tree, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  (sdist,) = (tmp_path / 'dist').iterdir()
  with tarfile.open(sdist) as tar:
    names = {n.split('/', 1)[1] for n in tar.getnames() if '/' in n}
  assert 'film_net/saved/saved_model.pb' not in names
  assert {'film_net/interpolator.py', 'pipeline/run.py', 'transforms/files.py'} <= names
  assert {n for n in names if n.startswith('film_net/default_model/')} == {
      'film_net/default_model/MODEL_CARD.md', 'film_net/default_model/film_net_default.npz'}
  assert {'run_dataflow.sh', 'requirements-worker-cpu.txt', 'Dockerfile.worker'} <= names
  assert not [n for n in names if n.endswith('.pyc') or n.startswith('tests/')]
  # A worker without internet access installs it as Beam's boot does, in the worker image's
  # environment: pip's isolated build fetched setuptools from PyPI, and failed offline.
  with open(os.path.join(ROOT, 'Dockerfile.worker')) as f:
    image_env = dict(re.findall(r'^ENV (\w+)=(\S+)$', f.read(), re.M))
  env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
  env.update(image_env, PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
  done = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-cache-dir', '--upgrade',
                         '--force-reinstall', '--no-deps', '--target', str(tmp_path / 'worker'),
                         str(sdist)], capture_output=True, text=True, env=env, timeout=300)
  assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
  assert (tmp_path / 'worker' / 'film_net' / 'default_model' / 'film_net_default.npz').is_file()


def test_staged_sdist_contains_packages_and_default_model(tiny_model, capsys, tmp_path,
                                                         monkeypatch):
  dataflow = DATAFLOW_DRY_RUN

  # The real one is deleted once submitted; this test reads the sdist.
  @contextlib.contextmanager
  def kept_scratch(remote, pipeline_options=None):  # pylint: disable=unused-argument
    assert remote
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    yield

  monkeypatch.setattr(launch, 'submission_scratch', kept_scratch)
  # Dataflow's workers cannot read this machine's disk: local paths stop the job up front.
  assert run_module.main(dataflow + ['--input=gs://demo/in', '--output=/tmp/out',
                                     f'--model_path={tiny_model[0]}']) == 2
  err = capsys.readouterr().err
  assert '--output=/tmp/out' in err and f'--model_path={tiny_model[0]}' in err
  assert 'cannot read this machine' in err
  # Files Beam stages from this machine that are not there: a traceback after the model loaded.
  gs_paths = ['--input=gs://demo/in', '--output=gs://demo/out',
              '--model_path=gs://demo/models/tiny.npz']
  assert run_module.main(dataflow + gs_paths + [f'--requirements_file={tmp_path / "no.txt"}',
                                                '--extra_package=dist/x-1.0.tar.gz']) == 2
  assert capsys.readouterr().err == (
      f'error: --requirements_file {tmp_path / "no.txt"}; --extra_package dist/x-1.0.tar.gz: no '
      f'such file on this machine (Beam stages it for the workers from here)\n')
  assert run_module.main(dataflow + gs_paths + [f'--setup_file={tmp_path}']) == 2
  assert f'--setup_file {tmp_path}: a folder; Beam stages a file' in capsys.readouterr().err
  (tmp_path / 'setup.cfg').write_text('')
  assert run_module.main(dataflow + gs_paths + [f'--setup_file={tmp_path / "setup.cfg"}']) == 2
  assert 'setup.cfg: Beam builds a package from a setup.py or pyproject.toml only' in (
      capsys.readouterr().err)
  result = run_module.run(dataflow + ['--input=gs://demo/in', '--output=gs://demo/out',
                                      '--model_path=gs://demo/models/tiny.npz'])
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
  assert not [n for n in names if n.startswith('tests/')]  # workers run no tests
  # Launched directly (not through run_dataflow.sh), the workers got no TensorFlow (Beam's image
  # has none) and one model per vCPU: both came from the script alone.
  with open(staged['requirements-worker-cpu.txt'], encoding='utf-8') as f:
    assert 'tensorflow-cpu==' in f.read()
  assert ("--experiments=['use_runner_v2', 'no_use_multiple_sdk_containers']"
          in capsys.readouterr().out)
  # Dataflow fuses a ParDo into the one before it unless a shuffle is between: clips are spread
  # over the workers before planning (one listing of the output each), units before the model.
  steps = {t.unique_name: t for t in result.job.proto_pipeline.components.transforms.values()}
  for step, shuffle in (('SplitIntoUnits', 'SpreadClips'), ('InterpolateUnits', 'SpreadUnits')):
    assert set(steps[step].inputs.values()) <= set(steps[shuffle].outputs.values()), step


def test_a_bare_dry_run_flag_means_true_and_writes_nothing(tmp_path, tiny_model, capsys):
  """Beam's --dry_run takes a value; bare (as run_dataflow.sh takes it) it printed Beam's whole
  usage under the name run.py."""
  (tmp_path / 'in' / 'clip').mkdir(parents=True)
  for flags in (['--dry_run'], ['--dry_run', '--model_path', tiny_model[0]]):
    assert run_module.main([f'--input={tmp_path / "in"}', f'--output={tmp_path / "out"}',
                            *flags]) == 0
    out = capsys.readouterr().out
    for step in STEPS:
      assert f'  {step}\n' in out
  assert sorted(os.listdir(tmp_path)) == ['in']
  # Beam takes any value as true, `--dry_run=False` too, while the launcher wrote a real run's
  # records: the values are read as run_dataflow.sh reads them, others refused.
  argv = [f'--input={tmp_path / "in"}', f'--output={tmp_path / "out"}']
  for flags in (['--dry_run=YES'], ['--dry_run', '1']):
    assert run_module.main(argv + flags) == 0 and 'Job steps' in capsys.readouterr().out
  assert sorted(os.listdir(tmp_path)) == ['in']
  for flags in (['--dry_run=on'], ['--dry_run', 'maybe']):
    assert run_module.main(argv + flags) == 2
    assert 'is not one of true/false' in capsys.readouterr().err
  assert run_module.main(argv + ['--dry_run=False']) == 1  # a real run: the empty clip's record
  assert sorted(os.listdir(tmp_path / 'out')) == ['_runs']


def test_dry_runs_leave_nothing_in_the_temp_folder(tmp_path, monkeypatch, capsys):
  """Beam left the sdist (~9 MB) of every Dataflow submission, and a folder per local dry run,
  in the system's temp folder: a nightly job filled it."""
  system_temp = tmp_path / 'system-temp'
  system_temp.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(system_temp))
  (tmp_path / 'in' / 'clip').mkdir(parents=True)
  assert run_module.main(DATAFLOW_DRY_RUN + ['--input=gs://demo/in', '--output=gs://demo/out']) == 0
  assert 'Job steps' in capsys.readouterr().out
  assert not os.listdir(system_temp)
  assert run_module.main([f'--input={tmp_path / "in"}', f'--output={tmp_path / "out"}',
                          '--dry_run']) == 0
  assert 'Job steps' in capsys.readouterr().out
  assert not os.listdir(system_temp)
  assert tempfile.gettempdir() == str(system_temp)


def test_the_evaluation_on_dataflow_stages_the_code_and_its_dry_run_writes_nothing(
    gcs, tmp_path, monkeypatch, capsys):
  """The evaluation gave Dataflow no code (each worker would fail to import it), took paths on
  the launcher's disk, and its dry run ended in a traceback (no report to print)."""
  system_temp = tmp_path / 'system-temp'
  system_temp.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(system_temp))
  frame = io.BytesIO()
  Image.new('RGB', (64, 48), (90, 120, 30)).save(frame, format='PNG')
  for name in ('frame10.png', 'frame10i11.png', 'frame11.png'):
    gcs.blob(f'evalflow/in/t1/{name}').upload_from_string(frame.getvalue())
  assert evaluate.main(DATAFLOW_DRY_RUN + [f'--input={tmp_path}',
                                           f'--output=gs://{BUCKET}/evalflow/out']) == 2
  assert 'cannot read this machine' in capsys.readouterr().err
  assert evaluate.main(DATAFLOW_DRY_RUN + [f'--input=gs://{BUCKET}/evalflow/in',
                                           f'--output=gs://{BUCKET}/evalflow/out',
                                           '--baselines=repeat']) == 0
  out = capsys.readouterr().out
  assert 'Job steps' in out and '  Evaluate\n' in out
  assert f'--setup_file={os.path.join(ROOT, "setup.py")}' in out
  assert not list(gcs.list_blobs(prefix='evalflow/out'))
  assert not os.listdir(system_temp)


@pytest.mark.parametrize('setup_file', [None, 'relative'])
def test_the_sdist_is_built_from_a_copy_outside_the_checkout(tiny_model, tmp_path, monkeypatch,
                                                             setup_file):
  """Beam builds the sdist in the setup file's folder, writing film_interpolation.egg-info/
  there: a launcher that cannot write its checkout (a container's, run as another user or
  read-only) failed every launch, a dry run included. Also with `--setup_file ./setup.py`."""
  from apache_beam.runners.portability import stager  # pylint: disable=import-outside-toplevel
  real_build = stager.Stager._build_setup_package
  built_from = []

  def build(setup_file, temp_dir, build_setup_args=None):
    built_from.append(setup_file)
    sdist = real_build(setup_file, temp_dir, build_setup_args)
    shutil.copyfile(sdist, tmp_path / 'staged.tar.gz')  # (its scratch folder goes)
    return sdist

  monkeypatch.setattr(stager.Stager, '_build_setup_package', staticmethod(build))
  given = ([f'--setup_file={os.path.relpath(os.path.join(ROOT, "setup.py"))}']
           if setup_file else [])
  run_module.run(DATAFLOW_DRY_RUN + given + ['--input=gs://demo/in', '--output=gs://demo/out',
                                             '--model_path=gs://demo/models/tiny.npz'])
  (built,) = built_from
  assert os.path.basename(built) == 'setup.py'
  assert not os.path.realpath(built).startswith(ROOT + os.sep)
  assert not os.path.exists(built)  # (its scratch folder went once the job was built)
  with tarfile.open(tmp_path / 'staged.tar.gz') as tar:
    names = {n.split('/', 1)[1] for n in tar.getnames() if '/' in n}
  assert {'film_net/interpolator.py', 'pipeline/run.py', 'transforms/files.py', 'setup.py',
          'film_net/default_model/film_net_default.npz', 'film_net/default_model/MODEL_CARD.md',
          'run_dataflow.sh', 'requirements-worker-cpu.txt'} <= names


def test_the_copy_for_the_sdist_takes_files_alone(tmp_path, monkeypatch):
  """Copied whole, a package folder with a link that leads nowhere (an editor's lock file,
  `.#train.py`) failed every launch; a linked folder was copied in full."""
  tree = tmp_path / 'checkout'
  for name in ('setup.py', 'MANIFEST.in', 'film_net/__init__.py', 'film_net/sub/deep.py',
               'film_net/default_model/film_net_default.npz',
               'film_net/default_model/MODEL_CARD.md', 'film_net/default_model/copy.npz',
               'pipeline/run.py', 'transforms/files.py', 'film_net/__pycache__/x.cpython-311.pyc'):
    (tree / name).parent.mkdir(parents=True, exist_ok=True)
    (tree / name).write_text(name, encoding='utf-8')
  os.symlink('root@host.4242:1764900000', tree / 'film_net' / '.#train.py')
  (tmp_path / 'big').mkdir()
  (tmp_path / 'big' / 'export.bin').write_bytes(b'x' * 1000)
  os.symlink(tmp_path / 'big', tree / 'pipeline' / 'linked')
  monkeypatch.setattr(launch, '_PROJECT_ROOT', str(tree))
  setup = launch._copy_of_what_the_sdist_ships(str(tmp_path / 'scratch'))
  copied = {str(p.relative_to(tmp_path / 'scratch' / 'source'))
            for p in (tmp_path / 'scratch' / 'source').rglob('*') if p.is_file()}
  assert setup == str(tmp_path / 'scratch' / 'source' / 'setup.py')
  assert copied == {'setup.py', 'MANIFEST.in', 'film_net/__init__.py', 'film_net/sub/deep.py',
                    'film_net/default_model/film_net_default.npz',
                    'film_net/default_model/MODEL_CARD.md', 'pipeline/run.py',
                    'transforms/files.py'}


def test_the_launchs_copy_lists_what_manifest_in_ships():
  """Dataflow's sdist is built from a copy of the files MANIFEST.in ships, listed again in
  pipeline.run: a file added to MANIFEST.in alone would be missing on the workers."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(root, 'MANIFEST.in'), encoding='utf-8') as f:
    lines = [line.split() for line in f if line.strip() and not line.startswith('#')]
  included = {name for words in lines if words[0] == 'include' for name in words[1:]}
  assert included and included <= set(launch._SDIST_FILES)
  assert {words[1] for words in lines if words[0] == 'recursive-include'} == set(
      launch._SDIST_PACKAGES)
  assert all(words[2:] == ['*.py'] for words in lines if words[0] == 'recursive-include')


def test_a_failed_dataflow_job_ends_the_launcher_in_its_own_words(tmp_path, tiny_model,
                                                                  monkeypatch, capsys):
  """Beam raises when a Dataflow job ends FAILED or CANCELLED: the launcher (a nightly DAG's
  task) printed that traceback. A real job needs the network: Beam's result is simulated."""
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  from apache_beam.runners.dataflow import dataflow_runner  # pylint: disable=import-outside-toplevel

  class FailedJob:
    state = 'FAILED'

    def wait_until_finish(self, duration=None):
      raise dataflow_runner.DataflowRuntimeException(
          'Dataflow pipeline failed. State: FAILED, Error: boom', self)

  def run(pipeline, *args, **kwargs):  # (as Beam's run, the pipeline's temp folder goes)
    shutil.rmtree(pipeline.local_tempdir, ignore_errors=True)
    return FailedJob()

  monkeypatch.setattr(beam.Pipeline, 'run', run)
  (tmp_path / 'in' / 'clip').mkdir(parents=True)
  assert run_module.main([f'--input={tmp_path / "in"}', f'--output={tmp_path / "out"}',
                          f'--model_path={tiny_model[0]}']) == 1
  err = capsys.readouterr().err
  assert err.startswith('error: Dataflow pipeline failed. State: FAILED, Error: boom\n')
  assert 'the same command finishes the job' in err and 'Traceback' not in err
  assert _evaluate_one_triplet(tmp_path) == 1
  err = capsys.readouterr().err
  assert err.startswith('error: Dataflow pipeline failed. State: FAILED, Error: boom\n')
  assert 'Dataflow console' in err and 'Traceback' not in err


def _evaluate_one_triplet(tmp_path):
  """`pipeline.evaluate`'s command line on one black triplet, baseline 'repeat' alone."""
  frame = tmp_path / 'triplets' / 't1'
  frame.mkdir(parents=True)
  for name in ('frame10.png', 'frame10i11.png', 'frame11.png'):
    Image.new('RGB', (64, 48)).save(frame / name)
  return evaluate.main([f'--input={tmp_path / "triplets"}', f'--output={tmp_path / "eval"}',
                        '--no_model', '--baselines=repeat'])


def test_an_interrupted_wait_on_a_dataflow_job_says_the_job_runs_on(tmp_path, tiny_model,
                                                                    monkeypatch, capsys):
  """Ctrl-C while the launcher waits on a Dataflow job stops the waiting, not the job: the
  launcher said the run stopped and the same command finishes it, which starts a second job over
  the first. Beam's result is simulated (a real job needs the network)."""
  import apache_beam as beam  # pylint: disable=import-outside-toplevel

  class RunningJob:
    state = 'RUNNING'
    has_job = True

    def job_id(self):
      return '2026-12-03_21_00_00-123'

    def wait_until_finish(self, duration=None):
      raise KeyboardInterrupt

  def run(pipeline, *args, **kwargs):
    shutil.rmtree(pipeline.local_tempdir, ignore_errors=True)
    return RunningJob()

  monkeypatch.setattr(beam.Pipeline, 'run', run)
  (tmp_path / 'in' / 'clip').mkdir(parents=True)
  assert run_module.main([f'--input={tmp_path / "in"}', f'--output={tmp_path / "out"}',
                          f'--model_path={tiny_model[0]}', '--region=europe-west4',
                          '--project=demo']) == 130
  err = capsys.readouterr().err
  # Beam logs the job's address at INFO, which the command line leaves out: said at submission.
  assert err.startswith('submitted Dataflow job 2026-12-03_21_00_00-123: https://console.cloud.'
                        'google.com/dataflow/jobs/europe-west4/2026-12-03_21_00_00-123?project='
                        'demo (waiting for it to end)\n')
  err = err.split('\n', 1)[1]
  assert err.startswith('interrupted: stopped waiting; Dataflow job 2026-12-03_21_00_00-123 '
                        'runs on')
  assert 'gcloud dataflow jobs cancel 2026-12-03_21_00_00-123 --region europe-west4' in err
  assert 'the same command finishes the job' not in err and 'Traceback' not in err
  assert _evaluate_one_triplet(tmp_path) == 130
  err = capsys.readouterr().err.split('\n', 1)[1]  # (after its address)
  assert err.startswith('interrupted: stopped waiting; Dataflow job 2026-12-03_21_00_00-123 '
                        'runs on')


def test_workers_get_tensorflow_unless_an_image_or_requirements_bring_it():
  """A direct DataflowRunner launch: TensorFlow from requirements-worker-cpu.txt, unless an
  image (by either of Beam's names for it) or the user's requirements bring it; a user's
  experiments are kept, ours added once."""
  from apache_beam.options.pipeline_options import DebugOptions  # pylint: disable=import-outside-toplevel
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  from apache_beam.options.pipeline_options import SetupOptions  # pylint: disable=import-outside-toplevel

  def equipped(*flags):
    options = PipelineOptions(list(flags))
    launch.equip_the_workers(options, 'DataflowRunner')
    return options.view_as(SetupOptions), options.view_as(DebugOptions).experiments

  setup, experiments = equipped('--experiments=use_runner_v2', '--experiments=shuffle_mode=service')
  assert setup.requirements_file == os.path.join(ROOT, 'requirements-worker-cpu.txt')
  assert setup.setup_file == os.path.join(ROOT, 'setup.py')
  assert sorted(experiments) == ['no_use_multiple_sdk_containers', 'shuffle_mode=service',
                                 'use_runner_v2']
  assert 'no_use_multiple_sdk_containers' not in equipped(  # a user's choice stands
      '--experiments=use_multiple_sdk_containers')[1]
  for flag in ('--sdk_container_image=i:1', '--worker_harness_container_image=i:1',
               '--requirements_file=mine.txt'):
    assert equipped(flag)[0].requirements_file in (None, 'mine.txt'), flag
  # GPUs asked of Dataflow directly got tensorflow-cpu: the job ran on the CPUs beside them.
  for gpus in ('--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;'
               'install-nvidia-driver', '--experiments=worker_accelerator=type:nvidia-tesla-t4',
               '--resource_hints=accelerator=type:nvidia-l4;count:1;install-nvidia-driver'):
    with pytest.raises(launch.UsageError, match='GPU workers .* need --sdk_container_image'):
      equipped(gpus)
    assert equipped(gpus, '--sdk_container_image=i:1')[0].requirements_file is None
  # Another --extra_package (a library of the user's) staged it alone: no worker had the code.
  assert equipped('--extra_package=dist/other-1.0-py3-none-any.whl')[0].setup_file == (
      os.path.join(ROOT, 'setup.py'))
  for own in ('film_interpolation-0.1.0.tar.gz', 'film-interpolation-0.1.0.tar.gz',
              'film_interpolation-0.1.0-py3-none-any.whl'):
    assert equipped(f'--extra_package=dist/{own}')[0].setup_file is None, own
  for other in ('film_interpolation_extras-1.0.tar.gz', 'film-interpolation-tools-2.0.tar.gz'):
    assert equipped(f'--extra_package=dist/{other}')[0].setup_file, other
  # A requirements file of one's own: a dry run fetched its packages (online), and a real
  # launch fetched them again each night, into a scratch folder deleted after the submission.
  assert equipped('--requirements_file=mine.txt', '--dry_run=True')[0].requirements_cache == 'skip'
  assert equipped('--requirements_file=mine.txt')[0].requirements_cache == os.path.join(
      tempfile.gettempdir(), 'beam-requirements-cache')
  assert equipped('--requirements_file=mine.txt', '--requirements_cache=/c')[
      0].requirements_cache == '/c'


def test_the_local_runners_flags_on_a_remote_job_are_named_as_without_effect(caplog):
  """`--direct_num_workers 8` on a Dataflow launch, meant as its parallelism, was taken without a
  word; on a local run it says nothing."""
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  flags = ['--direct_num_workers=8', '--direct_running_mode=multi_processing']
  launch.warn_of_local_flags(PipelineOptions(flags), None)
  launch.warn_of_local_flags(PipelineOptions([]), 'DataflowRunner')
  assert not caplog.records
  launch.warn_of_local_flags(PipelineOptions(flags), 'DataflowRunner')
  (record,) = caplog.records
  assert record.getMessage().startswith('--direct_num_workers, --direct_running_mode: the local '
                                        'runner\'s, no effect on DataflowRunner')


def test_save_main_session_is_named_as_unused(caplog):
  """`--save_main_session` was overridden without a word; it is still off (the workers import
  every step from the staged package), and the launch says so."""
  from apache_beam.options.pipeline_options import SetupOptions  # pylint: disable=import-outside-toplevel
  assert not launch.job_options(['--runner=DataflowRunner']).view_as(
      SetupOptions).save_main_session
  assert not caplog.records
  options = launch.job_options(['--runner=DataflowRunner', '--save_main_session'])
  assert options.view_as(SetupOptions).save_main_session is False
  (record,) = caplog.records
  assert record.getMessage().startswith('--save_main_session: not used; every step of this job')
  caplog.clear()
  assert launch.job_options(['--save_main_session'], save_main_session=True).view_as(
      SetupOptions).save_main_session is True
  assert not caplog.records


def test_dataflow_options_beam_checks_late_are_usage_errors_and_no_bucket_is_made(
    gcs, capsys, monkeypatch):
  """Beam's checks for Dataflow ran only once the job was built (a traceback after the model
  load), and without a usable temp location a dry run looked for a default bucket online and
  created one in the project."""
  monkeypatch.delenv('CLOUDSDK_COMPUTE_REGION', raising=False)
  buckets = {b.name for b in gcs.client.list_buckets()}
  base = ['--runner=DataflowRunner', '--project=demo', '--dry_run=True', '--input=gs://demo/in',
          '--output=gs://demo/out']
  region, temp = '--region=us-central1', '--temp_location=gs://demo/tmp'
  cases = [([region], '--temp_location gs://BUCKET/PATH is needed'),
           ([region, '--temp_location='], '--temp_location is empty'),
           ([region, '--temp_location=gs://demo'], "Invalid GCS path: 'gs://demo'"),
           (['--region=', temp], '--region is empty'),
           ([region, temp, '--num_workers=20', '--max_num_workers=10'],
            'num_workers (20) cannot exceed max_num_workers (10)'),
           ([region, temp, '--worker_region=us-east1', '--worker_zone=us-east1-b'],
            'worker_region and worker_zone are mutually exclusive')]
  if not shutil.which('gcloud'):  # (Beam takes gcloud's region where one is configured)
    cases.append(([temp], 'Missing required option: region'))
  for flags, message in cases:
    for main in (run_module.main, evaluate.main):
      assert main(base + flags) == 2, flags
      err = capsys.readouterr().err
      assert message in err and 'Traceback' not in err, (flags, err[-2000:])
  assert {b.name for b in gcs.client.list_buckets()} == buckets


@pytest.mark.parametrize('runner', ['DataflowRuner', 'Bogus'])
def test_a_runner_beam_does_not_know_is_a_usage_error_naming_it(tmp_path, capsys, runner):
  """A misspelt --runner was a 20-line traceback after the model load (gs:// paths) or blamed
  the paths ('Bogus workers cannot read this machine's disk')."""
  (tmp_path / 'in').mkdir()
  for main in (run_module.main, evaluate.main):
    assert main([f'--input={tmp_path / "in"}', f'--output={tmp_path / "out"}',
                 f'--runner={runner}', '--dry_run=True']) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: --runner {runner}: no such runner; one of DataflowRunner, ')
    assert 'Traceback' not in err and 'disk' not in err
