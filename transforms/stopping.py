"""Whether this process is being stopped (Ctrl-C or SIGTERM on a local run).

The signal's KeyboardInterrupt is raised wherever the main thread is; inside a TensorFlow call
it can come out as another exception (a SystemError, "bad argument to internal function"),
which a pair's error handling would record as the pair's failure, and the run would go on to
its end. So the signal handler also sets this flag, and whatever turns an exception into a
failure (an error record, a failed pair's record, the command's exit status) asks it first:
the stop, not the pair, is what failed.
"""

import threading

_requested = threading.Event()
_finished = threading.Event()


def request() -> None:
  _requested.set()


def requested() -> bool:
  return _requested.is_set()


def raise_if_requested(error: BaseException | None = None) -> None:
  """Raises KeyboardInterrupt (from `error`, the exception it came out as) once a stop was
  requested; otherwise returns."""
  if _requested.is_set():
    raise KeyboardInterrupt from error


def finish() -> None:
  """The command has printed its outcome: a stop now would only change its exit status to an
  interruption's, with no line saying so."""
  _finished.set()


def finished() -> bool:
  return _finished.is_set()


def clear() -> None:
  _requested.clear()
  _finished.clear()
