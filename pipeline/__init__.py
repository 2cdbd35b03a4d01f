"""The FILM interpolation job: `python -m pipeline.run --input ... --output ...`, installed as
`film-interpolate` (`film_interpolate`)."""
import signal


def film_interpolate():
  """The installed command (setup.py's console script): pipeline.run's main() and its exit
  (`flags.exit_with`), as `python -m pipeline.run` has them. pip's wrapper imports its
  function, not pipeline.run as `__main__`, so Ctrl-C is left to its default here while
  pipeline.run's imports load, as `python -m pipeline.run` does (see its first lines)."""
  if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
  from film_net import flags  # pylint: disable=import-outside-toplevel
  from pipeline import run  # pylint: disable=import-outside-toplevel
  flags.exit_with(run.main())
