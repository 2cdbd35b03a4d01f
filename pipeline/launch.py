"""How a job of this project is launched and ended, for `pipeline.run` and `pipeline.evaluate`
alike: the local runner, what Dataflow's workers need and the checks before a remote job is
built, the dry run, waiting on a job, and the command line's outcome (log filters, signals, a
full disk, the exit status).

Local runs use Beam's FnApiRunner directly (`LocalRunner`): Beam 2.77's 'DirectRunner' first
tries to download the Prism runner, which logs errors and stalls on machines without network.
The FnApiRunner is what 'DirectRunner' falls back to for batch jobs and honours
--direct_running_mode (in_memory, multi_threading, multi_processing) and --direct_num_workers.
"""

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DebugOptions
from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import SetupOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import TestOptions
from apache_beam.options.pipeline_options import WorkerOptions
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.runner import PipelineRunner
from google.protobuf import text_format

from pipeline import local_worker
from transforms import files
from transforms import interpolate
from transforms import stopping

_log = logging.getLogger(__name__)

_LOCAL_RUNNERS = (None, 'DirectRunner', 'SwitchingDirectRunner', 'FnApiRunner', 'LocalRunner')
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LocalRunner(PipelineRunner):
  """Beam's FnApiRunner with the pipeline options provisioned, as 'DirectRunner' sets it up."""

  def run_pipeline(self, pipeline, options):
    # pylint: disable=import-outside-toplevel
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    if options.view_as(DirectOptions).direct_running_mode == 'multi_processing':
      # Worker subprocesses must import transforms/ and film_net/ even when not pip-installed.
      path = os.environ.get('PYTHONPATH', '')
      if _PROJECT_ROOT not in path.split(os.pathsep):
        os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (_PROJECT_ROOT, path) if p)
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision_info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    runner = fn_runner.FnApiRunner(provision_info=provision_info)
    run_graph = runner.run_via_runner_api  # (what run_pipeline hands the job's graph to)
    runner.run_via_runner_api = lambda proto, options: run_graph(
        _workers_tied_to_the_launcher(proto), options)
    with _watching_the_workers() as lost:
      try:
        return runner.run_pipeline(pipeline, options)
      except KeyboardInterrupt:
        _end_the_workers()
        raise
      except Exception as e:  # pylint: disable=broad-except
        # A worker process gone mid-job (the OOM killer's SIGKILL, most often): Beam's thread
        # that waits on it says so, maybe after the job's own error (a stream cut short).
        deadline = time.monotonic() + _WORKER_EXIT_WAIT_SECONDS
        while not lost and time.monotonic() < deadline and _beam_worker_threads():
          time.sleep(0.05)
        if not lost:
          raise
        _end_the_workers()
        raise WorkerLost(_worker_lost_message(lost[0], options)) from e


# Beam's launcher-side threads for a multi_processing worker: its process, its control stream,
# its data stream.
_BEAM_WORKER_THREADS = ('run_worker', 'beam_control_read', 'read_grpc_client_inputs')
# What Beam's thread that waits on a multi_processing worker raises when it ends mid-job.
_WORKER_EXIT = re.compile(r'Worker subprocess exited with return code (-?\d+)')
# How long a job's error waits for that thread to say whether a worker was lost.
_WORKER_EXIT_WAIT_SECONDS = 5
# Exit codes of this run's multi_processing workers that ended mid-job (`_watching_the_workers`).
_lost_workers = []


class WorkerLost(RuntimeError):
  """A local multi_processing worker process ended mid-job; the message says how and why."""


def _beam_worker_threads():
  """Beam's launcher-side threads of multi_processing workers now running."""
  return [t for t in threading.enumerate() if t.name in _BEAM_WORKER_THREADS]


def _worker_lost_message(code, options):
  """One line for a worker process that ended with `code` (Popen's: -N for signal N)."""
  workers = options.view_as(DirectOptions).direct_num_workers or os.cpu_count()  # (Beam's 0)
  how = f'exited with status {code}'
  if code < 0:
    try:
      how = f'was killed by signal {-code} ({signal.Signals(-code).name})'
    except ValueError:
      how = f'was killed by signal {-code}'
  why = ''
  if code == -signal.SIGKILL:
    fewer = ('fewer --direct_num_workers, --tile or --direct_running_mode multi_threading'
             if workers > 1 else '--tile')
    why = (f': on Linux most often the kernel\'s OOM killer, the memory used up: each worker '
           f'process ({workers} in this run) holds the model and its frames\' activations (see '
           f'"Large frames" in README.md); run with {fewer}, or on a machine with more memory')
  return (f'a worker process of the job {how}, and the job stopped{why}. What the workers '
          f'finished is whole (done markers); the same command finishes the job')


def _end_the_workers():
  """Stopped by a signal to the launcher alone (`kill PID`, `timeout`, a scheduler; a terminal's
  Ctrl-C reaches every process), the job's multi_processing workers ran on, and the launcher,
  its line printed, never exited: Beam's thread waiting on each worker kept it alive. Ends
  this process's Beam SDK worker children (read from /proc: Linux only; elsewhere the launcher
  may still wait on a worker that runs on)."""
  try:
    children = set()
    for task in os.listdir('/proc/self/task'):
      with open(f'/proc/self/task/{task}/children', encoding='ascii') as listed:
        children.update(int(pid) for pid in listed.read().split())
  except OSError:
    return
  for pid in children:
    try:
      with open(f'/proc/{pid}/cmdline', 'rb') as cmdline:
        command = cmdline.read()
      if b'pipeline.local_worker' in command or b'sdk_worker_main' in command:
        os.kill(pid, signal.SIGTERM)
    except OSError:  # (gone meanwhile)
      pass
  # Beam's threads that watched and served them end with them; each raises as it goes, said
  # nothing of while the job stops (`_watching_the_workers`).
  for thread in _beam_worker_threads():
    thread.join(timeout=10)


@contextlib.contextmanager
def _watching_the_workers():
  """Yields the exit codes of multi_processing workers that end mid-job (`_lost_workers`).
  Beam's thread that watched such a worker raised "Worker subprocess exited with return code
  -9" with a traceback, and its stream threads theirs, 240 lines and no word of why (the job
  then stopped on "Channel closed prematurely"): the job's error says it in one line instead
  (`WorkerLost`). So are they left unsaid once a stop is requested (Ctrl-C, SIGTERM): the job
  ends its workers, after the one line that says the run stopped. A stream thread's error with
  no worker lost is said when the job ends."""
  previous = threading.excepthook
  held = []
  del _lost_workers[:]

  def hook(args):
    ended = _WORKER_EXIT.match(str(args.exc_value))
    if stopping.requested() and (ended or args.thread.name in _BEAM_WORKER_THREADS):
      return
    if ended:
      _lost_workers.append(int(ended.group(1)))
    elif args.thread.name in _BEAM_WORKER_THREADS:
      held.append(args)
    else:
      previous(args)
  threading.excepthook = hook
  try:
    yield _lost_workers
  finally:
    threading.excepthook = previous
    for args in held if not _lost_workers else ():
      previous(args)


def _workers_tied_to_the_launcher(pipeline_proto):
  """Each multi_processing worker started as `local_worker`: Ctrl-C (which reaches every process
  of a terminal's job) left to the launcher, which stops the job (each worker died of it with
  its own screen of tracebacks, 200 lines for two workers, around the launcher's one line), and
  the worker ended with the launcher when that is killed outright."""
  from apache_beam.portability import python_urns  # pylint: disable=import-outside-toplevel
  beam_worker = '-m apache_beam.runners.worker.sdk_worker_main'
  for environment in pipeline_proto.components.environments.values():
    if environment.urn == python_urns.SUBPROCESS_SDK:
      command = environment.payload.decode('utf-8')
      if command.endswith(beam_worker):
        command = (f'export {local_worker.LAUNCHER_PID}={os.getpid()}; '
                   f'exec {command[:-len(beam_worker)]}-m pipeline.local_worker')
      else:
        command = f'exec {command}'
      environment.payload = f"trap '' INT; {command}".encode('utf-8')
  return pipeline_proto


def truthy(value):
  """A Beam option's value read as true (--dry_run's, as pipeline.options leaves it)."""
  return str(value).lower() in ('true', '1', 'yes')


def is_local_runner(runner):
  """Whether `runner` (as `runner_name` gives it) runs on this machine."""
  return runner in _LOCAL_RUNNERS


def runner_name(runner):
  """The runner's class name as Beam reads --runner ('direct', 'dataflow', 'DataFlowRunner':
  any case, 'runner' optional), so that the local and Dataflow checks see what Beam will run;
  a dotted path to a class of one's own as given. Any other name is a usage error (Beam's own
  refusal is a traceback after the model load)."""
  if not isinstance(runner, str):
    return runner
  known = (*StandardOptions.KNOWN_RUNNER_NAMES, 'LocalRunner')
  names = {n.lower(): n for n in known}
  key = runner.rsplit('.', 1)[-1].lower()
  name = names.get(key, names.get(key + 'runner'))
  if name is None and '.' not in runner:
    raise UsageError(f'--runner {runner}: no such runner; one of {", ".join(known)}')
  if name in _OTHER_LOCAL_RUNNERS:  # (refused as remote: "workers cannot read this disk")
    raise UsageError(f'--runner {runner}: a local runner this tool does not run on; the default, '
                     f'DirectRunner, runs here (--direct_running_mode in_memory, '
                     f'multi_threading or multi_processing)')
  return name or runner


# Beam's other runners on this machine: an older direct runner, a notebook's, and one that would
# download its binary.
_OTHER_LOCAL_RUNNERS = ('BundleBasedDirectRunner', 'TestDirectRunner', 'InteractiveRunner',
                        'PrismRunner')


def check_reachable(known, offline=False):
  """--input, --output or --model_path in a bucket that cannot be listed, and an --input or
  --output that Beam cannot carry (a name that is not UTF-8: a traceback mid-job), are usage
  errors, said before any work (not a traceback, the evaluation's after all the scoring);
  `offline`: a dry run asks no server."""
  for flag, path in (('--input', known.input), ('--output', known.output)):
    why = files.unaddressable(path)
    if why:
      raise UsageError(f'{flag} {files.printable(path)}: {why}')
  for flag, path in (('--input', known.input), ('--output', known.output),
                     ('--model_path', known.model_path)):
    why = None if offline or not path else files.unreachable(path)
    if why:
      failing = why.startswith('cloud storage')  # (not the command's fault: try it again)
      raise (StorageUnavailable if failing else UsageError)(f'{flag} {path}: {why}')


class UsageError(ValueError):
  """Flags that cannot work together; the command line exits with status 2 before any work."""


class StorageUnavailable(RuntimeError):
  """Cloud storage failing (beyond its client's retries) where the job's paths are checked or its
  model loaded: exit status 1 before any work, not a usage error's 2 (the command is right)."""


class StillRunning(KeyboardInterrupt):
  """Ctrl-C or SIGTERM while the launcher waited on a Dataflow job, which runs on without it."""


def wait_for(result, pipeline_options):
  """`result.wait_until_finish()`. Interrupted while a Dataflow job runs, it stops the waiting,
  not the job: raises StillRunning saying so and how to cancel it, where the message for a
  local run (what is done is kept, the same command finishes) would mislead."""
  submitted = getattr(result, 'has_job', False)  # (a Dataflow job; not a template's)
  try:
    if submitted:  # Beam logs the job's address at INFO, which the command line leaves out
      cloud = pipeline_options.view_as(GoogleCloudOptions)
      print(f'submitted Dataflow job {result.job_id()}: https://console.cloud.google.com/'
            f'dataflow/jobs/{cloud.region}/{result.job_id()}?project={cloud.project} (waiting '
            f'for it to end)', file=sys.stderr)
    return result.wait_until_finish()
  except KeyboardInterrupt:
    if not submitted:
      raise
    job, region = result.job_id(), pipeline_options.view_as(GoogleCloudOptions).region
    raise StillRunning(
        f'stopped waiting; Dataflow job {job} runs on (started again, the same command would run '
        f'a second job over the same output); to stop it: gcloud dataflow jobs cancel {job} '
        f'--region {region}') from None


def run_and_wait(p, pipeline_options, remote):
  """`p.run()`, then `wait_for` its end. Interrupted while a remote job is submitted, a job may
  have started: StillRunning says so (a second one would run over the same output)."""
  try:
    with submission_scratch(remote, p.options):
      result = p.run()
  except KeyboardInterrupt:
    if not remote:
      raise
    region = pipeline_options.view_as(GoogleCloudOptions).region
    raise StillRunning(f'stopped while the job was submitted: a Dataflow job may have started; '
                       f'look before the same command starts another (gcloud dataflow jobs '
                       f'list --region {region} --status active)') from None
  wait_for(result, pipeline_options)
  return result


def equip_the_workers(pipeline_options, runner):
  """What Dataflow's workers need that Beam's defaults leave out, for `run_dataflow.sh` and a
  direct `--runner DataflowRunner` alike:
  - the code: film_net/, pipeline/ and transforms/ from an sdist Beam builds from --setup_file
    (this project's setup.py unless given one or an --extra_package of this project); without
    it every bundle fails;
  - TensorFlow: Beam's default image has none, so without --sdk_container_image the workers
    pip-install the tested CPU build at start-up (requirements-worker-cpu.txt), unless given
    a --requirements_file of their own; GPU workers (a worker_accelerator) need an image or
    such a file, or they would leave the GPUs idle;
  - one SDK process per worker, not one per vCPU: the model is loaded once and its threads share
    it, so a worker's memory is one call's (4.4 GB at 1080p for the built-in model), not that
    times the vCPUs."""
  if runner != 'DataflowRunner':
    return
  setup = pipeline_options.view_as(SetupOptions)
  if not (setup.setup_file or any(map(_is_own_package, setup.extra_packages or []))):
    # (another --extra_package, a library of the user's, staged it alone: no worker had the code)
    setup.setup_file = _own_file('setup.py', '--setup_file (this project\'s setup.py) or '
                                 '--extra_package (its sdist); the workers need the code')
  worker = pipeline_options.view_as(WorkerOptions)
  image = worker.sdk_container_image or worker.worker_harness_container_image  # (its old name)
  if not (image or setup.requirements_file):
    if _asks_for_gpus(pipeline_options):
      raise UsageError('GPU workers (an accelerator) need --sdk_container_image with the '
                       'CUDA build of TensorFlow (see Dockerfile.worker), or a '
                       '--requirements_file that brings it: without either they would get '
                       'tensorflow-cpu (requirements-worker-cpu.txt) and leave the GPUs idle')
    setup.requirements_file = _own_file(
        'requirements-worker-cpu.txt', '--sdk_container_image (an image with TensorFlow) or '
        '--requirements_file; the workers need TensorFlow')
    setup.requirements_cache = setup.requirements_cache or 'skip'  # (no local wheel cache)
  elif setup.requirements_file and not setup.requirements_cache:
    # Beam downloads the file's packages into a cache under the temp folder, which is
    # `submission_scratch`'s while it builds: kept where Beam keeps it, so a nightly launch does
    # not fetch TensorFlow's wheels again; a dry run stays offline and fetches none.
    setup.requirements_cache = ('skip' if truthy(pipeline_options.view_as(TestOptions).dry_run)
                                else os.path.join(tempfile.gettempdir(), 'beam-requirements-cache'))
  debug = pipeline_options.view_as(DebugOptions)
  for experiment in ('use_runner_v2', 'no_use_multiple_sdk_containers'):
    if not {experiment, experiment.removeprefix('no_')} & set(debug.experiments or []):
      debug.add_experiment(experiment)  # (unless given, or its opposite)


def _asks_for_gpus(pipeline_options):
  """Dataflow's own ways to give workers GPUs: a worker_accelerator service option (as
  run_dataflow.sh --gpu passes it) or experiment, or an accelerator resource hint."""
  wanted = ((pipeline_options.view_as(GoogleCloudOptions).dataflow_service_options or [])
            + (pipeline_options.view_as(DebugOptions).experiments or []))
  hints = pipeline_options.view_as(StandardOptions).resource_hints or []
  return (any(option.startswith('worker_accelerator') for option in wanted)
          or any(hint.strip().startswith('accelerator=') for hint in hints))


def _is_own_package(path):
  """Whether an --extra_package is this project's: an sdist or wheel of film-interpolation, its
  name followed by its version (not film_interpolation_extras-1.0, another's)."""
  return re.match(r'film[-_.]interpolation-[0-9]', os.path.basename(path), re.I) is not None


def _own_file(name, otherwise):
  """This project's file `name` for a Dataflow job; where it is not (an installed package
  without its checkout), a usage error: pass `otherwise`."""
  path = os.path.join(_PROJECT_ROOT, name)
  if not os.path.isfile(path):
    raise UsageError(f'--runner DataflowRunner: pass {otherwise}')
  return path


@contextlib.contextmanager
def submission_scratch(remote, pipeline_options=None):
  """What Beam builds to submit a remote job (the sdist with the built-in model, ~9 MB, and the
  launcher's package list) goes into tempfile.mkdtemp() folders Beam never deletes: a nightly
  submission would fill the launcher's temp folder. While a remote job is built and submitted
  they go into one folder of ours, deleted once the job is submitted (a dry run's: built).
  This project's sdist is built there too, from a copy of what it ships: Beam builds in the
  setup file's folder, writing film_interpolation.egg-info/ there, so a checkout the launcher
  cannot write (a container's, run as another user or read-only) failed every launch.
  `pipeline_options`: the pipeline's own (`p.options`: Beam copies the options it is given)."""
  if not remote:
    yield
    return
  saved = tempfile.tempdir
  folder = tempfile.mkdtemp(prefix='film-submit-')
  tempfile.tempdir = folder
  setup = pipeline_options.view_as(SetupOptions) if pipeline_options is not None else None
  given = setup.setup_file if setup is not None else None
  own_setup = bool(given) and (os.path.realpath(given) ==
                               os.path.realpath(os.path.join(_PROJECT_ROOT, 'setup.py')))
  try:
    if own_setup:  # (however spelled: `--setup_file ./setup.py`, as setup.py says)
      setup.setup_file = _copy_of_what_the_sdist_ships(folder)
    yield
  finally:
    if own_setup:
      setup.setup_file = given
    tempfile.tempdir = saved
    shutil.rmtree(folder, ignore_errors=True)


# What setup.py and MANIFEST.in take from the checkout: beside the files below, the packages'
# modules and the built-in model with its card (MANIFEST.in ships nothing else of them).
_SDIST_FILES = ('setup.py', 'MANIFEST.in', 'README.md', 'run_dataflow.sh', 'Dockerfile.worker',
                'requirements-worker-cpu.txt',
                'film_net/default_model/film_net_default.npz',
                'film_net/default_model/MODEL_CARD.md')
_SDIST_PACKAGES = ('film_net', 'pipeline', 'transforms')  # their modules, as MANIFEST.in says


def _copy_of_what_the_sdist_ships(folder):
  """Copies what the sdist ships into `folder`/source; returns the copy's setup.py. Files
  alone, as MANIFEST.in picks them: a link that leads nowhere (an editor's lock file) is passed
  over, and a linked folder is not walked."""
  tree = os.path.join(folder, 'source')
  wanted = [name for name in _SDIST_FILES if os.path.isfile(os.path.join(_PROJECT_ROOT, name))]
  for package in _SDIST_PACKAGES:
    for here, folders, names in os.walk(os.path.join(_PROJECT_ROOT, package)):
      folders[:] = [f for f in folders if f != '__pycache__']
      modules = [os.path.join(here, name) for name in names if name.endswith('.py')]
      wanted += [os.path.relpath(path, _PROJECT_ROOT) for path in modules if os.path.isfile(path)]
  for name in wanted:
    os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
    shutil.copyfile(os.path.join(_PROJECT_ROOT, name), os.path.join(tree, name))
  _without_prunes_of_what_is_not_there(os.path.join(tree, 'MANIFEST.in'))
  return os.path.join(tree, 'setup.py')


def _without_prunes_of_what_is_not_there(manifest):
  """Drops the copy's `prune` lines of folders it lacks (`prune tests`): setuptools warned of
  each, twice, on every launch ("no previously-included directories found matching")."""
  if not os.path.isfile(manifest):
    return
  tree = os.path.dirname(manifest)
  with open(manifest, encoding='utf-8') as f:
    lines = f.readlines()
  kept = [line for line, words in zip(lines, map(str.split, lines)) if not (
      len(words) == 2 and words[0] == 'prune' and not os.path.isdir(os.path.join(tree, words[1])))]
  if kept != lines:
    with open(manifest, 'w', encoding='utf-8') as f:
      f.writelines(kept)


def job_options(beam_args, save_main_session=False):
  """Beam's options for a job of this project. Every step lives in a module the workers import
  (the staged package), so the main session is not pickled; a `--save_main_session` given here
  was dropped without a word, and is now named as unused."""
  options = PipelineOptions(beam_args, save_main_session=save_main_session)
  if not save_main_session and PipelineOptions(beam_args).view_as(SetupOptions).save_main_session:
    _log.warning('--save_main_session: not used; every step of this job lives in an importable '
                 'module, which each worker imports (on Dataflow from the staged package)')
  return options


def prepare_remote_launch(known, pipeline_options, runner):
  """What a job for remote workers needs before anything is built: paths they can read, names
  Dataflow takes, and this project's code staged (each a no-op for the local runners)."""
  check_paths_reach_the_workers(known, runner)
  check_dataflow_names(pipeline_options, runner)
  check_files_to_stage(pipeline_options, runner)
  equip_the_workers(pipeline_options, runner)
  warn_of_local_flags(pipeline_options, runner)


def warn_of_local_flags(pipeline_options, runner):
  """The local runner's flags were taken by a remote job without a word (a launch that meant
  `--direct_num_workers 8` as its parallelism got Dataflow's default)."""
  if is_local_runner(runner):
    return
  given = pipeline_options.get_all_options(drop_default=True)
  flags_given = [f'--{name}' for name in ('direct_num_workers', 'direct_running_mode')
                 if name in given]
  if flags_given:
    _log.warning('%s: the local runner\'s, no effect on %s; its workers are --num_workers and '
                 '--max_num_workers (run_dataflow.sh: --max_workers)', ', '.join(flags_given),
                 runner)


def check_dataflow_names(pipeline_options, runner):
  """A project, region, job name, temp/staging bucket or worker count Dataflow would refuse is a
  usage error up front, in Beam's words: Beam checks them only when the job is built (a
  traceback after the model has loaded). Without a temp or staging location Beam would look
  for a default bucket online and create one, a dry run included: that is refused too."""
  if runner != 'DataflowRunner':
    return
  # pylint: disable=import-outside-toplevel
  from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
  from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner
  cloud = pipeline_options.view_as(GoogleCloudOptions)
  errors = [f'--{name} is empty: give {what}' for name, what in (
      ('project', 'the GCP project'), ('region', 'a Dataflow region, e.g. us-central1'),
      ('job_name', 'a name (lowercase letters, digits, hyphens), or leave the flag out for one '
       'made of the time'), ('temp_location', 'gs://BUCKET/PATH'),
      ('staging_location', 'gs://BUCKET/PATH')) if getattr(cloud, name) == '']
  if not (cloud.temp_location or cloud.staging_location or errors):
    errors.append('--temp_location gs://BUCKET/PATH is needed (the job\'s temporary and staged '
                  'files; without it Beam would create a bucket of its own)')
  validator = PipelineOptionsValidator(pipeline_options, DataflowRunner())
  for location in ('temp_location', 'staging_location'):
    if getattr(cloud, location):  # (Beam would look for a default bucket in place of a bad one)
      errors += validator.validate_gcs_path(cloud, location)
  if not errors:  # (checked with a runner: Beam's checks for Dataflow only run for one)
    errors = validator.validate()
  if errors:
    raise UsageError('; '.join(e.rstrip('.') for e in errors))


def check_files_to_stage(pipeline_options, runner):
  """The files Beam stages for Dataflow's workers from this machine (--requirements_file,
  --setup_file, a local --extra_package) must be there: Beam looks only when it builds the job,
  a traceback after the model has loaded, dry run or not."""
  if runner != 'DataflowRunner':
    return
  setup = pipeline_options.view_as(SetupOptions)
  given = [('--requirements_file', setup.requirements_file), ('--setup_file', setup.setup_file)]
  given += [('--extra_package', package) for package in setup.extra_packages or []
            if FileSystems.get_scheme(package) is None]  # (gs://: Beam fetches it)
  folders = [f'{flag} {path}' for flag, path in given if path and os.path.isdir(path)]
  if folders:
    raise UsageError(f'{"; ".join(folders)}: a folder; Beam stages a file for the workers (the '
                     f'setup.py, the requirements file, the package)')
  missing = [f'{flag} {path}' for flag, path in given if path and not os.path.isfile(path)]
  if missing:
    raise UsageError(f'{"; ".join(missing)}: no such file on this machine (Beam stages it for '
                     f'the workers from here)')
  if setup.setup_file and os.path.basename(setup.setup_file) not in ('setup.py',
                                                                     'pyproject.toml'):
    raise UsageError(f'--setup_file {setup.setup_file}: Beam builds a package from a setup.py '
                     f'or pyproject.toml only')


def check_paths_reach_the_workers(known, runner):
  """Remote workers (any runner but the local ones) see none of this machine's disk: --input,
  --output and --model_path must be on a shared filesystem (gs://), or the job would start, fail
  on every worker, and leave its summary where the launcher cannot read it."""
  if is_local_runner(runner):
    return
  local = [f'--{name}={value}' for name, value in (
      ('input', known.input), ('output', known.output), ('model_path', known.model_path))
           if value and FileSystems.get_scheme(value) in (None, 'file')]
  if local:
    raise UsageError(f'{", ".join(local)}: {runner} workers cannot read this machine\'s disk; '
                     'give paths on cloud storage (gs://...)')


def dry_run_job(p, pipeline_options, dataflow, settings):
  """Builds the job offline and prints its steps and `settings` (what the job will do, as its
  records will say). Dataflow's own dry run builds the whole job, the staged sdist included, and
  submits nothing; Beam's options are printed too. Other runners have none: their graph is
  printed."""
  result = _DryRunResult()
  if dataflow:
    with submission_scratch(True, p.options):
      result = p.run()
    _print_steps(result.job.proto_pipeline)
  else:
    _print_steps(p.to_runner_api())
    shutil.rmtree(p.local_tempdir, ignore_errors=True)  # (p.run() would have)
  print('Settings:')
  for key, value in settings.items():
    print(f'  {key}: {json.dumps(value)}')
  if dataflow:
    print('Job options:')
    for key, value in sorted(pipeline_options.get_all_options(drop_default=True).items()):
      print(f'  --{key}={value}')
  return result


def _print_steps(proto):
  root = proto.root_transform_ids
  steps = []
  for tid in root:
    t = proto.components.transforms[tid]
    steps += ([proto.components.transforms[s].unique_name for s in t.subtransforms]
              or [t.unique_name])
  print(f'Job steps ({len(steps)}):')
  for name in steps:
    print(f'  {name}')


class _DryRunResult(beam.runners.runner.PipelineResult):
  def __init__(self):
    super().__init__(beam.runners.runner.PipelineState.DONE)

  def wait_until_finish(self, duration=None):
    return self._state


def quiet_beam_logs():
  """The log filters of a local run's command line (`pipeline.run`'s and `pipeline.evaluate`'s),
  each added once however many times it is asked."""
  for name, kept in (('apache_beam.runners.common', _not_an_interruption),
                     ('apache_beam.runners.portability.local_job_service', _workers_own_lines),
                     ('apache_beam.runners.worker.data_plane', _not_a_stopped_workers_stream),
                     ('apache_beam.runners.portability.fn_api_runner.worker_handlers',
                      _not_a_stopped_workers_close),
                     ('apache_beam.utils.retry', _not_a_credentials_search),
                     ('apache_beam.internal.gcp.auth', _no_credentials_in_one_line)):
    logger = logging.getLogger(name)
    if kept not in logger.filters:
      logger.addFilter(kept)


def _workers_own_lines(record):
  """A logging filter: worker processes (--direct_running_mode multi_processing) send their
  log to the launcher, which Beam logs whole as protobuf text ('Worker: severity: WARN
  timestamp {...} message: "..." log_location: "..."', 400 characters). Keeps the message alone,
  and of Beam's own lines only errors (below them: start-up notes such as 'Discarding
  unparseable args', of flags no user typed), nor a step's failed write (`storage_failure`),
  which the command line says in one line. None once the run is being stopped: a worker cut
  off mid-bundle logs what the stop broke (its writer pool shut down under it, with a
  traceback), after the line that says the run stopped."""
  if record.msg != 'Worker: %s' or not record.args:
    return True
  if stopping.requested():
    return False
  entry = beam_fn_api_pb2.LogEntry()
  try:
    text_format.Parse(str(record.args[0]), entry)
  except text_format.ParseError:
    return True
  if '/apache_beam/' in entry.log_location and entry.severity < entry.Severity.ERROR:
    return False
  if storage_failure(entry.message):  # (a full disk, cloud storage failing: as in-process,
    return False  # `_not_an_interruption`, the launcher says it in one line)
  record.msg, record.args = '%s', (entry.message,)
  return True


def _not_a_credentials_search(record):
  """A logging filter: with no Google Cloud credentials set up, Beam looks for them five times
  over ~22 s before it asks cloud storage anonymously, and warns of each look with a traceback
  (`_no_credentials_in_one_line` says the outcome once)."""
  return not (record.args and len(record.args) > 1 and
              record.args[1] == '_get_credentials_with_retrys')


def _no_credentials_in_one_line(record):
  """A logging filter: Beam's warning that it found no credentials, in one line that says what
  it means for the job and how to set them up."""
  if record.getMessage().startswith('Unable to find default credentials'):
    record.msg, record.args = '%s', (
        'no Google Cloud credentials were found, so cloud storage is asked anonymously, which '
        'reads public buckets only: `gcloud auth application-default login`, or a key named in '
        'GOOGLE_APPLICATION_CREDENTIALS, sets them up',)
  return True


def _not_an_interruption(record):
  """A logging filter: Beam logs a worker's Ctrl-C, and a step's failed write of the output
  (a full disk: `storage_failure`), as an error with a screen of traceback before it stops the
  job, which the command line then reports in one line (`run_command`)."""
  message = record.getMessage()
  return not (message.startswith('KeyboardInterrupt') or storage_failure(message))


# An OSError as Beam passes a step's on: 'OSError: [Errno 28] No space left on device [while
# running ...]'.
_OS_ERROR = re.compile(r'(?:\w+Error): (\[Errno (\d+)\] .*?)(?: \[while running .*)?$', re.S)
# The storage's own failures, which no code of ours or Beam's can mend: a full disk or quota, a
# read-only or failing one, a file over its size limit.
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})


def storage_failure(error):
  """The OS's words ('[Errno 28] No space left on device') where `error` (or its text) is the
  storage's failure that stopped the job, or cloud storage's ('cloud storage answered 503
  ...', `files.storage_failure`); else None: any other error keeps its traceback."""
  cloud = files.storage_failure(error)
  if cloud:
    return cloud
  if isinstance(error, OSError):
    if error.errno not in _STORAGE_ERRNOS:
      return None
    return f'[Errno {error.errno}] {error.strerror}' + (
        f': {error.filename}' if error.filename else '')
  found = _OS_ERROR.match(str(error))
  if not found or int(found.group(2)) not in _STORAGE_ERRNOS:
    return None
  return found.group(1).splitlines()[0]


def free_space(output):
  """Where a disk may have filled, for the line of a job a full disk stopped (Beam's message
  often names no file): the free space on the output's disk, where it is local, and on the
  temporary folder's (a model copied from cloud storage, Beam's staging), each disk once."""
  places = [output] if output and FileSystems.get_scheme(output) is None else []
  places.append(tempfile.gettempdir())
  disks, said = set(), []
  for place in places:
    path = os.path.abspath(place)
    while not os.path.exists(path) and os.path.dirname(path) != path:
      path = os.path.dirname(path)  # (an output not made yet: its disk is its parent's)
    try:
      disk = os.stat(path).st_dev
      free = shutil.disk_usage(path).free
    except OSError:
      continue
    if disk not in disks:
      disks.add(disk)
      said.append(f'{free / 1e9:.2f} GB free on {place}')
  return '; '.join(said)


def _not_a_stopped_workers_stream(record):
  """A logging filter: a multi_processing worker ended by a stop (`_end_the_workers`) cuts its
  data stream, which Beam logs as an error with a traceback after the line that says the run
  stopped; so does one that ended mid-job (`WorkerLost`), often just before Beam's thread that
  waits on it says so: that is waited for, a second at most (on the stream's own thread)."""
  if not record.getMessage().startswith('Failed to read inputs in the data plane'):
    return True
  deadline = time.monotonic() + 1
  while not (stopping.requested() or _lost_workers) and time.monotonic() < deadline:
    time.sleep(0.02)
  return not (stopping.requested() or _lost_workers)


def _not_a_stopped_workers_close(record):
  """A logging filter: a SIGTERM to the whole process group (GNU `timeout`, `kill -TERM -PGID`,
  systemd) ends the multi_processing workers with the launcher, and Beam logs closing each one's
  broken stream as an error with a traceback (grpc.RpcError) before the line that says the run
  stopped."""
  return not ((stopping.requested() or _lost_workers) and
              record.getMessage().startswith('Error closing worker_handler'))


def interrupt_status(caught):
  """The exit status of a command line stopped by the signal `terminate_as_interrupt` caught
  (143 for SIGTERM), else by Ctrl-C (130)."""
  return 128 + (caught[0] if caught else signal.SIGINT)


@contextlib.contextmanager
def terminate_as_interrupt():
  """SIGTERM (what `timeout`, `kill`, Airflow and container runtimes send) stops a run as Ctrl-C
  does, in one line and with its temporaries removed, instead of killing it where it stands;
  yields the signals caught. Either also sets `stopping`'s flag: its KeyboardInterrupt can come
  out of a TensorFlow call as another error, which must not pass for a pair's. Once the outcome
  is printed (`stopping.finish`), a signal changes nothing: the printed line and its exit status
  stand. A signal is left as it is where the process was told to ignore it or handles it
  already, and off the main thread (signals reach that alone)."""
  caught = []
  if threading.current_thread() is not threading.main_thread():
    yield caught
    return

  def stop(signum, frame):
    if stopping.finished():  # the outcome is printed: it stands
      return
    caught.append(signum)
    stopping.request()  # for an error the KeyboardInterrupt comes out as inside a library call
    signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt where the job waits

  taken = {signum: signal.signal(signum, stop) for signum, untouched in (
      (signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler))
           if signal.getsignal(signum) is untouched}
  stopping.clear()
  try:
    yield caught
  finally:
    for signum, previous in taken.items():
      signal.signal(signum, previous)
    stopping.clear()


def run_command(caught, start, dry_run, report, interrupted, failed_note, ended, output):
  """What the command lines of `pipeline.run` and `pipeline.evaluate` share: `start()` runs the
  job, `report(result)` prints its outcome and returns the exit status. Exit status 2 (one
  line) where the flags or the model cannot work; 1 where a Dataflow job ended FAILED or
  CANCELLED (`failed_note` after Beam's message), or a write stopped the job (`storage_failure`;
  a full disk's line says the free space near `output`, `free_space`);
  130 or 143 where interrupted: during the job `interrupted(caught)` says so (StillRunning: a
  Dataflow job that runs on), after it `ended` names what it left; 0 for a dry run."""
  try:
    result = start()
  except StillRunning as e:
    print(f'interrupted: {e}', file=sys.stderr)
    return interrupt_status(caught)
  except KeyboardInterrupt:
    return interrupted(caught)
  except Exception as e:  # pylint: disable=broad-except
    # The stop's KeyboardInterrupt can come out of a library call as another error (the model's
    # load a ModelError); Beam's runners pass a worker's Ctrl-C on as
    # RuntimeError('KeyboardInterrupt [while ...]').
    if stopping.requested() or str(e).startswith('KeyboardInterrupt'):
      return interrupted(caught)
    cloud = files.storage_failure(e)  # (cloud storage failing beyond its client's retries)
    if isinstance(e, StorageUnavailable) or (cloud and isinstance(e, interpolate.ModelError)):
      print(f'error: {e}. Nothing was done; once cloud storage answers again, the same command '
            f'runs the job', file=sys.stderr)
      return 1
    if isinstance(e, (interpolate.ModelError, UsageError)):
      print(f'error: {e}', file=sys.stderr)
      return 2
    if isinstance(e, WorkerLost):
      print(f'error: {e}', file=sys.stderr)
      return 1
    if type(e).__name__ == 'DataflowRuntimeException':  # the job ended FAILED or CANCELLED
      print(f'error: {e}\n{failed_note}', file=sys.stderr)
      return 1
    if cloud:  # (Beam's tracebacks were 160-430 lines)
      print(f'error: the job stopped: {cloud}. What it wrote is whole; once cloud storage '
            f'answers again, the same command finishes the job', file=sys.stderr)
      return 1
    failure = storage_failure(e)
    if failure:  # (a disk full mid-run: Beam's tracebacks were 160 lines)
      if failure.startswith((f'[Errno {errno.ENOSPC}]', f'[Errno {errno.EDQUOT}]')):
        failure += f' ({free_space(output)})'
      print(f'error: the job stopped: {failure}. What it wrote is whole; once that is mended, '
            f'the same command finishes the job', file=sys.stderr)
      return 1
    raise
  if dry_run:
    return 0
  try:
    status = report(result)
    stopping.finish()
    return status
  except KeyboardInterrupt:  # Ctrl-C or SIGTERM after the job: what it wrote is whole
    print(f'interrupted: {ended}', file=sys.stderr)
    return interrupt_status(caught)
