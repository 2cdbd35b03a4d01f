"""Shared fixtures: a tiny random model, synthetic clips, DPX files, and GCS on loopback.

GCS tests run against `gcp-storage-emulator` started here (STORAGE_EMULATOR_HOST) plus a tiny fake
GCE metadata server (GCE_METADATA_HOST / GCE_METADATA_IP): google.auth then finds "compute engine"
credentials at once, instead of Beam retrying credential discovery for ~20 s in every process.
Both are set before the first GCS call and inherited by multi_processing worker subprocesses.
"""

import glob
import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('TF_NUM_INTRAOP_THREADS', '1')
os.environ.setdefault('TF_NUM_INTEROP_THREADS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from pipeline import sample_footage  # pylint: disable=wrong-import-position

BUCKET = 'film-test'


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory):
  """(path, Interpolator): a random Options.tiny() model saved as our .npz weight file."""
  from film_net import Interpolator, Options  # pylint: disable=import-outside-toplevel
  path = str(tmp_path_factory.mktemp('model') / 'tiny.npz')
  interp = Interpolator.random(options=Options.tiny(), seed=0, align=64)
  interp.save(path)
  return path, Interpolator.from_path(path, align=64)


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


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


class _MetadataHandler(http.server.BaseHTTPRequestHandler):
  """Answers what google.auth asks the GCE metadata server: ping, token, account, project."""

  def do_GET(self):  # pylint: disable=invalid-name
    path = self.path.split('?')[0]
    if path.endswith('/token'):
      body = {'access_token': 'fake-token', 'expires_in': 3600, 'token_type': 'Bearer'}
    elif path.endswith('/project/project-id'):
      body = 'test-project'
    elif '/service-accounts/' in path:
      body = {'email': 'test@test-project.iam.gserviceaccount.com', 'aliases': ['default'],
              'scopes': ['https://www.googleapis.com/auth/cloud-platform']}
    else:
      body = ''
    data = (body if isinstance(body, str) else json.dumps(body)).encode()
    self.send_response(200)
    self.send_header('Metadata-Flavor', 'Google')
    self.send_header('Content-Type', 'application/json' if not isinstance(body, str) else 'text/plain')
    self.send_header('Content-Length', str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    pass


@pytest.fixture(scope='session')
def gcs(tmp_path_factory):
  """A loopback GCS with bucket BUCKET; yields a google.cloud.storage Bucket."""
  metadata = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _MetadataHandler)
  threading.Thread(target=metadata.serve_forever, daemon=True).start()
  port = _free_port()
  log = open(tmp_path_factory.mktemp('gcs') / 'emulator.log', 'w')
  emulator = subprocess.Popen(
      [sys.executable, '-m', 'gcp_storage_emulator', 'start', '--host', '127.0.0.1', '--port',
       str(port), '--in-memory', '--default-bucket', BUCKET, '-q'],
      stdout=log, stderr=subprocess.STDOUT)
  env = {
      'STORAGE_EMULATOR_HOST': f'http://127.0.0.1:{port}',
      'GCE_METADATA_HOST': f'127.0.0.1:{metadata.server_address[1]}',
      'GCE_METADATA_IP': f'127.0.0.1:{metadata.server_address[1]}',
      'GOOGLE_CLOUD_PROJECT': 'test-project',
  }
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  try:
    deadline = time.time() + 30
    while True:
      try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        break
      except OSError:
        if time.time() > deadline or emulator.poll() is not None:
          raise RuntimeError('gcp-storage-emulator did not start')
        time.sleep(0.2)
    from google.auth.credentials import AnonymousCredentials  # pylint: disable=import-outside-toplevel
    from google.cloud import storage  # pylint: disable=import-outside-toplevel
    client = storage.Client(project='test-project', credentials=AnonymousCredentials())
    yield client.bucket(BUCKET)
  finally:
    emulator.terminate()
    emulator.wait(timeout=10)
    metadata.shutdown()
    log.close()
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


def read_png(path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  with Image.open(path) as im:
    return np.asarray(im)
