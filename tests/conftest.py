"""Shared fixtures: a tiny random model, synthetic clips, DPX files, and GCS on loopback.

GCS tests run against `gcp-storage-emulator` on loopback (`gcs_server`).
"""

import faulthandler
import glob
import json
import os
import re
import signal
import struct
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('TF_NUM_INTRAOP_THREADS', '1')
os.environ.setdefault('TF_NUM_INTEROP_THREADS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import gcs_server  # pylint: disable=wrong-import-position
from pipeline import sample_footage  # pylint: disable=wrong-import-position

BUCKET = 'film-test'


@pytest.fixture(autouse=True)
def signals_as_a_terminal_leaves_them():
  """Each test starts with Ctrl-C raising KeyboardInterrupt and SIGTERM at its default, as in a
  process a terminal starts. A suite started in the background (a script's `&`) has Ctrl-C
  ignored in its workers, which the commands rightly leave alone, so the stop tests failed or
  passed by which earlier test had reset it on their worker. A command's exit called in the
  test's process (`flags.exit_with`) leaves no watchdog on it either."""
  previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
  signal.signal(signal.SIGINT, signal.default_int_handler)
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  yield
  faulthandler.cancel_dump_traceback_later()
  for signum, handler in previous.items():
    signal.signal(signum, handler)


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory):
  """(path, Interpolator): a random Options.tiny() model saved as our .npz weight file."""
  from film_net import Interpolator, Options  # pylint: disable=import-outside-toplevel
  path = str(tmp_path_factory.mktemp('model') / 'tiny.npz')
  interp = Interpolator.random(options=Options.tiny(), seed=0, align=64)
  interp.save(path)
  return path, Interpolator.from_path(path, align=64)


# What TensorFlow 2.21 prints while its libraries load where it turns oneDNN on (CPUs with
# AVX-512, for one), before anything can set its logging up: not the tool's lines, so the tests
# of the tool's stderr leave them out (the README says they remain).
TENSORFLOW_LOAD_NOTICE = re.compile(
    r'WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$'
    r'|I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. ')


@pytest.fixture
def unreadable_folders(monkeypatch):
  """A list of folders that, from now on, cannot be listed: refused as the kernel refuses a
  user without read permission (root, which runs these tests, may read them all)."""
  locked, real_scandir = [], os.scandir

  def scandir(path='.'):
    if not isinstance(path, int) and os.fspath(path) in locked:  # (int: a folder's descriptor)
      raise PermissionError(13, 'Permission denied', os.fspath(path))
    return real_scandir(path)
  monkeypatch.setattr(os, 'scandir', scandir)
  return locked


def tool_lines(stderr: str) -> list[str]:
  """A command's stderr lines, less TensorFlow's load notices."""
  return [line for line in stderr.strip().splitlines() if not TENSORFLOW_LOAD_NOTICE.match(line)]


def make_clip(folder, num_frames, width=64, height=48, seed=0, pattern='frame{:03d}.png'):
  """Writes a synthetic clip; returns the uint8 frames."""
  frames = sample_footage.render_frames(num_frames, width, height, seed=seed)
  sample_footage.write_clip(str(folder), frames, pattern)
  return frames


def widened(values, bits):
  """What the DPX decoder makes of `bits`-bit samples: 16 bit, top bits repeated below."""
  values = values.astype(np.uint16)
  return values << (16 - bits) | values >> (2 * bits - 16)


def write_dpx(samples, bits, *, descriptor=50, packing=1, endian='>', orientation=0,
              line_padding=0, encoding=0, sign=0, offset=2048):
  """DPX bytes of (H, W, C) samples, laid out as SMPTE 268M says: the generic header's magic
  and image offset, the image header's orientation, element count and size at 768, the first
  element's fields at 780; each line on a 32-bit word, then `line_padding` bytes; 10-bit
  colour samples from a word's high end, luma from its low end."""
  height, width, channels = samples.shape
  flat = samples.reshape(height, width * channels).astype(np.uint32)
  lines = []
  for row in flat:
    if bits == 10:
      row = np.concatenate([row, np.zeros(-len(row) % 3, np.uint32)]).reshape(-1, 3)
      low = 2 if packing == 1 else 0
      if descriptor == 6:  # luma: the first sample in the low bits
        row = row[:, ::-1]
      words = row[:, 0] << (20 + low) | row[:, 1] << (10 + low) | row[:, 2] << low
      line = words.astype(endian + 'u4').tobytes()
    elif bits == 12:
      units = row << 4 if packing == 1 else row
      line = units.astype(endian + 'u2').tobytes()
    else:
      line = row.astype({8: 'u1', 16: endian + 'u2'}[bits]).tobytes()
    lines.append(line + b'\0' * (-len(line) % 4 + line_padding))
  header = bytearray(offset)
  header[0:4] = b'SDPX' if endian == '>' else b'XPDS'
  struct.pack_into(endian + 'I', header, 4, offset)
  struct.pack_into(endian + 'HHII', header, 768, orientation, 1, width, height)
  struct.pack_into(endian + 'I', header, 780, sign)
  header[800:804] = bytes([descriptor, 2, 2, bits])
  struct.pack_into(endian + 'HHIII', header, 804, packing, encoding, offset, line_padding, 0)
  return bytes(header) + b''.join(lines)


@pytest.fixture(scope='session')
def ffmpeg():
  """The ffmpeg binary `transforms.quality.find_ffmpeg` finds; the test skips without one."""
  from transforms import quality  # pylint: disable=import-outside-toplevel
  found = quality.find_ffmpeg()
  if found is None:
    pytest.skip(quality.NO_FFMPEG)
  return found


def run_job(input_path, output, model_path, *extra):
  """Runs the pipeline like the command line does; returns (exit status, run id)."""
  from pipeline import run as run_module  # pylint: disable=import-outside-toplevel
  run_id = f'test-{time.time_ns()}'
  argv = [f'--input={input_path}', f'--output={output}', f'--run_id={run_id}',
          '--progress_interval=2', *extra]
  if model_path is not None:
    argv.append(f'--model_path={model_path}')
  return run_module.main(argv), run_id


def run_records(output, run_id, kind):
  """The rows of a run's `kind` records ('pairs' or 'errors'), from every shard."""
  rows = []
  for path in glob.glob(os.path.join(output, '_runs', run_id, f'{kind}-*.jsonl')):
    with open(path) as f:
      rows += [json.loads(line) for line in f if line.strip()]
  return rows


def metric(result, name):
  """A pipeline counter's committed total from a run's result."""
  from apache_beam.metrics.metric import MetricsFilter  # pylint: disable=import-outside-toplevel
  from transforms.records import METRICS_NAMESPACE  # pylint: disable=import-outside-toplevel
  found = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(name))
  return sum(c.committed or 0 for c in found['counters'])


@pytest.fixture(scope='session')
def gcs_server_(tmp_path_factory):
  with gcs_server.local_gcs(BUCKET, tmp_path_factory.mktemp('gcs') / 'emulator.log') as server:
    yield server


@pytest.fixture(scope='session')
def gcs(gcs_server_):
  """A loopback GCS with bucket BUCKET: a google.cloud.storage Bucket."""
  return gcs_server_.bucket


@pytest.fixture(scope='session')
def gcs_requests(gcs_server_):
  """The loopback GCS's gcs_server.RequestLog: what requests a test made."""
  return gcs_server_.requests


def read_png(path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  with Image.open(path) as im:
    return np.asarray(im)
