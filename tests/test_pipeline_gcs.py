"""The same job with gs:// input and output, against gcp-storage-emulator on loopback."""

import io
import json
import logging
import os
import re
import time
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from conftest import BUCKET, make_clip, run_job, run_records, tool_lines
from transforms import clips
from transforms import interpolate


def _upload_clip(bucket, prefix, frames):
  for i, frame in enumerate(frames):
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format='PNG')
    bucket.blob(f'{prefix}/frame{i}.png').upload_from_string(buf.getvalue())


def _unavailable(monkeypatch, url_pattern):
  """Cloud storage answers 503 to every request whose URL `url_pattern` matches (a real HTTP
  answer, read by the storage library as from GCS), and its client gives up after 0.3 s of
  retries (120 s in use). Returns the URLs so answered."""
  return _answering(monkeypatch, url_pattern, 503, {'error': {'code': 503}})


def _answering(monkeypatch, url_pattern, status, body):
  """Cloud storage answers `status` with the JSON `body` to every request whose URL
  `url_pattern` matches, and its client's retries end after 0.3 s. Returns the URLs so
  answered."""
  import requests  # pylint: disable=import-outside-toplevel
  from apache_beam.io.gcp import gcsio_retry  # pylint: disable=import-outside-toplevel
  from google.auth.transport import requests as auth  # pylint: disable=import-outside-toplevel
  from google.cloud.storage.retry import DEFAULT_RETRY  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(gcsio_retry, 'get_retry',  # (the storage library's own, less patient)
                      lambda options: DEFAULT_RETRY.with_delay(initial=0.01).with_timeout(0.3))
  real_request, answered = auth.AuthorizedSession.request, []

  def answer_instead(self, method, url, *args, **kwargs):
    if not re.search(url_pattern, url):
      return real_request(self, method, url, *args, **kwargs)
    answered.append(url)
    answer = requests.Response()
    answer.status_code, answer.url, answer._content = status, url, json.dumps(body).encode()
    answer.request = requests.Request(method, url).prepare()
    return answer
  monkeypatch.setattr(auth.AuthorizedSession, 'request', answer_instead)
  return answered


@pytest.mark.parametrize('mode', ['in_memory', 'multi_processing'])
def test_gcs_in_gcs_out(tmp_path, tiny_model, gcs, mode):
  model_path, model = tiny_model
  frames = make_clip(tmp_path / 'local', 3, seed=11)
  _upload_clip(gcs, f'{mode}/in/reel/clip', frames)
  gcs.blob(f'{mode}/in/reel/clip/readme.txt').upload_from_string(b'stray')
  out = f'gs://{BUCKET}/{mode}/out'
  status, run_id = run_job(f'gs://{BUCKET}/{mode}/in', out, model_path,
                           f'--direct_running_mode={mode}', '--pairs_per_unit=1')
  assert status == 0  # The stray file is a notice; the clip itself completes.
  names = sorted(b.name for b in gcs.list_blobs(prefix=f'{mode}/out/reel/clip/'))
  assert names == [f'{mode}/out/reel/clip/frame_{i:06d}.png' for i in range(5)]
  for i in (0, 2, 4):
    got = np.asarray(Image.open(io.BytesIO(
        gcs.blob(f'{mode}/out/reel/clip/frame_{i:06d}.png').download_as_bytes())))
    np.testing.assert_array_equal(got, frames[i // 2])
  mid = model.recursive([f.astype(np.float32) / 255 for f in frames], 1)[1]
  got = np.asarray(Image.open(io.BytesIO(
      gcs.blob(f'{mode}/out/reel/clip/frame_000001.png').download_as_bytes())))
  assert np.abs(got.astype(int) - (np.clip(mid, 0, 1) * 255 + 0.5).astype(int)).max() <= 1
  run_dir = f'{mode}/out/_runs/{run_id}'
  summary = json.loads(gcs.blob(f'{run_dir}/summary.json').download_as_bytes())
  assert summary['pairs']['ok'] == 2 and summary['frames_written'] == 5
  assert summary['errors'] == 0 and summary['notices'] == 1
  assert 'readme.txt' in summary['notice_messages'][0]
  pairs = [json.loads(line) for b in gcs.list_blobs(prefix=f'{run_dir}/pairs-')
           for line in b.download_as_text().splitlines() if line]
  assert sorted(p['pair'] for p in pairs) == [0, 1]
  # Nightly re-run over the unchanged bucket: everything skipped.
  status, run_id = run_job(f'gs://{BUCKET}/{mode}/in', out, model_path,
                           f'--direct_running_mode={mode}')
  summary = json.loads(gcs.blob(f'{mode}/out/_runs/{run_id}/summary.json').download_as_bytes())
  assert summary['pairs']['skipped'] == 2 and summary['model_calls'] == 0


def test_a_bucket_output_holding_input_frames_is_a_usage_error(tmp_path, tiny_model, gcs, capsys):
  """A glob over a bucket whose clips lie in --output: they were passed over and their folder
  became an earlier output, left out of every later run."""
  frames = make_clip(tmp_path / 'local', 2)
  for folder in ('arch', 'arch2'):
    _upload_clip(gcs, f'inout/{folder}/reel', frames)
  manifest = 'clip,frame0,frame1\nreel,reel/frame0.png,reel/frame1.png\n'
  gcs.blob('inout/arch/list.csv').upload_from_string(manifest)
  for input_path, message in ((f'gs://{BUCKET}/inout/*/reel', 'the run would pass over them'),
                              (f'gs://{BUCKET}/inout/arch/list.csv', 'would overwrite them')):
    status, _ = run_job(input_path, f'gs://{BUCKET}/inout/arch', tiny_model[0])
    assert status == 2 and message in capsys.readouterr().err
  # An --output naming a frame, or below one (a typo), wrote under the frame's name (exit 0).
  frame = f'gs://{BUCKET}/inout/arch/reel/frame0.png'
  for output in (frame, f'{frame}/sub'):
    status, _ = run_job(f'gs://{BUCKET}/inout/arch2', output, tiny_model[0])
    assert status == 2 and capsys.readouterr().err.strip().endswith(
        f'--output {output}: {frame} is a file (an object), not a folder')
    from pipeline import evaluate  # pylint: disable=import-outside-toplevel
    with pytest.raises(evaluate.UsageError, match=f'{frame} is a file \\(an object\\)'):
      evaluate.run(['--input', f'gs://{BUCKET}/inout/arch2', '--output', output, '--no_model',
                    '--baselines', 'repeat'])
  assert sorted(b.name for b in gcs.list_blobs(prefix='inout/arch/')) == [
      'inout/arch/list.csv', 'inout/arch/reel/frame0.png', 'inout/arch/reel/frame1.png']
  for _ in range(2):  # an output of its own, also once it holds frames
    status, _ = run_job(f'gs://{BUCKET}/inout/*/reel', f'gs://{BUCKET}/inout/out', tiny_model[0])
    assert status == 0
  assert {b.name.split('/')[2] for b in gcs.list_blobs(prefix='inout/out/')} == {
      '_runs', '_markers', 'arch', 'arch2'}


def test_an_evaluation_of_a_missing_bucket_folder_says_so(gcs, capsys, tmp_path):
  """It said 'no triplet folders (holding frame10.png, ...)', as for a folder without them."""
  from pipeline import evaluate  # pylint: disable=import-outside-toplevel
  for path, says in ((f'gs://{BUCKET}/evalgone/in', 'no such folder'),
                     ('gs://no-such-bucket-here/in', 'its bucket no-such-bucket-here does not '
                                                     'exist')):
    assert evaluate.main(['--input', path, '--output', str(tmp_path / 'out'), '--no_model',
                          '--baselines', 'repeat']) == 2
    assert capsys.readouterr().err.strip() == f'error: --input {path}: {says}'
  empty = gcs.client.create_bucket('film-test-empty-eval').name
  for path in (f'gs://{empty}', f'gs://{empty}/'):  # a bucket's root: Beam cannot ask exists()
    assert evaluate.main(['--input', path, '--output', str(tmp_path / 'out'), '--no_model',
                          '--baselines', 'repeat']) == 2
    assert capsys.readouterr().err.startswith(f'error: --input {path}: ')


def test_evaluation_manifests_in_a_bucket_resolve_dot_dot(gcs):
  """Object names are literal: `lists/../trip/f.png` is no object, so a manifest's relative
  paths are resolved as `pipeline.run`'s are (`clips.resolve`), not only joined."""
  from pipeline import evaluate  # pylint: disable=import-outside-toplevel
  gcs.blob('evalmanifest/lists/t.csv').upload_from_string(
      'frame0,truth,frame1\n../trip/a/frame10.png,../trip/a/frame10i11.png,'
      '../trip/a/frame11.png\n')
  (triplet,) = evaluate.list_triplets(f'gs://{BUCKET}/evalmanifest/lists/t.csv')
  assert [triplet[k] for k in ('frame0', 'truth', 'frame1')] == [
      f'gs://{BUCKET}/evalmanifest/trip/a/{n}'
      for n in ('frame10.png', 'frame10i11.png', 'frame11.png')]


def test_a_bucket_folder_named_like_a_glob_is_that_folder(gcs):
  """`--input gs://b/in/take [2]` is the folder `take [2]` where there is one, as on local disk;
  read as a pattern it took `take 2`, another clip. A pattern with no such folder is one."""
  from transforms import clips  # pylint: disable=import-outside-toplevel
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  for name in ('take [2]/f0.png', 'take [2]/f1.png', 'take 2/f0.png', 'take 2/f1.png'):
    gcs.blob(f'globfolder/{name}').upload_from_string(b'x')

  def discover(spec):
    return [c for c in clips.DiscoverClips('run').process(f'gs://{BUCKET}/globfolder/{spec}')
            if not isinstance(c, beam.pvalue.TaggedOutput)]
  (clip,) = discover('take [2]')
  assert all('/take [2]/' in uri for uri, _ in clip.frames)
  (clip,) = discover('take [12]')
  assert all('/take 2/' in uri for uri, _ in clip.frames)


def test_bucket_folders_apart_by_a_doubled_slash_are_two_clips_with_two_outputs(gcs):
  """`in/reel` and `in//reel` (an upload script's doubled slash) were both named `reel-<hash>`,
  one output folder for two clips; `in//reel` alone took `reel`, the name of `in/reel`."""
  from transforms import clips  # pylint: disable=import-outside-toplevel
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  for name in ('reel/f0.png', 'reel/f1.png', '/reel/f0.png', '/reel/f1.png'):
    gcs.blob(f'doubled/in/{name}').upload_from_string(b'x')
  found = [c for c in clips.DiscoverClips('run').process(f'gs://{BUCKET}/doubled/in')
           if not isinstance(c, beam.pvalue.TaggedOutput)]
  names = {c.frames[0][0].rsplit('/', 2)[0]: c.name for c in found}
  assert set(names) == {f'gs://{BUCKET}/doubled/in', f'gs://{BUCKET}/doubled/in/'}
  assert names[f'gs://{BUCKET}/doubled/in'] == 'reel'
  assert names[f'gs://{BUCKET}/doubled/in/'].startswith('reel-')
  # Frames only below the doubled slash: `in` is their parent, no clip folder without frames
  # (its readme a notice), nor an empty one (a placeholder; an error: exit status 1).
  for name in ('top/readme.txt', 'top//f0.png', 'top//f1.png', 'held/', 'held//f0.png',
               'held//f1.png'):
    gcs.blob(f'doubled/{name}').upload_from_string(b'x')
  for folder in ('top', 'held'):
    said = [c for c in clips.DiscoverClips('run').process(f'gs://{BUCKET}/doubled/{folder}')
            if isinstance(c, beam.pvalue.TaggedOutput)]
    assert said == [], said


def test_folder_placeholders_follow_the_same_filters_as_files(gcs):
  """Folders made in the Cloud Console are empty objects named 'folder/': those outside the
  glob, hidden or the pipeline's own are not clips, and one beside frames is not an empty clip."""
  from transforms import clips  # pylint: disable=import-outside-toplevel
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  for name in ('a1/f0.png', 'a1/f1.png', 'b1/f0.png', 'b1/f1.png'):
    gcs.blob(f'placeholders/{name}').upload_from_string(b'x')
  for folder in ('a1/', 'b1/', 'a2/', 'a1/.trash/', 'a1/_runs/'):
    gcs.blob(f'placeholders/{folder}').upload_from_string(b'')
  found, errors = [], []
  for item in clips.DiscoverClips('run').process(f'gs://{BUCKET}/placeholders/a*'):
    (errors if isinstance(item, beam.pvalue.TaggedOutput) else found).append(item)
  assert [c.name for c in found] == ['a1']
  assert [e.value['message'] for e in errors] == [
      f'empty clip folder: gs://{BUCKET}/placeholders/a2 has no frames']


def test_file_operations_ask_nothing_of_the_bucket(gcs, gcs_requests):
  """google-cloud-storage looks a bucket's metadata up in the background for tracing spans,
  once per client, and Beam makes a client per file operation: unless traces are on, no
  operation of ours may cost that extra request (an ERROR in the audit log of a worker whose
  role grants objects only)."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  path = f'gs://{BUCKET}/bucketless/a.bin'
  start = gcs_requests.end()
  files.write_atomic(path, b'data', None)
  assert files.read_bytes(path) == b'data'
  assert [m.path for m in files.match(f'gs://{BUCKET}/bucketless', '*.bin')] == [path]
  files.delete_files([path])
  time.sleep(1)  # the lookups run on background threads
  kinds = [r.kind for r in gcs_requests.since(start)]
  assert {'upload', 'download', 'list', 'batch'} <= set(kinds) and 'bucket' not in kinds


def test_a_file_is_read_in_one_request(gcs, gcs_requests):
  """Beam's reader asks for an object's metadata before its bytes: two requests per frame read,
  one here; a missing file still fails as missing, as a local one does (not an HTTP dump)."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  gcs.blob('reads/take [2]/frame.png').upload_from_string(b'frame bytes')
  start = gcs_requests.end()
  assert files.read_bytes(f'gs://{BUCKET}/reads/take [2]/frame.png') == b'frame bytes'
  assert [r.kind for r in gcs_requests.since(start)] == ['download']
  with pytest.raises(FileNotFoundError) as missing:
    files.read_bytes(f'gs://{BUCKET}/reads/missing.png')
  assert files.reason(missing.value) == 'no such file or directory'


def test_a_manifest_frame_missing_from_the_bucket_is_named_in_plain_words(tmp_path, tiny_model,
                                                                          gcs):
  """The reason read `404 GET http://.../download/...?alt=media: ('Request failed with status
  code', 404, ...)`; it reads as the same miss on local disk does."""
  model_path, _ = tiny_model
  _upload_clip(gcs, 'lost/in/clip', make_clip(tmp_path / 'local', 2, seed=5))
  gcs.blob('lost/in/pairs.csv').upload_from_string(
      'clip,frame0,frame1\nshot,clip/frame0.png,clip/frame1.png\n'
      'shot,clip/frame1.png,clip/frame9.png\n')
  status, run_id = run_job(f'gs://{BUCKET}/lost/in/pairs.csv', f'gs://{BUCKET}/lost/out',
                           model_path)
  errors = [json.loads(line) for b in gcs.list_blobs(prefix=f'lost/out/_runs/{run_id}/errors')
            for line in b.download_as_text().splitlines() if line]
  errors = [e for e in errors if e['severity'] == 'error']  # (not the notice of 2 to 9)
  missing = f'gs://{BUCKET}/lost/in/clip/frame9.png'
  assert status == 1 and [e['message'] for e in errors] == [
      f'cannot use frame {missing}: no such file or directory']
  assert errors[0]['uris'] == [missing] and errors[0]['error_type'] == 'FileNotFoundError'


def test_an_object_name_with_a_line_break_is_named_in_one_line(tmp_path, tiny_model, gcs,
                                                                capsys):
  """Beam cannot address an object whose name holds a line break: each frame failed with 'GCS
  path must be in the form gs://<bucket>/<object>' (which it is), and the failure list broke
  each name over two lines. Now one record says why, the rest runs, one line per failure."""
  model_path, _ = tiny_model
  frames = make_clip(tmp_path / 'local', 2, seed=6)
  _upload_clip(gcs, 'linebreak/in/ok', frames)
  _upload_clip(gcs, 'linebreak/in/nl\nx', frames)
  status, run_id = run_job(f'gs://{BUCKET}/linebreak/in', f'gs://{BUCKET}/linebreak/out',
                           model_path)
  errors = [json.loads(line) for b in gcs.list_blobs(prefix=f'linebreak/out/_runs/{run_id}/errors')
            for line in b.download_as_text().splitlines() if line]
  folder = f'gs://{BUCKET}/linebreak/in/nl\nx'
  assert status == 1 and [(e['uris'], e['message']) for e in errors] == [
      ([f'{folder}/frame0.png', f'{folder}/frame1.png'],
       f'cannot read {folder}/frame0.png and 1 more file(s) in {folder}: its name holds a line '
       f"break, which Beam's GCS filesystem cannot address (rename it); not in this run")]
  assert gcs.blob('linebreak/out/ok/frame_000002.png').exists()
  failures = capsys.readouterr().err.split('FAILED:', 1)[1].splitlines()[1:]
  assert failures == ['  - ' + errors[0]['message'].replace('\n', '\\n')]


@pytest.mark.parametrize('size', [2000, 9 * 2 ** 20])
def test_a_file_under_8_mib_is_written_in_one_request(gcs, gcs_requests, size):
  """Beam's writer makes every file a resumable upload, two requests (start, bytes); frames and
  markers go as one multipart request instead, and a file over 8 MiB still goes resumable."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
  path = f'gs://{BUCKET}/uploads/{size}.bin'
  start = gcs_requests.end()
  files.write_atomic(path, data, None)
  uploads = [r for r in gcs_requests.since(start) if r.kind == 'upload']
  assert gcs.blob(f'uploads/{size}.bin').download_as_bytes() == data
  if size < 8 * 2 ** 20:
    assert len(uploads) == 1 and 'uploadType=multipart' in uploads[0].path
  else:
    assert len(uploads) >= 2 and 'uploadType=resumable' in uploads[0].path


def test_files_are_deleted_by_name_a_hundred_per_request(gcs, gcs_requests):
  """Beam's delete matches each path as a pattern first (two requests more per file), so
  `take [2]/a.done` deleted `take 2/a.done`, another clip's marker, and stayed. Deleted by name
  in batches instead; one already gone is no error."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  names = [f'deletes/take [2]/{i}.done' for i in range(150)] + ['deletes/take 2/0.done']
  for name in names:
    gcs.blob(name).upload_from_string(b'{}')
  start = gcs_requests.end()
  files.delete_files([f'gs://{BUCKET}/{n}' for n in names[:150]] +
                     [f'gs://{BUCKET}/deletes/take [2]/gone.done'])
  assert [r.kind for r in gcs_requests.since(start)] == ['batch', 'batch']
  assert [b.name for b in gcs.list_blobs(prefix='deletes/')] == ['deletes/take 2/0.done']


def test_a_delete_that_cloud_storage_never_answers_is_a_storage_error(gcs, monkeypatch):
  """Beam's batch delete read a batch request that failed until its retries ran out as answers
  of None: "AttributeError: 'NoneType' object has no attribute 'status_code'", which stopped the
  whole job where a done marker had to be withdrawn."""
  from apache_beam.io.filesystem import BeamIOError  # pylint: disable=import-outside-toplevel
  from apache_beam.io.gcp import gcsio_retry  # pylint: disable=import-outside-toplevel
  from google.api_core import exceptions, retry  # pylint: disable=import-outside-toplevel
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel
  gcs.blob('undeleted/a.done').upload_from_string(b'{}')
  monkeypatch.setattr(gcsio_retry, 'get_retry', lambda options: retry.Retry(
      predicate=retry.if_exception_type(exceptions.ServiceUnavailable), initial=0.01,
      timeout=0.2))

  def unavailable(*args, **kwargs):
    raise exceptions.ServiceUnavailable('the batch endpoint is down')
  monkeypatch.setattr(storage.Client, 'batch', unavailable)
  path = f'gs://{BUCKET}/undeleted/a.done'
  with pytest.raises(BeamIOError) as raised:
    files.delete_files([path])
  assert raised.value.exception_details == {
      path: files.BATCH_UNANSWERED}
  assert not files.refused(raised.value)  # (a transient failure, not a refusal)
  assert files.reason(raised.value) == (
      f'Delete operation failed: {files.BATCH_UNANSWERED}')
  monkeypatch.undo()
  assert gcs.blob('undeleted/a.done').exists()


def test_cloud_storage_failing_is_said_in_words_not_the_librarys_tuple(gcs, monkeypatch):
  """A frame cloud storage would not serve read "cannot use frame X: Timeout of 120.0s exceeded,
  last exception: ('Request failed with status code', 503, 'Expected one of', <HTTPStatus.OK:
  200>, ...)", as if the frame were bad; a listing's failure as Beam's nested reprs."""
  from apache_beam.io.filesystem import BeamIOError  # pylint: disable=import-outside-toplevel
  from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel
  gcs.blob('unserved/frame0.png').upload_from_string(b'png')
  tries = _unavailable(monkeypatch, r'unserved%2Fframe0\.png\?alt=media')
  with pytest.raises(exceptions.RetryError) as raised:
    files.read_bytes(f'gs://{BUCKET}/unserved/frame0.png')
  assert len(tries) > 1 and re.fullmatch(
      r'cloud storage answered 503 Service Unavailable \(its client retried: Timeout of 0\.3s '
      r'exceeded\)', files.reason(raised.value))
  listing = BeamIOError('Match operation failed', {'gs://b/in/*': BeamIOError(
      'List operation failed', {'gs://b/in/': raised.value})})
  assert files.reason(listing).startswith(
      'Match operation failed: List operation failed: cloud storage answered 503 Service '
      'Unavailable (its client retried')
  assert files.reason(BeamIOError('Delete operation failed', {'gs://b/x': 503, 'gs://b/y': 503})) \
      == 'Delete operation failed: 503 Service Unavailable'
  # Refusals and local errors read as before.
  assert files.reason(FileNotFoundError(2, 'No such file or directory', 'x')) == (
      'no such file or directory')
  assert files.reason(exceptions.Forbidden('no access')) == '403 no access'


def test_each_passing_trouble_of_cloud_storage_is_said_as_one():
  """Only a 503 inside a RetryError was tried: a 429 or a 500, the storage library's own error
  raised as it is, no answer at all, a batch delete never answered and an error raised while
  handling one were each taken for another error (a usage error's status 2, a traceback); an
  answer of 404 through `requests` was 'cloud storage did not answer'."""
  import requests  # pylint: disable=import-outside-toplevel
  from apache_beam.io.filesystem import BeamIOError  # pylint: disable=import-outside-toplevel
  from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel
  assert files.storage_failure(exceptions.TooManyRequests('slow down')) == (
      'cloud storage answered 429 Too Many Requests')
  assert files.storage_failure(exceptions.InternalServerError('oops')) == (
      'cloud storage answered 500 Internal Server Error')
  assert files.storage_failure(exceptions.Forbidden('no access')) is None
  assert files.storage_failure(exceptions.NotFound('no such object')) is None
  assert files.storage_failure(requests.ConnectionError('connection reset')) == (
      'cloud storage did not answer (connection reset)')
  import http.client  # pylint: disable=import-outside-toplevel
  import urllib3  # pylint: disable=import-outside-toplevel
  cut = requests.ConnectionError(urllib3.exceptions.ProtocolError('Connection aborted.', (
      http.client.RemoteDisconnected('Remote end closed connection without response'))))
  assert files.storage_failure(cut) == (  # (was "(('Connection aborted.', RemoteDisconnected(...")
      'cloud storage did not answer (Connection aborted: Remote end closed connection without '
      'response)')
  import socket  # pylint: disable=import-outside-toplevel
  with socket.socket() as closed:
    closed.bind(('127.0.0.1', 0))
    port = closed.getsockname()[1]
  with pytest.raises(requests.ConnectionError) as refused:
    requests.get(f'http://127.0.0.1:{port}/storage/v1/b', timeout=5)
  assert files.storage_failure(refused.value) == (  # (not "Max retries exceeded with url: ...")
      f"cloud storage did not answer (HTTPConnection(host='127.0.0.1', port={port}): Failed to "
      f"establish a new connection: [Errno 111] Connection refused)")
  answer = requests.Response()
  answer.status_code = 404
  assert files.storage_failure(requests.HTTPError('404 Not Found', response=answer)) is None
  never = BeamIOError('Delete operation failed', {
      'gs://b/x.done': files.BATCH_UNANSWERED})
  assert files.storage_failure(never) == files.BATCH_UNANSWERED
  try:
    try:
      raise exceptions.ServiceUnavailable('down')
    except exceptions.ServiceUnavailable:
      raise RuntimeError('the step failed')  # pylint: disable=raise-missing-from
  except RuntimeError as e:
    assert files.storage_failure(e) == 'cloud storage answered 503 Service Unavailable'
  assert files.is_bucket('gs://b') and files.is_bucket('gs://b/')
  assert not files.is_bucket('gs://b/o') and not files.is_bucket('b/')
  assert not files.is_file('gs://b/')  # (Beam's exists raised)


@pytest.mark.parametrize('failing, says', [
    (r'/upload/', 'cloud storage answered 503 Service Unavailable (its client retried: Timeout '
                  'of 0.3s exceeded)'),
    # Beam finishes the run's records with batches of copies and deletes; one that failed until
    # its client's retries ran out reads, in Beam 2.77, as answers of None: 190-425 lines of
    # traceback ending "'NoneType' object has no attribute 'status_code'".
    (r'/batch/', "cloud storage failed a batch request until its client's retries ran out")])
def test_cloud_storage_that_stops_the_job_is_one_line(tmp_path, tiny_model, gcs, monkeypatch,
                                                     capsys, failing, says):
  """Where an outage outlasts the client's retries at a step that cannot go on without it (the
  run's records: here every upload, or every batch, fails), the job stops: Beam's tracebacks
  were 160-430 lines, naming no object, where a full disk is one line."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  name = failing.strip('/')
  _upload_clip(gcs, f'{name}/in/clip', make_clip(tmp_path / 'local', 2, seed=5))
  _unavailable(monkeypatch, failing)
  status, _ = run_job(f'gs://{BUCKET}/{name}/in', f'gs://{BUCKET}/{name}/out', model_path)
  err = capsys.readouterr().err
  assert status == 1 and tool_lines(err) == [
      f'error: the job stopped: {says}. What it wrote is whole; once cloud storage answers '
      f'again, the same command finishes the job'], err
  monkeypatch.undo()
  assert run_job(f'gs://{BUCKET}/{name}/in', f'gs://{BUCKET}/{name}/out', model_path)[0] == 0
  # A worker process's error comes to the launcher as text (multi_processing, as the probe saw).
  from pipeline import launch  # pylint: disable=import-outside-toplevel
  assert launch.storage_failure(RuntimeError(
      "google.api_core.exceptions.RetryError: Timeout of 120.0s exceeded, last exception: "
      "('Request failed with status code', 503, 'Expected one of', <HTTPStatus.OK: 200>) "
      "[while running 'WritePairRecords/Write/WriteImpl/WriteBundles']")) == (
          'cloud storage answered 503 Service Unavailable (its client retried: Timeout of 120.0s '
          'exceeded)')
  assert launch.storage_failure(RuntimeError(
      "BeamIOError: Match operation failed with exceptions {'gs://b/o/_markers/c/*.done': "
      "BeamIOError(\"List operation failed with exceptions {'gs://b/o/_markers/c/': "
      "RetryError('Timeout of 120.0s exceeded')}\")}")) == (
          'cloud storage failed (its client retried: Timeout of 120.0s exceeded)')
  assert launch.storage_failure(RuntimeError('ValueError: Timeout of 3s exceeded')) is None
  assert launch.storage_failure(RuntimeError(
      "AttributeError: 'NoneType' object has no attribute 'status_code' [while running "
      "'WritePairRecords/Write/WriteImpl/FinalizeWrite']")) == files.BATCH_UNANSWERED
  try:
    None.status_code  # pylint: disable=pointless-statement
  except AttributeError as e:  # (an error of our own code, not Beam's batch)
    assert files.storage_failure(e) is None


def test_a_clip_whose_output_cloud_storage_cannot_list_fails_alone(tmp_path, tiny_model, gcs,
                                                                   monkeypatch):
  """Planning lists each clip's output; a listing that failed beyond the client's retries
  stopped the whole job, before any clip was made (the direct runner retries no bundle)."""
  model_path, _ = tiny_model
  _upload_clip(gcs, 'onefails/in/a', make_clip(tmp_path / 'a', 2, seed=7))
  _upload_clip(gcs, 'onefails/in/b', make_clip(tmp_path / 'b', 2, seed=8))
  _unavailable(monkeypatch, r'prefix=onefails%2Fout%2F_markers%2Fa%2F')
  output = f'gs://{BUCKET}/onefails/out'
  status, run_id = run_job(f'gs://{BUCKET}/onefails/in', output, model_path)
  run = f'onefails/out/_runs/{run_id}'
  errors = [json.loads(line) for blob in gcs.list_blobs(prefix=f'{run}/errors-')
            for line in blob.download_as_text().splitlines()]
  assert status == 1 and [(e['stage'], e['message']) for e in errors] == [(
      'plan', 'clip a: cannot look at what earlier runs wrote for it: Match operation failed: '
              'List operation failed: cloud storage answered 503 Service Unavailable (its client '
              'retried: Timeout of 0.3s exceeded); its pairs are not made (the same command '
              'makes them)')]
  assert [e['uris'] for e in errors] == [[f'{output}/a']]  # (what a re-run of the clip needs)
  assert [b.name.rsplit('/', 1)[1] for b in gcs.list_blobs(prefix='onefails/out/b/')] == [
      'frame_000000.png', 'frame_000001.png', 'frame_000002.png']
  assert not list(gcs.list_blobs(prefix='onefails/out/a/'))
  monkeypatch.undo()
  status, run_id = run_job(f'gs://{BUCKET}/onefails/in', output, model_path)
  assert status == 0 and len(list(gcs.list_blobs(prefix='onefails/out/a/'))) == 3


@pytest.mark.parametrize('failing, says', [
    (r'prefix=unlisted%2Fin', 'error: --input gs://film-test/unlisted/in: cloud storage answered '
                              '503 Service Unavailable (its client retried: Timeout of 0.3s '
                              'exceeded). Nothing was done'),
    (r'models(/|%2F)unserved\.npz\?.*alt=media',
     'error: cannot load the film_net model from gs://film-test/models/unserved.npz: cloud '
     'storage answered 503 Service Unavailable (its client retried: Timeout of 0.3s exceeded). '
     'Nothing was done')])
def test_cloud_storage_failing_before_the_job_is_status_1_not_a_usage_error(
    tmp_path, tiny_model, gcs, monkeypatch, capsys, failing, says):
  """Status 2 says the command must change (a flag, the model); a storage outage while the
  input is listed or the model read was that, so a scheduler retrying 1 and alerting on 2 took
  it for a configuration error."""
  model_path, _ = tiny_model
  _upload_clip(gcs, 'unlisted/in/clip', make_clip(tmp_path / 'local', 2, seed=6))
  gcs.blob('models/unserved.npz').upload_from_filename(model_path)
  _unavailable(monkeypatch, failing)
  output = tmp_path / 'out'
  status, _ = run_job(f'gs://{BUCKET}/unlisted/in', str(output),
                      f'gs://{BUCKET}/models/unserved.npz')
  err = capsys.readouterr().err
  assert status == 1 and tool_lines(err) == [
      f'{says}; once cloud storage answers again, the same command runs the job'], err
  assert not output.exists()


def test_a_metadata_server_failing_or_refusing_a_token_is_said_so():
  """On a Compute Engine machine the token comes from its metadata server: a 5xx there is storage
  failing (a later run mends it), a 404 (no service account) the machine's setup; a listing's
  404 read as 'its bucket does not exist'."""
  from apache_beam.io.filesystem import BeamIOError  # pylint: disable=import-outside-toplevel
  from google.auth import exceptions  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel

  def listing_failed(status):
    failed = exceptions.TransportError(
        f'Failed to retrieve http://169.254.169.254/computeMetadata/v1/instance/service-accounts/'
        f'default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform from the '
        f'Google Compute Engine metadata service. Status: {status} Response:\nb"none"', object())
    try:
      try:
        raise failed
      except exceptions.TransportError as e:
        raise exceptions.RefreshError(e) from e
    except exceptions.RefreshError as e:
      return BeamIOError('Match operation failed', {'gs://b/in/*': BeamIOError(
          'List operation failed', {'gs://b/in/': e})})
  said = ('(Failed to retrieve http://169.254.169.254/computeMetadata/v1/instance/service-'
          'accounts/default/token from the Google Compute Engine metadata service. Status: {} '
          'Response:)')
  assert files.storage_failure(listing_failed(500)) == (
      f'cloud storage credentials could not be fetched {said.format(500)}')
  refresh = listing_failed(500).exception_details['gs://b/in/*'].exception_details['gs://b/in/']
  assert files.reason(refresh) == files.storage_failure(refresh)  # (a frame's read, say)
  assert files.credentials_refused(listing_failed(500)) is None
  assert files.storage_failure(listing_failed(404)) is None
  assert files.reason(listing_failed(404)) == files.credentials_refused(listing_failed(404)) == (
      f'the credentials for cloud storage were refused {said.format(404)}; log in again (gcloud '
      f'auth application-default login), name a valid key in GOOGLE_APPLICATION_CREDENTIALS or '
      f'give the machine a service account')
  assert files.credentials_refused(RuntimeError('other')) is None


@pytest.mark.parametrize('token_answer, status, says', [
    ((503, {'error': 'backend_error'}), 1,
     'cloud storage credentials could not be fetched (backend_error: None)'),
    ((400, {'error': 'invalid_grant', 'error_description': 'Invalid JWT Signature.'}), 2,
     "the credentials for cloud storage were refused (invalid_grant: Invalid JWT Signature.); log "
     "in again (gcloud auth application-default login), name a valid key in "
     "GOOGLE_APPLICATION_CREDENTIALS or give the machine a service account")])
def test_credentials_that_cannot_be_renewed_are_said_so(tmp_path, tiny_model, gcs, monkeypatch,
                                                        capsys, token_answer, status, says):
  """A token endpoint (or metadata server) that fails is storage failing: status 1, a later run
  mends it; a key it refuses (deleted, a revoked login) is the command's setup: status 2 and
  what renews it. Both were one cut-off line of Beam's nested errors, status 2."""
  import http.server  # pylint: disable=import-outside-toplevel
  import threading  # pylint: disable=import-outside-toplevel
  from apache_beam.internal.gcp import auth  # pylint: disable=import-outside-toplevel
  from apache_beam.io.gcp import gcsio_retry  # pylint: disable=import-outside-toplevel
  # pylint: disable=import-outside-toplevel
  from cryptography.hazmat.primitives import serialization  # (google-auth's, Beam's dependency)
  from cryptography.hazmat.primitives.asymmetric import rsa
  from google.cloud.storage.retry import DEFAULT_RETRY  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  _upload_clip(gcs, 'nocredentials/in/clip', make_clip(tmp_path / 'local', 2, seed=6))

  class TokenEndpoint(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # pylint: disable=invalid-name
      self.rfile.read(int(self.headers['Content-Length']))
      body = json.dumps(token_answer[1]).encode()
      self.send_response(token_answer[0])
      self.send_header('Content-Type', 'application/json')
      self.send_header('Content-Length', str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def log_message(self, *args):
      pass
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), TokenEndpoint)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
      serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
      serialization.NoEncryption()).decode()
  key_file = tmp_path / 'key.json'  # (a service account's key, as the console gives it)
  key_file.write_text(json.dumps({
      'type': 'service_account', 'project_id': 'test-project', 'private_key_id': '1',
      'private_key': key, 'client_email': 'film@test-project.iam.gserviceaccount.com',
      'client_id': '1', 'token_uri': f'http://127.0.0.1:{server.server_port}/token'}))
  monkeypatch.setenv('GOOGLE_APPLICATION_CREDENTIALS', str(key_file))
  monkeypatch.setattr(auth._Credentials, '_credentials_init', False)  # (found anew, then put back)
  monkeypatch.setattr(auth._Credentials, '_credentials', None)
  monkeypatch.setattr(gcsio_retry, 'get_retry',  # (the storage library's own, less patient)
                      lambda options: DEFAULT_RETRY.with_delay(initial=0.01).with_timeout(0.3))
  try:
    got, _ = run_job(f'gs://{BUCKET}/nocredentials/in', str(tmp_path / 'out'), model_path)
  finally:
    server.shutdown()
  lines = tool_lines(capsys.readouterr().err)
  assert got == status and len(lines) == 1, lines
  assert lines[0].startswith(f'error: --input gs://{BUCKET}/nocredentials/in: {says}'), lines
  assert not (tmp_path / 'out').exists()


def test_no_credentials_is_one_line_and_a_401_says_how_to_set_them_up(
    tmp_path, tiny_model, gcs, monkeypatch, capsys, caplog):
  """With no credentials set up (a laptop before `gcloud auth application-default login`) Beam
  looks five times over ~22 s, warning of each look with a traceback, then asks anonymously; a
  private bucket's 401 then read as Beam's nested errors cut at 300 characters."""
  from apache_beam.internal.gcp import auth  # pylint: disable=import-outside-toplevel
  from apache_beam.utils import retry  # pylint: disable=import-outside-toplevel
  from google.auth.compute_engine import _metadata  # pylint: disable=import-outside-toplevel
  from transforms import files  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  _upload_clip(gcs, 'anonymous/in/clip', make_clip(tmp_path / 'local', 3, seed=6))
  monkeypatch.delenv('GOOGLE_APPLICATION_CREDENTIALS', raising=False)
  monkeypatch.setenv('CLOUDSDK_CONFIG', str(tmp_path / 'gcloud'))  # (no gcloud login)
  monkeypatch.setattr(_metadata, 'is_on_gce', lambda *args, **kwargs: False)  # (a laptop)
  monkeypatch.setattr(retry.Clock, 'sleep', lambda self, seconds: None)  # (Beam's 22 s of waits)
  monkeypatch.setattr(auth._Credentials, '_credentials_init', False)  # (found anew, then put back)
  monkeypatch.setattr(auth._Credentials, '_credentials', None)
  status, _ = run_job(f'gs://{BUCKET}/anonymous/in', str(tmp_path / 'out'), model_path)
  warned = [r.getMessage() for r in caplog.records  # (google.auth's own stop at its "google"
            if r.levelno >= logging.WARNING and r.name.startswith('apache_beam')]  # logger)
  assert status == 0 and warned == [
      'no Google Cloud credentials were found, so cloud storage is asked anonymously, '
      'which reads public buckets only: `gcloud auth application-default login`, or a key named '
      'in GOOGLE_APPLICATION_CREDENTIALS, sets them up']
  unauthorized = {'error': {'code': 401, 'message': 'Anonymous caller does not have '
                                                    'storage.objects.list access to the bucket.'}}
  _answering(monkeypatch, r'prefix=anonymous%2Fin', 401, unauthorized)
  status, _ = run_job(f'gs://{BUCKET}/anonymous/in', str(tmp_path / 'again'), model_path)
  assert status == 2 and tool_lines(capsys.readouterr().err) == [
      f'error: --input gs://{BUCKET}/anonymous/in: no permission to list it (cloud storage '
      f'answered 401 Unauthorized, to no credentials or ones it does not take: `gcloud auth '
      f'application-default login`, or a key named in GOOGLE_APPLICATION_CREDENTIALS, sets them '
      f'up)']
  with pytest.raises(PermissionError, match=r'Permission denied \(cloud storage answered 401'):
    _answering(monkeypatch, r'anonymous%2Fin%2Fclip%2Fframe0\.png\?alt=media', 401, unauthorized)
    files.read_bytes(f'gs://{BUCKET}/anonymous/in/clip/frame0.png')


def test_a_nightly_run_lists_done_markers_instead_of_reading_each(tmp_path, tiny_model, gcs,
                                                                  gcs_requests):
  """Over an unchanged archive a run reads no done marker: per work unit it lists the markers at
  its pairs' positions (one listing per hundred), and a marker older than the job (its
  `started.json`) is another job's. Making the pairs, the frames just written are checked by
  listing too, not one by one, and the clip's markers that may be stale are listed once, not
  per unit."""
  model_path, _ = tiny_model
  _upload_clip(gcs, 'listed/in/clip', make_clip(tmp_path / 'local', 9, seed=12))
  out = f'gs://{BUCKET}/listed/out'

  def requests_of(run):
    start = gcs_requests.end()
    status, run_id = run()
    time.sleep(0.5)
    assert status == 0
    return [(r.kind, urllib.parse.unquote(r.path)) for r in gcs_requests.since(start)], run_id

  def run(*extra):
    return lambda: run_job(f'gs://{BUCKET}/listed/in', out, model_path,
                           '--times_to_interpolate=1', *extra)

  first, _ = requests_of(run('--pairs_per_unit=2'))
  frame_checks = [p for k, p in first if k == 'metadata' and '/listed/out/clip/frame_' in p]
  assert not frame_checks
  # The clip's whole marker folder: once for its 4 units (`EarlierMarkers`: every unit has
  # work, and earlier markers to delete could be anywhere), once for markers past its end.
  assert sum(k == 'list' and '_markers/clip/&' in p for k, p in first) == 2
  time.sleep(interpolate.CLOCK_STEP_SECONDS + 0.5)  # the markers are older than the next job
  again, run_id = requests_of(run('--pairs_per_unit=4'))
  assert not [p for k, p in again if '.done' in p]  # no marker read
  marker_lists = [p for k, p in again if k == 'list' and '/_markers/' in p]
  by_position = [p for p in marker_lists if 'prefix=listed/out/_markers/clip/pair_0000&' in p]
  assert len(by_position) == 2  # one per unit; the other is the clip's, for markers past its end
  assert len(marker_lists) == 3 and sum('_markers/clip/&' in p for p in marker_lists) == 1
  summary = json.loads(gcs.blob(f'listed/out/_runs/{run_id}/summary.json').download_as_bytes())
  assert summary['pairs']['skipped'] == 8 and summary['model_calls'] == 0
  started = json.loads(gcs.blob(f'listed/out/_runs/{run_id}/started.json').download_as_bytes())
  assert started['run_id'] == run_id and started['options']['pairs_per_unit'] == 4


@pytest.mark.parametrize('folder', ['times/m', 'times/take [2]'])
def test_updated_times_lists_once_per_prefix(tmp_path, gcs, gcs_requests, folder):
  """The files of a list of names that exist, with their times: one listing per prefix (pair
  positions of a hundred, also past a million), never confused by names that merely start alike;
  a folder whose name holds glob characters is asked name by name (a listing would start at the
  bracket). Locally, the same answer from a stat each."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  there = ['pair_000099-a.done', 'pair_000100-b.done', 'pair_1000000-c.done']
  for name in there + ['pair_000100-b.done.bak', 'pair_0000990-d.done']:
    gcs.blob(f'{folder}/{name}').upload_from_string(b'{}')
    (tmp_path / name).write_bytes(b'{}')
  names = there + ['pair_000101-e.done']
  start = gcs_requests.end()
  found = files.updated_times(f'gs://{BUCKET}/{folder}', names)
  lists = [r for r in gcs_requests.since(start) if r.kind == 'list']
  assert sorted(found) == there and all(abs(t - time.time()) < 60 for t in found.values())
  assert len(lists) == (3 if '[' not in folder else len(names))
  local = files.updated_times(str(tmp_path), names)
  assert {n: int(t) for n, t in local.items()} == {
      n: int(os.path.getmtime(tmp_path / n)) for n in there}
  # With `like`, the listings' other files of a wanted kind come too (locally: one scan).
  gcs.blob(f'{folder}/pair_000099-z.done').upload_from_string(b'{}')
  (tmp_path / 'pair_000099-z.done').write_bytes(b'{}')
  def stem(name):
    return name.split('-')[0]
  kin = sorted(there + ['pair_000099-z.done', 'pair_000100-b.done.bak'])
  assert sorted(files.updated_times(str(tmp_path), names, like=stem)) == kin
  if '[' not in folder:  # (asked name by name, only those names come)
    start = gcs_requests.end()
    assert sorted(files.updated_times(f'gs://{BUCKET}/{folder}', names, like=stem)) == kin
    assert len([r for r in gcs_requests.since(start) if r.kind == 'list']) == 3
  assert files.updated_times(str(tmp_path / 'none'), names, like=stem) == {}


def test_a_local_folder_is_scanned_for_kin_once_until_it_changes(tmp_path, monkeypatch):
  """Each unit of a long clip asks after its own few markers and their rivals: a scan of the
  whole marker folder each time made a re-run of a clip of P pairs check P^2 / pairs_per_unit
  names (20000 frames: 32 s). Now the names are scanned again once the folder changes or the
  scan has served a while, reading only the names changed; files gone since are not found, and
  files added are."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  names = [f'pair_{p:06d}-{p:09d}-x.done' for p in range(3000)]
  for name in names:
    (tmp_path / name).write_bytes(b'')
  calls = []
  def stem(name):
    calls.append(name)
    return name.rsplit('-', 1)[0]
  for unit in range(0, len(names), 16):
    assert sorted(files.updated_times(str(tmp_path), names[unit:unit + 16], like=stem)) == (
        names[unit:unit + 16])
  assert len(calls) == 2 * len(names)  # one scan, and the stems of the names asked after
  time.sleep(0.05)  # (past the clock tick of the scan)
  (tmp_path / 'pair_000007-000000007-y.done').write_bytes(b'')
  os.remove(tmp_path / names[8])
  del calls[:]
  assert sorted(files.updated_times(str(tmp_path), names[7:9], like=stem)) == [
      names[7], 'pair_000007-000000007-y.done']
  assert len(calls) == 2 + 2  # as a first run adds markers: only the changed names are read
  # A folder whose mtime stays put on a change (some network and FUSE filesystems): found once
  # the scan has served its time.
  monkeypatch.setattr(files, '_LOCAL_KIN_SECONDS', 0.5)
  assert sorted(files.updated_times(str(tmp_path), names[9:10], like=stem)) == names[9:10]
  still, stat = os.stat(tmp_path), os.stat
  monkeypatch.setattr(os, 'stat', lambda path, *a, **k: still if str(path) == str(tmp_path)
                      else stat(path, *a, **k))
  (tmp_path / 'pair_000009-000000009-y.done').write_bytes(b'')
  assert sorted(files.updated_times(str(tmp_path), names[9:10], like=stem)) == names[9:10]
  time.sleep(0.6)
  assert sorted(files.updated_times(str(tmp_path), names[9:10], like=stem)) == [
      names[9], 'pair_000009-000000009-y.done']


def test_a_clip_removed_from_the_bucket_is_pruned_from_the_output(tmp_path, tiny_model, gcs):
  """--prune_removed_clips on gs://: one listing of the output finds the clips' objects, which
  go by name (a clip named with glob characters too, beside one it would match)."""
  model_path, _ = tiny_model
  for i, name in enumerate(['take [2]', 'take 2', 'gone']):
    _upload_clip(gcs, f'prune/in/{name}', make_clip(tmp_path / name, 2, seed=20 + i))
  out = f'gs://{BUCKET}/prune/out'
  assert run_job(f'gs://{BUCKET}/prune/in', out, model_path)[0] == 0
  outputs = {b.name for b in gcs.list_blobs(prefix='prune/out/') if '/_runs/' not in b.name}
  for name in ('take [2]', 'gone'):
    for blob in gcs.list_blobs(prefix=f'prune/in/{name}/'):
      blob.delete()
  status, run_id = run_job(f'gs://{BUCKET}/prune/in', out, model_path, '--prune_removed_clips')
  summary = json.loads(gcs.blob(f'prune/out/_runs/{run_id}/summary.json').download_as_bytes())
  assert status == 0 and summary['clips_pruned'] == 2 and summary['pairs']['skipped'] == 1
  left = {b.name for b in gcs.list_blobs(prefix='prune/out/') if '/_runs/' not in b.name}
  folder = clips.sanitise_clip_name('take 2')
  kept = sorted(n for n in outputs if f'/{folder}/' in n)
  assert kept and len(kept) < len(outputs) and sorted(left) == kept


def test_a_bucket_that_does_not_exist_is_one_line_before_any_work(tmp_path, tiny_model, gcs,
                                                                  capsys):
  """A mistyped bucket ended the run in a 72-line Beam traceback (the evaluation's output one
  after every triplet was scored)."""
  from pipeline import evaluate  # pylint: disable=import-outside-toplevel
  model_path, _ = tiny_model
  _upload_clip(gcs, 'nobucket/in/clip', make_clip(tmp_path / 'local', 2, seed=3))
  status, _ = run_job(f'gs://{BUCKET}/nobucket/in', 'gs://no-such-bucket/out', model_path)
  err = capsys.readouterr().err
  assert status == 2 and err.strip() == (
      'error: --output gs://no-such-bucket/out: its bucket no-such-bucket does not exist')
  status, _ = run_job('gs://no-such-bucket/in', f'gs://{BUCKET}/nobucket/out', model_path)
  assert status == 2 and capsys.readouterr().err.strip() == (
      'error: --input gs://no-such-bucket/in: its bucket no-such-bucket does not exist')
  status, _ = run_job(f'gs://{BUCKET}/nobucket/in', f'gs://{BUCKET}/nobucket/out',
                      'gs://no-such-bucket/model.npz')
  assert status == 2 and capsys.readouterr().err.strip() == (
      'error: --model_path gs://no-such-bucket/model.npz: its bucket no-such-bucket does not '
      'exist')
  for flags in (['--input', 'gs://no-such-bucket/ev', '--output', str(tmp_path / 'ev')],
                ['--input', f'gs://{BUCKET}/nobucket/in', '--leave_one_out', '--output',
                 'gs://no-such-bucket/ev']):
    assert evaluate.main(flags + ['--no_model', '--baselines', 'repeat']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: --') and err.endswith('its bucket no-such-bucket does not exist')
  assert evaluate.main(['--input', f'gs://{BUCKET}/nobucket/in', '--leave_one_out', '--output',
                        str(tmp_path / 'ev'), '--model_path', 'gs://no-such-bucket/m.npz']) == 2
  assert capsys.readouterr().err.strip() == (
      'error: --model_path gs://no-such-bucket/m.npz: its bucket no-such-bucket does not exist')
  assert not (tmp_path / 'ev').exists()


def test_an_empty_bucket_as_input_is_an_error_record_not_a_failed_job(tmp_path, tiny_model,
                                                                       gcs):
  """Discovery asked Beam whether the bucket's root is a file to word its record, and Beam
  raises for a root (no object's name): the job failed on its retries, with no record."""
  model_path, _ = tiny_model
  empty = gcs.client.create_bucket('film-test-empty-input').name
  output = str(tmp_path / 'out')
  for path in (f'gs://{empty}', f'gs://{empty}/'):
    status, run_id = run_job(path, output, model_path)
    errors = run_records(output, run_id, 'errors')
    assert status == 1 and [(e['stage'], e['message']) for e in errors] == [
        ('discover', f'input bucket is empty: gs://{empty}')]
    with open(os.path.join(output, '_runs', run_id, 'summary.json')) as f:
      assert json.load(f)['errors'] == 1


def test_a_bucket_model_that_is_not_there_is_a_usage_error_naming_it(tmp_path, gcs, capsys):
  """film_net.interpolate and film_net.export said exit status 1 for a gs:// --model that is not
  there (2, a usage error, for a local one, as the pipeline for both), and for a missing bucket
  printed Beam's 'Match operation failed with exceptions {...}' listing."""
  from film_net import export  # pylint: disable=import-outside-toplevel
  from film_net import interpolate as interpolate_cli  # pylint: disable=import-outside-toplevel
  make_clip(tmp_path / 'pair', 2, seed=4)
  frames = sorted(str(p) for p in (tmp_path / 'pair').iterdir())
  for model, message in (
      (f'gs://{BUCKET}/no-model-here/m.npz',
       f'error: model path does not exist: gs://{BUCKET}/no-model-here/m.npz'),
      ('gs://no-such-bucket/m.npz',
       'error: model path gs://no-such-bucket/m.npz: its bucket no-such-bucket does not exist')):
    assert interpolate_cli.main([*frames, '--output_dir', str(tmp_path / 'out'),
                                 '--model', model]) == 2
    assert capsys.readouterr().err.strip() == message
    assert export.main(['--model', model, '--output', str(tmp_path / 'saved')]) == 2
    assert capsys.readouterr().err.strip() == message
  assert not (tmp_path / 'out').exists() and not (tmp_path / 'saved').exists()
