"""GCS on loopback for tests and benchmarks: `gcp-storage-emulator` plus a tiny fake GCE
metadata server (GCE_METADATA_HOST / GCE_METADATA_IP), so google.auth finds "compute engine"
credentials at once instead of Beam retrying credential discovery for ~20 s in every process.
The variables are set before the first GCS call and inherited by worker subprocesses."""

import collections
import contextlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time


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


_REQUEST = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+)')
Request = collections.namedtuple('Request', 'method path status kind')


def request_kind(method, path):
  """The JSON API call a request is: list, metadata, download, upload, copy, delete, batch
  (Beam deletes in batches), bucket (the bucket's own metadata), other."""
  bare = path.split('?')[0]
  if method == 'POST' and bare.startswith('/batch/'):
    return 'batch'
  if bare.startswith('/upload/') or method == 'PUT':
    return 'upload'
  if 'alt=media' in path or bare.startswith('/download/'):
    return 'download'
  if method == 'DELETE':
    return 'delete'
  if '/rewriteTo/' in bare or '/copyTo/' in bare:
    return 'copy'
  if method == 'GET' and bare.endswith('/o'):
    return 'list'
  if method == 'GET' and '/o/' in bare:
    return 'metadata'
  if method == 'GET' and re.fullmatch(r'/storage/v1/b/[^/]+', bare):
    return 'bucket'
  return 'other'


class RequestLog:
  """The emulator's log of requests, one line each (`"GET /storage/v1/b/... HTTP/1.1" 200 -`):
  what a test or benchmark counts, from an offset that `end()` gives."""

  def __init__(self, path):
    self.path = path

  def end(self):
    return os.path.getsize(self.path)

  def since(self, offset):
    """[Request] logged after byte `offset`, in order."""
    with open(self.path) as f:
      f.seek(offset)
      text = f.read()
    return [Request(m.group(1), m.group(2), int(m.group(3)), request_kind(m.group(1), m.group(2)))
            for m in _REQUEST.finditer(text)]


Server = collections.namedtuple('Server', 'bucket requests')


def _start_emulator(bucket, log_path, attempts=5):
  """(process, port, open log) of an emulator serving on a free port. A port found free can be
  taken before the emulator binds it (by another test worker's emulator): then its server
  thread fails, and another port is tried. Ready is when it says so in its log, not when the
  port answers (that could be the other emulator)."""
  for _ in range(attempts):
    port = _free_port()
    log = open(log_path, 'w')
    emulator = subprocess.Popen(
        [sys.executable, '-m', 'gcp_storage_emulator', 'start', '--host', '127.0.0.1', '--port',
         str(port), '--in-memory', '--default-bucket', bucket],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    deadline = time.time() + 30
    while emulator.poll() is None and time.time() < deadline:
      with open(log_path) as f:
        said = f.read()
      if 'All services started' in said:
        return emulator, port, log
      if 'Traceback' in said:  # it failed to bind, in a thread, and lives on serving nothing
        break
      time.sleep(0.2)
    emulator.kill()
    emulator.wait()
    log.close()
  raise RuntimeError(f'gcp-storage-emulator did not start (see {log_path})')


@contextlib.contextmanager
def local_gcs(bucket, log_path):
  """Runs the emulator with `bucket` and points this process's environment at it; yields a
  Server: the google.cloud.storage Bucket and the RequestLog (kept in `log_path`)."""
  metadata = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _MetadataHandler)
  threading.Thread(target=metadata.serve_forever, daemon=True).start()
  emulator, port, log = _start_emulator(bucket, log_path)
  env = {
      'STORAGE_EMULATOR_HOST': f'http://127.0.0.1:{port}',
      'GCE_METADATA_HOST': f'127.0.0.1:{metadata.server_address[1]}',
      'GCE_METADATA_IP': f'127.0.0.1:{metadata.server_address[1]}',
      'GOOGLE_CLOUD_PROJECT': 'test-project',
  }
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  try:
    from google.auth.credentials import AnonymousCredentials  # pylint: disable=import-outside-toplevel
    from google.cloud import storage  # pylint: disable=import-outside-toplevel
    client = storage.Client(project='test-project', credentials=AnonymousCredentials())
    yield Server(client.bucket(bucket), RequestLog(log_path))
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
