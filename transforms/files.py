"""Whole-file reads and writes on any Beam filesystem (local disk, gs://, ...).

Readers of the output must never see half a file, so every write is atomic: on GCS one object
upload only becomes visible when it completes; elsewhere we write a temporary file under
`<output>/_tmp/` and rename it into place. Temporaries carry no image extension, so a run killed
mid-write leaves nothing that looks like a frame. On GCS, reads, writes and deletes go through
the client of Beam's own GCS filesystem (`_beam_gcsio`) by name: one request per file, a hundred
files per delete, where Beam's file objects take two or three requests per file.
"""

import collections
import contextlib
import dataclasses
import errno
import http
import os
import posixpath
import re
import shutil
import stat as _stat
import threading
import time
import traceback
import uuid
import warnings

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems

# google-cloud-storage (3.11 on) looks up a bucket's metadata in the background for its tracing
# spans, once per client; Beam makes a client per file operation, so each read, write, listing
# or check cost one more request (`storage.buckets.get`, an ERROR in the audit log for workers
# whose role grants objects only). The spans are off unless traces are turned on, so unless
# they are, so is the lookup (googleapis/google-cloud-python#17650; the switch is read from
# 3.12 on, so setup.py leaves out 3.11.0).
if os.environ.get('ENABLE_GCS_PYTHON_CLIENT_OTEL_TRACES', '').strip().lower() not in (
    '1', 'true', 'yes', 'on'):
  os.environ.setdefault('DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA', 'true')

# Top-level names under --output that belong to the pipeline, never to a clip.
RUNS_DIR = '_runs'
MARKERS_DIR = '_markers'
TMP_DIR = '_tmp'
RESERVED = frozenset({RUNS_DIR, MARKERS_DIR, TMP_DIR})
# What pipeline.evaluate writes under its --output: its report and table, the mark written before
# any comparison PNG (a killed evaluation has no report yet), and the folder of those PNGs:
# pictures of frames, which no listing of footage takes as a clip.
EVALUATION_REPORT = 'results.json'
EVALUATION_TABLE = 'results.csv'
EVALUATION_STARTED = '.film-evaluation'
EVALUATION_COMPARISONS = 'comparisons'


def join(base, *parts):
  """Joins path parts with '/', the separator of every Beam filesystem we target."""
  if FileSystems.get_scheme(base) is None:
    return os.path.join(base, *parts)
  return posixpath.join(base, *parts)


def real_path(path):
  """Where a path leads: a local one absolute, through its links; others as they are. The same
  files named from another folder or through a link compare equal."""
  return os.path.realpath(path) if FileSystems.get_scheme(path) is None else path


def unreachable(path):
  """Why a folder on an object store cannot be listed (its bucket missing, no access; cloud
  storage failing, in words that start 'cloud storage', `storage_failure`), in words; None
  where it can (empty or not) and for local paths. One listing request: bucket metadata would
  need a role that workers granted objects alone lack."""
  if FileSystems.get_scheme(path) is None:
    return None
  try:
    FileSystems.match([join(path.rstrip('/'), '*')], limits=[1])
  except Exception as e:  # pylint: disable=broad-except
    said, text = storage_failure(e) or credentials_refused(e), str(e)
    if said:  # (first: a metadata server's 404, no account, is not the bucket's)
      return said
    if 'NotFound' in text or ' 404 ' in text:
      return f'its bucket {path.split("://", 1)[1].split("/", 1)[0]} does not exist'
    if 'Forbidden' in text or ' 403 ' in text:
      return 'no permission to list it'
    if 'Unauthorized' in text or ' 401 ' in text:  # (anonymous: no credentials were found)
      return f'no permission to list it ({_UNAUTHORIZED})'
    return f'cannot be listed ({type(e).__name__}: {text[:300]})'
  return None


# What cloud storage's 401 means here: Beam asks anonymously where it found no credentials.
_UNAUTHORIZED = ('cloud storage answered 401 Unauthorized, to no credentials or ones it does not '
                 'take: `gcloud auth application-default login`, or a key named in '
                 'GOOGLE_APPLICATION_CREDENTIALS, sets them up')


def object_in_the_way(folder):
  """On an object store, the object that `folder` or a folder above it names (`gs://b/in/f.png`
  for `gs://b/in/f.png/out`, a typo): writing there would hide output under a file's name, where
  a local disk refuses. None where there is none, and for local paths (`flags.not_a_folder`).
  One request per level below the bucket."""
  if FileSystems.get_scheme(folder) is None:
    return None
  path = folder.rstrip('/')
  while path.split('://', 1)[1].count('/') >= 1:  # below the bucket
    if FileSystems.exists(path):
      return path
    path = path.rsplit('/', 1)[0]
  return None


def unaddressable(path):
  """Why Beam cannot address `path`, in words, or None. Beam parses a gs:// path with a pattern
  whose '.' stops at a line break, so an object whose name holds one fails every read and write
  with a message that its path is not of the form gs://<bucket>/<object>, which it is. A local
  name that is not UTF-8 (a Latin-1 `café` from an old volume: Python keeps its byte as a lone
  surrogate) cannot be encoded into any of Beam's elements: it stopped the whole run."""
  if '\n' in path and FileSystems.get_scheme(path) == 'gs':
    return "its name holds a line break, which Beam's GCS filesystem cannot address (rename it)"
  try:
    path.encode('utf-8')
  except UnicodeEncodeError:
    return ('its name is not UTF-8 (written on a system of another code page?), which Beam '
            'cannot carry between its steps (rename it)')
  return None


def printable(text):
  """`text` as UTF-8 can carry it: a name's undecodable bytes (lone surrogates, as Python reads
  them) shown as `\\xe9`, so records that name such a file can be written."""
  try:
    return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
  except UnicodeEncodeError:  # (a surrogate no byte stands for)
    return text.encode('utf-8', 'backslashreplace').decode('utf-8')


def open_for_reading(path):
  """`FileSystems.open` of a file to read; a local one that is no regular file (a named pipe,
  which would block its reader for ever, a device that never ends) is refused by name."""
  mode = os.stat(path).st_mode if FileSystems.get_scheme(path) is None else None
  if mode is not None and _stat.S_ISDIR(mode):
    raise ValueError(f'{path} is a folder, not a file')
  if mode is not None and not _stat.S_ISREG(mode):
    raise ValueError(f'{path} is not a regular file (a named pipe, socket or device): it is '
                     f'not read')
  return FileSystems.open(path, compression_type='uncompressed')


def read_bytes(path):
  """The whole file. On GCS one request (the bytes, checked against their CRC32C unless the
  storage library resumed a cut download: it checks whole downloads only), where Beam's reader
  asks for the object's metadata first: two per frame read."""
  why = unaddressable(path)
  if why:
    raise ValueError(why)
  on_gcs = _gcs_blob(path)
  if on_gcs:
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    blob, retry = on_gcs
    try:
      # Raw, as Beam reads: the stored bytes, never decompressed on the way.
      return blob.download_as_bytes(raw_download=True, retry=retry)
    except exceptions.NotFound:  # as a local read fails, not an HTTP dump with the media URL
      raise FileNotFoundError(errno.ENOENT, 'No such file or directory', path) from None
    except exceptions.Forbidden:
      raise PermissionError(errno.EACCES, 'Permission denied', path) from None
    except exceptions.Unauthorized:
      raise PermissionError(errno.EACCES, f'Permission denied ({_UNAUTHORIZED})', path) from None
  with open_for_reading(path) as f:
    return f.read()


def reason(error):
  """Why a file operation failed, for a message that names the file already: an OS error's
  own words without the path repeated; cloud storage's failure as what it answered
  (`_storage_answer`), and Beam's error of a batch by its parts; anything else as it reads."""
  answer = _storage_answer(error) or credentials_refused(error)
  if answer:
    return answer
  if isinstance(error, BeamIOError) and error.exception_details:
    parts = (reason(d) if isinstance(d, BaseException) else _status_words(d)
             for d in error.exception_details.values())
    return f"{str(error).split(' with exceptions ', 1)[0]}: {'; '.join(dict.fromkeys(parts))}"
  if isinstance(error, OSError) and error.strerror:
    return error.strerror[:1].lower() + error.strerror[1:]
  return str(error)


def _storage_answer(error):
  """Where `error` is cloud storage failing (a status it gives for a passing trouble: 429, 5xx;
  no answer; its client's retries running out), that in words, e.g. 'cloud storage answered
  503 Service Unavailable (its client retried: Timeout of 120.0s exceeded)'; else None. The
  storage library's own text is a tuple's repr ('Request failed with status code', 503, ...)."""
  kind = type(error)
  if kind.__name__ == 'RetryError' and kind.__module__.startswith('google.api_core'):
    cause = getattr(error, 'cause', None)
    said = _storage_answer(cause) if cause is not None else None
    return f'{said or "cloud storage failed"} (its client retried: {error.message})'
  if _renewing_credentials(error) == 'failed':
    return f'cloud storage credentials could not be fetched ({_auth_words(error)})'
  status = getattr(getattr(error, 'response', None), 'status_code', None)  # (InvalidResponse)
  if kind.__module__.startswith('google.api_core'):
    status = getattr(error, 'code', None)
  if isinstance(status, int) and (status == 429 or status >= 500):
    return f'cloud storage answered {_status_words(status)}'
  # No answer at all: a connection refused or reset, a timeout (an HTTPError has one).
  if status is None and kind.__module__.startswith(('requests.', 'urllib3.')):
    return f'cloud storage did not answer ({_connection_words(error)})'
  return None


def _connection_words(error):
  """A lost connection's words through the errors it holds, without their reprs:
  ConnectionError(ProtocolError('Connection aborted.', RemoteDisconnected('Remote end closed
  connection without response'))) -> 'Connection aborted: Remote end closed connection without
  response'."""
  said, seen = [], error
  for _ in range(10):  # (errors inside errors, not a loop)
    if isinstance(getattr(seen, 'reason', None), BaseException):  # (urllib3's retries ran out:
      seen = seen.reason  # "Max retries exceeded with url: ... (Caused by ...)", its reason)
      continue
    said += [a.rstrip('.') for a in seen.args if isinstance(a, str)]
    inner = [a for a in seen.args if isinstance(a, BaseException)]
    if not inner:
      break
    seen = inner[-1]
  return ': '.join(dict.fromkeys(said)) or str(error)


# The same in a step's error as a runner passes it on from a worker process, as text: "RetryError:
# Timeout of 120.0s exceeded, last exception: ('Request failed with status code', 503, ...)", or
# within a listing's "BeamIOError(... RetryError('Timeout of 120.0s exceeded') ...)".
_RETRIES_RAN_OUT = re.compile(r"RetryError(?:: |\(['\"])(Timeout of [\d.]+s exceeded)")
_STATUS_IN_TEXT = re.compile(r"'Request failed with status code', (\d{3})")


def storage_failure(error):
  """`_storage_answer` of `error`, of an error inside it (Beam's error of a batch) or of one it
  was raised from (a runner raises a step's error anew), or read from its text (a worker
  process's comes as text); Beam's batch that got no answer (`BATCH_UNANSWERED`); None where
  cloud storage (or the credentials for it) did not fail."""
  for seen in _errors_within(error):
    said = (seen if isinstance(seen, str) and seen.startswith('cloud storage') else
            None if isinstance(seen, str) else _storage_answer(seen))
    if said:
      return said
    if _unanswered_batch(seen):
      return BATCH_UNANSWERED
  text = str(error)
  if _NONE_ANSWER in text and ('gcsio.py' in text or '/WriteImpl/' in text):
    return BATCH_UNANSWERED  # (a worker process's, as text: in Beam's writer or its gcsio)
  retried = _RETRIES_RAN_OUT.search(text)
  if not retried:
    return None
  status = _STATUS_IN_TEXT.search(text)
  answered = f'answered {_status_words(int(status.group(1)))}' if status else 'failed'
  return f'cloud storage {answered} (its client retried: {retried.group(1)})'


# Beam 2.77's batch copy and delete (its record writer's last step, `FileSystems.delete`) read a
# batch request that failed until its client's retries ran out as answers of None (how it
# failed is not kept).
BATCH_UNANSWERED = ("cloud storage failed a batch request until its client's retries ran "
                    "out")
_NONE_ANSWER = "'NoneType' object has no attribute 'status_code'"


def _unanswered_batch(error):
  """Whether `error` is Beam's gcsio reading a batch that got no answer (`BATCH_UNANSWERED`)."""
  return (isinstance(error, AttributeError) and _NONE_ANSWER in str(error) and any(
      frame.filename.endswith('gcsio.py') and 'apache_beam' in frame.filename
      for frame in traceback.extract_tb(error.__traceback__)))


def credentials_refused(error):
  """Where the credentials for cloud storage were refused when renewed (a deleted key, a revoked
  login: `_renewing_credentials`), that in words with what renews them; else None. Not 'cloud
  storage ...': the same command fails again."""
  for seen in _errors_within(error):
    if _renewing_credentials(seen) == 'refused':
      return (f'the credentials for cloud storage were refused ({_auth_words(seen)}); log in '
              f'again (gcloud auth application-default login), name a valid key in '
              f'GOOGLE_APPLICATION_CREDENTIALS or give the machine a service account')
  return None


def _renewing_credentials(error):
  """How google.auth's `error` failed to renew credentials: 'failed' for a passing trouble (no
  answer; a 5xx or 429, which its RefreshError calls `retryable`), 'refused' for an answer a
  retry meets again (a 4xx); None for any other error."""
  kind = type(error)
  if not (kind.__module__.startswith('google.auth') and
          kind.__name__ in ('TransportError', 'RefreshError')):
    return None
  if getattr(error, 'retryable', False):
    return 'failed'
  if kind.__name__ == 'RefreshError':  # (one made of a TransportError: that error's verdict)
    return _renewing_credentials(error.__cause__) or 'refused'
  status = _AUTH_STATUS.search(str(error))
  refused = status and status.group(1).startswith('4') and status.group(1) != '429'
  return 'refused' if refused else 'failed'


# google.auth's text of an answer: "Failed to retrieve http://metadata/.../token?scopes=... from
# the Google Compute Engine metadata service. Status: 404 Response: ...".
_AUTH_STATUS = re.compile(r'[Ss]tatus: (\d{3})\b')


def _auth_words(error):
  """google.auth's words for `error`: its first line, URLs without their query (scopes)."""
  said = error.args[0] if error.args else error
  if isinstance(said, BaseException):  # (a RefreshError made of its TransportError)
    return _auth_words(said)
  said = str(said)
  return re.sub(r'(https?://[^\s?]*)\?\S*', r'\1', (said.splitlines() or [''])[0])


def _errors_within(error):
  """`error`, the errors it was raised from (a runner raises a step's error anew) and those
  inside Beam's error of a batch, depth first; a batch's parts may be text."""
  seen = error if isinstance(error, BaseException) else None
  for _ in range(20):  # (a chain of errors, not a loop)
    if seen is None:
      return
    yield seen
    if isinstance(seen, BeamIOError) and seen.exception_details:
      for detail in seen.exception_details.values():
        if isinstance(detail, BaseException):
          yield from _errors_within(detail)
        else:
          yield str(detail)
    seen = seen.__cause__ or seen.__context__


def _status_words(status):
  """503 -> '503 Service Unavailable'; anything else as it reads."""
  try:
    return f'{status} {http.HTTPStatus(status).phrase}'
  except (ValueError, TypeError):
    return str(status)


def refused(error):
  """Whether `error` is a refusal that a retry would meet again, where others (a connection
  reset, a storage server's 503) are left to raise and be retried: no permission or a read-only
  disk locally, 401 Unauthorized or 403 Forbidden on cloud storage, also inside Beam's error of
  a batch."""
  if isinstance(error, BeamIOError) and error.exception_details:
    return all(refused(detail) for detail in error.exception_details.values())
  if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
    return True
  return error in (401, 403) or getattr(error, 'code', None) in (401, 403)  # (a batch's codes)


def _beam_gcsio(path):
  """The GCS client of Beam's filesystem for `path`, built from the job's options (credentials,
  audit headers, retries), or None from a Beam that no longer has that hook (then Beam's own
  file operations serve)."""
  make_gcsio = getattr(FileSystems.get_filesystem(path), '_gcsIO', None)
  gcs = make_gcsio() if make_gcsio else None
  return gcs if getattr(gcs, 'client', None) is not None else None


def _gcs_blob(path):
  """(blob, retry policy) of a gs:// `path` through `_beam_gcsio`; None for other paths or
  without the hook."""
  gcs = _beam_gcsio(path) if FileSystems.get_scheme(path) == 'gs' else None
  if gcs is None:
    return None
  from apache_beam.io.gcp import gcsio  # pylint: disable=import-outside-toplevel
  from google.cloud.storage.retry import DEFAULT_RETRY  # pylint: disable=import-outside-toplevel
  bucket, name = gcsio.parse_gcs_path(path)
  return (gcs.client.bucket(bucket).blob(name),
          getattr(gcs, '_storage_client_retry', DEFAULT_RETRY))


GLOB_CHARS = re.compile(r'[*?\[]')


def _literal(path):
  """`path` as a pattern that matches only itself, as `glob.escape` writes it."""
  return GLOB_CHARS.sub(lambda m: '[' + m.group() + ']', path)


def match(path, pattern=None):
  """FileMetadata of what `pattern` ('*', '**', 'frame_*.png') matches inside the folder `path`,
  or without a pattern of `path` itself. `path` is literal: its glob characters (`Take [2]`) are
  put in brackets, as `glob.escape` does, which Beam's pattern translation (local and gs://)
  also reads; Python's re flags such a '[[]' as a possible nested set (a FutureWarning) while
  reading it right, so that warning is kept quiet."""
  literal = _literal(path)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', FutureWarning)
    return FileSystems.match([join(literal, pattern) if pattern else literal])[0].metadata_list


def walk_local(root, follow_links=True, problems=None, claims=None):
  """`os.walk(root)` following symbolic links to folders (a clip linked in from another disk is
  a clip; Beam's local listing passes over them), each real folder once, so a link back up
  cannot loop. Folders reached without a link keep their own names: links are walked only after
  all of them, and one leading to a folder walked already is passed over, wherever the link
  sits (beside the folder, higher up, or sorting before it). The caller may prune `dirs` further,
  as with `os.walk`. `follow_links` False: links are passed over (what is to be deleted must lie
  inside `root`). `problems`, a list: gets (path, reason) of each folder that could not be
  read. `claims`, a predicate on folder paths: which folders keep their names over links to
  them (default: all; a caller that takes part of the tree passes what it takes, so that a
  folder it leaves out does not hide a link it takes)."""
  def unreadable(error):
    # (a missing root, or a file, is the caller's to say; one it may not read was said to be
    # an empty folder)
    if problems is not None and (error.filename != root or isinstance(error, PermissionError)):
      problems.append((error.filename, error.strerror or str(error)))
  seen = {os.path.realpath(root)}
  # The root, then the links met, in the order met: the claimed ones first, so that a link the
  # caller leaves out cannot take the folder from one it takes (`current` -> x before `reel_1`).
  claimed, unclaimed = collections.deque([root]), collections.deque()
  while claimed or unclaimed:
    start = (claimed or unclaimed).popleft()
    if start is not root:
      real = os.path.realpath(start)
      if real in seen:
        continue
      seen.add(real)
    for folder, dirs, names in os.walk(start, onerror=unreadable):  # (links not gone into)
      kept = []
      for d in dirs:
        path = os.path.join(folder, d)
        if os.path.islink(path):
          kept.append(d)  # claimed, or passed over, once every plain folder is
          continue
        real = os.path.realpath(path)
        if real not in seen:  # (seen: a plain folder inside a linked one walked already)
          if claims is None or claims(path):
            seen.add(real)
          kept.append(d)
      dirs[:] = sorted(kept)  # (which link names a folder linked in twice: the same each run)
      yield folder, dirs, names
      if follow_links:  # the links the caller left in `dirs`
        for link in (os.path.join(folder, d) for d in dirs):
          if os.path.islink(link):
            (claimed if claims is None or claims(link) else unclaimed).append(link)


def list_tree(root, follow_links=True, problems=None, claims=None):
  """FileMetadata of every file at any depth below the folder `root`; on local disk through
  linked folders too (`walk_local`, which also says what `claims` does), unless `follow_links`
  is False. `problems`, a list: gets (path, reason) of what could not be listed locally (an
  unreadable folder, a link whose target is missing: a disk not mounted?)."""
  if FileSystems.get_scheme(root) is not None:
    return match(root, '**')
  found = []
  for folder, _, names in walk_local(root, follow_links, problems, claims):
    refused = []  # names the folder lists but will not let be looked at (no search permission)
    for name in names:
      path = os.path.join(folder, name)
      try:
        stat = os.stat(path)
      except FileNotFoundError:  # a dangling link, or gone since the folder was read
        if problems is not None and os.path.islink(path):
          problems.append((path, f'a link to {os.readlink(path)}, which is not there'))
        continue
      except OSError as e:
        refused.append((name, e))
        continue
      found.append(FileMetadata(path, stat.st_size, stat.st_mtime))
    # A folder one may list but not enter (`chmod -R 644`) lost its frames unsaid: the clip was
    # left out with exit status 0, and --prune_removed_clips deleted its output.
    if refused and problems is not None:
      name, error = refused[0]
      problems.append((folder, f'{len(refused)} of its {len(names)} files cannot be looked at '
                               f'({error.strerror or type(error).__name__}), e.g. {name}'))
  return found


def is_bucket(path):
  """Whether `path` is a bucket's root (`gs://b`, `gs://b/`): a folder that names no object."""
  return FileSystems.get_scheme(path) == 'gs' and '/' not in path.split('://', 1)[1].strip('/')


def is_file(path):
  """Whether `path` names a file (on an object store an object); False for a bucket's root,
  where Beam's `exists` raises."""
  return not is_bucket(path) and FileSystems.exists(path)


def is_folder(path):
  """Whether `path` names a folder: on local disk a directory; on an object store a prefix
  with objects below it (on GCS one listing of at most one object)."""
  scheme = FileSystems.get_scheme(path)
  if scheme is None:
    return os.path.isdir(path)
  gcs = _beam_gcsio(path) if scheme == 'gs' else None
  if gcs is None:
    return bool(match(path, '*'))
  from apache_beam.io.gcp import gcsio  # pylint: disable=import-outside-toplevel
  bucket, prefix = gcsio.parse_gcs_path(path.rstrip('/') + '/', object_optional=True)
  return any(True for _ in gcs.client.list_blobs(bucket, prefix=prefix, max_results=1))


_NUMBERED = re.compile(r'\D*\d*')  # always matches: any cut of it is a prefix too


def updated_times(folder, names, like=None):
  """{name: last updated (s)} of those of the file `names` that exist in `folder`, and with
  `like` (a function of a file name) of every other file `like` takes for one of them. On an
  object store, one listing per hundred numbers (names sharing all but the last two digits of
  their first number: `pair_0001` for `pair_000123-...`): a request, where asking after each
  name is one or two; its other files come free (not in a folder whose name holds glob
  characters: asked name by name, those names alone come). On local disk a stat each: a local
  listing walks and stats the whole folder, so finding a few names in a large one would cost it
  all; with `like`, the others from the folder's names (`_local_kin`), stating only those."""
  wanted = set(names)
  kin = {like(name) for name in wanted} if like else set()
  if FileSystems.get_scheme(folder) is None:
    candidates = wanted
    if like:
      try:
        by_kin = _local_kin(folder, like)
      except FileNotFoundError:  # no folder: none of them
        return {}
      candidates = wanted.union(*(by_kin.get(k, ()) for k in kin))
    found = {}
    for name in candidates:
      try:
        found[name] = os.stat(os.path.join(folder, name)).st_mtime
      except FileNotFoundError:
        pass
    return found
  if GLOB_CHARS.search(folder):  # a listing would start at the first glob character: ask each
    listed = [m for name in sorted(wanted) for m in match(join(folder, name))]
  else:
    prefixes = {_NUMBERED.match(name).group()[:-2] for name in wanted}
    listed = [m for prefix in sorted(prefixes) for m in match(folder, prefix + '*')]
  return {posixpath.basename(m.path): m.last_updated_in_seconds for m in listed
          if posixpath.basename(m.path) in wanted or
          (like and like(posixpath.basename(m.path)) in kin)}


_LOCAL_KIN_FOLDERS = 8
_LOCAL_KIN_SECONDS = 2.0  # the longest a scan serves: some filesystems keep a folder's mtime
_local_kin_cache = collections.OrderedDict()  # (folder, like) -> _LocalKin
_local_kin_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class _LocalKin:
  stat: tuple  # the folder's (inode, mtime, size) before the scan
  scanned: float  # time.monotonic() before the scan
  names: frozenset
  by_kin: dict  # {like(name): (names, ...)}; never changed once made (threads share it)


def _local_kin(folder, like):
  """{like(name): (names, ...)} of the local `folder`'s files, for the last few folders. It is
  scanned again once the folder has changed (its inode, mtime or size) or after
  `_LOCAL_KIN_SECONDS`, and `like` is called only on names new since the last scan: a scan
  calling it on every name, for each unit of a long clip, made a re-run of a clip of P pairs
  cost ~P^2 / pairs_per_unit calls (20000 frames: 25 million, 32 s). Those asked after are
  stated: a file gone since the scan is not found."""
  stat = os.stat(folder)  # before the scan: a change during it scans again
  changed = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
  now, key = time.monotonic(), (folder, like)
  with _local_kin_lock:
    cached = _local_kin_cache.get(key)
    if cached is not None:
      _local_kin_cache.move_to_end(key)
      if cached.stat == changed and now - cached.scanned < _LOCAL_KIN_SECONDS:
        return cached.by_kin
  with os.scandir(folder) as entries:
    names = frozenset(entry.name for entry in entries)
  earlier = cached.names if cached is not None else frozenset()
  by_kin = dict(cached.by_kin) if cached is not None else {}
  for name in earlier - names:
    kin = like(name)
    by_kin[kin] = tuple(n for n in by_kin[kin] if n != name)
    if not by_kin[kin]:
      del by_kin[kin]
  for name in names - earlier:
    kin = like(name)
    by_kin[kin] = by_kin.get(kin, ()) + (name,)
  with _local_kin_lock:
    _local_kin_cache[key] = _LocalKin(changed, now, names, by_kin)
    _local_kin_cache.move_to_end(key)
    while len(_local_kin_cache) > _LOCAL_KIN_FOLDERS:
      _local_kin_cache.popitem(last=False)
  return by_kin


def write_atomic(path, data, tmp_root):
  """Writes `data` to `path` so that `path` is either absent, old, or complete.

  tmp_root: a folder for the temporary (unused on GCS), on the same filesystem as `path` or
  else passed over for one beside `path`.
  """
  scheme = FileSystems.get_scheme(path)
  if scheme == 'gs':
    _upload_to_gcs(path, data)
    return
  tmp = join(tmp_root, uuid.uuid4().hex + '.partial')
  if scheme is None:
    try:
      os.makedirs(tmp_root, exist_ok=True)
    except FileNotFoundError:  # another run's end removed the empty `_tmp` between the mkdirs
      os.makedirs(tmp_root, exist_ok=True)
    _make_folder(os.path.dirname(path) or '.')
    try:
      _write_through(tmp, path, data)
    except OSError as e:
      if e.errno != errno.EXDEV:
        raise
      # `path` on another filesystem (a clip's output folder linked to another disk: every
      # frame failed with 'Invalid cross-device link'): through a hidden temporary beside it,
      # which listings pass over.
      folder, name = os.path.split(path)
      _write_through(os.path.join(folder, f'.{name}.{uuid.uuid4().hex}.partial'), path, data)
    return
  with FileSystems.create(tmp) as f:
    f.write(data)
  FileSystems.rename([tmp], [path])


def _write_through(tmp, path, data):
  """`data` written to the local file `tmp`, on disk, then renamed to `path`; no temporary left
  behind where that fails (a name too long, a full disk, Ctrl-C)."""
  try:
    with open(tmp, 'wb') as f:
      f.write(data)
      # On disk before the rename: after a power cut a frame, or the marker vouching for it, is
      # old, absent or whole, never the zeroed or empty file a rename of unflushed data can
      # leave, which every later run took for done (~1 ms for 2 MB here).
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def _make_folder(folder):
  """`os.makedirs`, saying which file stands where a folder should be ('[Errno 17] File
  exists: out/a' named neither)."""
  try:
    os.makedirs(folder, exist_ok=True)
  except (FileExistsError, NotADirectoryError):
    here = folder
    while here and not os.path.isfile(here) and os.path.dirname(here) != here:
      here = os.path.dirname(here)
    if not os.path.isfile(here):
      raise
    where = 'not a folder' if here == folder else f'where the folder {folder} should be'
    raise NotADirectoryError(f'{here} is a file, {where}') from None


def _upload_to_gcs(path, data):
  """Writes a gs:// object in one request where it can: under 8 MiB google-cloud-storage sends
  the bytes and their CRC32C as one multipart upload, where Beam's writer always makes a
  resumable upload (a request to start it, then the bytes: two per frame and marker). Larger
  files still go resumable. Either way the object appears whole or not at all."""
  on_gcs = _gcs_blob(path)
  if not on_gcs:
    with FileSystems.create(path, mime_type='application/octet-stream') as f:
      f.write(data)
    return
  blob, retry = on_gcs
  # Retried whole: a frame or marker rewritten with the same bytes is the same file.
  blob.upload_from_string(data, content_type='application/octet-stream', retry=retry)


def delete_files(paths):
  """Deletes the files `paths`, by name; one already gone is no error: another unit of the
  clip, or a run overlapping this one on the same output (a nightly run started while the last
  still runs), may have deleted it since we listed it. Beam's delete reads each path as a
  pattern (`out [2]/x` deleted `out 2/x`), so local files go with `os.remove` and GCS objects
  by name (`_delete_from_gcs`)."""
  by_scheme = {}
  for path in paths:
    by_scheme.setdefault(FileSystems.get_scheme(path), []).append(path)
  for scheme, group in by_scheme.items():
    if scheme is None:
      for path in group:
        try:
          os.remove(path)
        except FileNotFoundError:
          pass
    elif scheme == 'gs':
      _delete_from_gcs(group)
    else:
      _delete_elsewhere(group)


def _delete_elsewhere(paths):
  """Through Beam. A filesystem that checks every path before deleting any fails the whole call
  where one has vanished in between: then each goes on its own."""
  try:
    FileSystems.delete(paths)
  except BeamIOError:
    for path in paths:
      try:
        FileSystems.delete([path])
      except BeamIOError:
        if FileSystems.exists(path):
          raise


def _delete_from_gcs(paths):
  """By name, a hundred objects per (batch) request. Beam's delete first matches each path as a
  pattern, two more requests per file, and so deleted `take 2/x` for `take [2]/x`: another
  clip's file. Without the hook, Beam's delete with the paths made literal."""
  gcs = _beam_gcsio(paths[0])
  if gcs is None:
    FileSystems.delete([_literal(p) for p in paths])
    return
  try:
    answers = gcs.delete_batch(paths)
  except AttributeError as e:
    if not _unanswered_batch(e):
      raise
    raise BeamIOError('Delete operation failed', {path: BATCH_UNANSWERED for path in paths}) \
        from None
  failed = {path: code for path, code in answers if code}  # 404: gone already
  if failed:
    raise BeamIOError('Delete operation failed', failed)


def delete_tree(path):
  """Deletes a folder and everything under it, if it exists."""
  if FileSystems.get_scheme(path) is None:
    shutil.rmtree(path, ignore_errors=True)
    return
  try:
    FileSystems.delete([path.rstrip('/') + '/'])
  except Exception:  # pylint: disable=broad-except
    pass  # Nothing there.
