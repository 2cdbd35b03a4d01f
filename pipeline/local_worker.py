"""Beam's SDK worker for a local multi_processing run, tied to the launcher that started it.

The launcher ends its workers when it is stopped (`run._end_the_workers`); killed outright
(`kill -9`, the OOM killer) it cannot, and each worker ran on to the end of its bundle, writing
frames for a run that was gone. Started through this module, a worker is sent SIGTERM by the
kernel when the launcher's thread that waits on it dies (Linux's PR_SET_PDEATHSIG; elsewhere it
runs as before).
"""

import ctypes
import ctypes.util
import os
import runpy
import signal
import sys

LAUNCHER_PID = 'FILM_LAUNCHER_PID'  # (set by the launcher in the worker's command)
_PR_SET_PDEATHSIG = 1


def main():
  if sys.platform.startswith('linux'):
    libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if str(os.getppid()) != os.environ.get(LAUNCHER_PID, str(os.getppid())):
      sys.exit(1)  # the launcher died before the tie was made: nothing to work for
  runpy.run_module('apache_beam.runners.worker.sdk_worker_main', run_name='__main__',
                   alter_sys=True)


if __name__ == '__main__':
  main()
