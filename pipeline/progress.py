"""A local run's progress line: its work's notes in a temporary folder (`new_progress_dir`,
`transforms.records.progress_note`), read and printed by a thread of the launcher
(`ProgressPrinter`), for `pipeline.run`'s pairs and `pipeline.evaluate`'s triplets alike."""

import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid


PROGRESS_PREFIX = 'film-progress-'


def new_progress_dir(make=True):
  """A fresh folder (in the system's temp folder) for a local run's progress notes, named after
  the launching process; first deletes those whose process is gone: a killed run cannot remove
  its own. (Folders of other names, from before, are left: nothing says whose they are.)
  `make=False`: its name alone, for a launcher that may yet stop before its run."""
  root = tempfile.gettempdir()
  try:
    entries = list(os.scandir(root))
  except OSError:
    entries = []
  for entry in entries:
    found = re.fullmatch(re.escape(PROGRESS_PREFIX) + r'(\d+)-.+', entry.name)
    if found and entry.is_dir(follow_symlinks=False) and not _alive(int(found.group(1))):
      shutil.rmtree(entry.path, ignore_errors=True)
  if make:
    return tempfile.mkdtemp(prefix=f'{PROGRESS_PREFIX}{os.getpid()}-')
  return os.path.join(root, f'{PROGRESS_PREFIX}{os.getpid()}-{uuid.uuid4().hex}')


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:
    return True  # another user's process (PermissionError): alive
  return True


class ProgressPrinter:
  """Prints 'pairs done/total, frames/s, ETA' every `interval` seconds from the notes: a
  'clip-*' note's 'pairs' to do, each other's 'pairs' done, of which 'processed' made here (not
  skipped), and 'frames' written. `noun`: what the work is ('triplets' has no frames)."""

  def __init__(self, progress_dir, interval, noun='pairs'):
    self._dir = progress_dir
    self._interval = interval
    self._noun = noun
    self._started = time.time()
    self._shown = None  # the counts of the last line printed
    self._shown_at = 0.0
    self._first_made = None  # (time, pairs made) when this run's made pairs were first seen
    # {name: (stat key, note)}: a note is read once, and again only once replaced (a retried
    # bundle's), so a tick costs a listing, not a read of every clip's and unit's note.
    self._notes = {}
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True, name='progress')
    self._thread.start()

  def _read(self):
    total = done = processed = frames = 0
    try:
      with os.scandir(self._dir) as entries:
        listed = [entry for entry in entries if entry.name.endswith('.json')]
    except OSError:  # removed under us (a cleaner, a launcher in another pid namespace)
      listed = []
    notes = {entry.name: note for entry in listed if (note := self._note(entry))}
    self._notes = notes
    for name, (_, note) in notes.items():
      if name.startswith('clip-'):
        total += note['pairs']
      else:
        done += note['pairs']
        processed += note['processed']
        frames += note['frames']
    return total, done, processed, frames

  def _note(self, entry):
    """(stat key, note) of a listed note, read where it is new or replaced, else as read
    before; None where it cannot be read (replaced or removed since listed: read next tick)."""
    try:
      stat = entry.stat()
      key = (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
      known = self._notes.get(entry.name)
      if known and known[0] == key:
        return known
      with open(entry.path) as f:
        return key, json.load(f)
    except (OSError, ValueError):
      return None

  def line(self, counts=None):
    """The progress line. The ETA comes from the pairs this run made: pairs an earlier run
    finished are skipped at once and say nothing of how long the rest will take; and once
    more are made, from their rate since the first (the model's load, first trace and compile
    went before it, once per process)."""
    total, done, processed, frames = counts or self._read()
    now = time.time()
    elapsed = now - self._started
    rate = frames / elapsed if elapsed > 0 else 0.0
    if processed and self._first_made is None:
      self._first_made = now, processed
    eta = '?'
    if processed and total >= done:
      since, made_then = self._first_made
      per_pair = ((now - since) / (processed - made_then) if processed > made_then else
                  elapsed / processed)
      eta = f'{(total - done) * per_pair:.0f}s'
    written = f'{frames} frames written, {rate:.2f} frames/s, ' if self._noun == 'pairs' else ''
    return (f'progress: {done}/{total or "?"} {self._noun}, {written}elapsed {elapsed:.0f}s, '
            f'ETA {eta}')

  def _loop(self):
    """A line each tick where the counts moved, else once a minute (a night's log keeps what
    changed, and still shows the run is alive)."""
    while not self._stop.wait(self._interval):
      counts = self._read()
      if counts != self._shown or time.time() - self._shown_at >= max(60, self._interval):
        self._print(counts)

  def _print(self, counts):
    self._shown, self._shown_at = counts, time.time()
    print(self.line(counts), flush=True)

  def stop(self):
    """The last line, unless the last tick showed the same counts (a run ending just after
    it printed the same line twice)."""
    self._stop.set()
    self._thread.join()
    counts = self._read()
    if counts != self._shown:
      self._print(counts)
    shutil.rmtree(self._dir, ignore_errors=True)
