"""Beam's SDK worker for a local multi_processing run, tied to the launcher that started it.

The launcher ends its workers when it is stopped (`launch._end_the_workers`); killed outright
(`kill -9`, the OOM killer) it cannot, and each worker ran on for seconds, writing frames for a
run that was gone, until Beam's harness found its control stream closed (a traceback each).
Started through this module, a worker is sent SIGTERM by the kernel when the launcher's thread
that waits on it dies (Linux's PR_SET_PDEATHSIG; elsewhere it runs as before).
"""

import ctypes
import ctypes.util
import os
import runpy
import signal
import sys
import threading
import time

LAUNCHER_PID = 'FILM_LAUNCHER_PID'  # (set by the launcher in the worker's command)
_PR_SET_PDEATHSIG = 1


def main():
  if sys.platform.startswith('linux'):
    libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    launcher = os.environ.get(LAUNCHER_PID, str(os.getppid()))
    if str(os.getppid()) != launcher:
      sys.exit(1)  # the launcher died before the tie was made: nothing to work for
    _quiet_once_orphaned(launcher)
  sys.stderr = _LauncherSays(sys.stderr)
  runpy.run_module('apache_beam.runners.worker.sdk_worker_main', run_name='__main__',
                   alter_sys=True)


def _quiet_once_orphaned(launcher):
  """The launcher killed, the kernel closes its sockets before it sends the death signal, and
  the worker's threads on them raised first: a gRPC traceback each on the terminal. A thread's
  exception waits a second, in which that signal ends the worker; said only if it did not."""
  previous = threading.excepthook

  def hook(args):
    time.sleep(1)
    if str(os.getppid()) == launcher:
      previous(args)
  threading.excepthook = hook


class _LauncherSays:
  """The worker's stderr, less the traceback Beam's harness prints of a bundle that failed for
  the storage (a full disk, cloud storage failing beyond its client's retries: ~50 lines each):
  the launcher's one line says it (`launch.storage_failure`), as for an in_memory run."""

  def __init__(self, stream):
    self._stream = stream
    self._dropped = False  # (print's line end after a dropped traceback goes too)

  def write(self, text):
    if not text:
      return 0
    dropped, self._dropped = self._dropped, False
    if dropped and text == '\n':
      return len(text)
    if text.startswith('Traceback (most recent call last)'):
      from pipeline import launch  # pylint: disable=import-outside-toplevel
      last = text.strip().rsplit('\n', 1)[-1]  # ('OSError: [Errno 28] No space left ...')
      if launch.storage_failure(text) or launch.storage_failure(last):
        self._dropped = True
        return len(text)
    return self._stream.write(text)

  def __getattr__(self, name):
    return getattr(self._stream, name)


if __name__ == '__main__':
  main()
