"""TensorFlow's load-time notices stay off the command lines; every other line gets through."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stderr_of(script: str) -> str:
  env = {**os.environ, 'PYTHONPATH': ROOT}
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)  # (set to 0, it shows TensorFlow's INFO lines, rightly)
  done = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True,
                        timeout=300, env=env)
  assert done.returncode == 0, done.stderr
  return done.stderr


def test_loading_the_model_prints_nothing_to_stderr():
  """Every command that ran the model began with four lines of absl and oneDNN notices."""
  assert _stderr_of('import film_net.model') == ''


def test_tensorflow_imported_by_other_code_after_film_net_loads_quietly_too():
  assert _stderr_of('import film_net\nimport tensorflow as tf\nprint(tf.constant(1).numpy())') == ''


def test_only_the_notices_are_taken_out_of_what_is_written_meanwhile():
  script = r"""
import os, sys
from film_net import tf_notices
with tf_notices.stderr_without(tf_notices.NOTICES):
  os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written '
              b'to STDERR\n')
  os.write(2, b'W0000 00:00:1.5 42 cpu_feature_guard.cc:1] a real warning\n')
  os.write(2, b'I0000 00:00:1796410079.216516    3904 port.cc:153] oneDNN custom operations '
              b'are on. You may see slightly different numerical results\n')
  sys.stderr.write('error: from Python, unflushed')
print('done', flush=True)
"""
  assert _stderr_of(script) == ('W0000 00:00:1.5 42 cpu_feature_guard.cc:1] a real warning\n'
                                'error: from Python, unflushed')
