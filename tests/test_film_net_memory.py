"""A frame whose model call cannot fit in the machine's memory on CPU is refused before the model
runs: otherwise the operating system ends the process, with no record, at every re-run."""
import numpy as np
import pytest

from film_net import Interpolator, Options
from film_net import memory

GB = 2**30


@pytest.fixture(name='machine')
def fake_machine(tmp_path, monkeypatch):
  """Writes a Linux machine's memory files under tmp_path: `machine(meminfo, cgroup, files)`
  with /proc/meminfo's text, /proc/self/cgroup's, and cgroup files {path: text}; returns what
  `machine_bytes` reads from them."""

  def make(meminfo, cgroup, files):
    (tmp_path / 'meminfo').write_text(meminfo)
    (tmp_path / 'cgroup').write_text(cgroup)
    for path, text in files.items():
      (tmp_path / 'fs' / path).parent.mkdir(parents=True, exist_ok=True)
      (tmp_path / 'fs' / path).write_text(text)
    monkeypatch.setattr(memory, 'MEMINFO', str(tmp_path / 'meminfo'))
    monkeypatch.setattr(memory, 'OWN_CGROUPS', str(tmp_path / 'cgroup'))
    monkeypatch.setattr(memory, 'CGROUP_ROOT', str(tmp_path / 'fs'))
    memory.machine_bytes.cache_clear()
    try:
      return memory.machine_bytes()
    finally:
      memory.machine_bytes.cache_clear()

  return make


MEMINFO = 'MemTotal:       16777216 kB\nMemFree:         1000 kB\nSwapTotal:       2097152 kB\n'


def test_a_machine_has_its_memory_and_swap_without_a_container_limit(machine):
  assert machine(MEMINFO, '0::/\n', {}) == 18 * GB
  unlimited = {'memory/memory.limit_in_bytes': '9223372036854771712\n'}  # cgroup v1's "none"
  assert machine(MEMINFO, '4:memory:/\n0::/\n', unlimited) == 18 * GB
  assert machine(MEMINFO, '0::/job\n', {'job/memory.max': 'max\n'}) == 18 * GB


def test_a_container_limit_below_the_machine_is_what_the_process_has(machine):
  # cgroup v2: a parent's limit binds its children; its swap limit is its own.
  v2 = {'user.slice/memory.max': str(8 * GB), 'user.slice/memory.swap.max': '0',
        'user.slice/job/memory.max': 'max', 'user.slice/job/memory.swap.max': 'max'}
  assert machine(MEMINFO, '0::/user.slice/job\n', v2) == 8 * GB
  # cgroup v1 (Docker's): the limit plus the machine's swap, or its memory+swap limit.
  v1 = {'memory/docker/abc/memory.limit_in_bytes': str(4 * GB)}
  assert machine(MEMINFO, '5:cpu:/docker/abc\n4:memory:/docker/abc\n', v1) == 6 * GB
  v1['memory/docker/abc/memory.memsw.limit_in_bytes'] = str(5 * GB)
  assert machine(MEMINFO, '4:memory:/docker/abc\n', v1) == 5 * GB
  # Inside a container that sees its own cgroup as the mount's root.
  assert machine(MEMINFO, '4:memory:/docker/abc\n',
                 {'memory/memory.limit_in_bytes': str(3 * GB)}) == 5 * GB


def test_no_meminfo_means_unknown_and_nothing_is_refused(machine, monkeypatch):
  assert machine('', '0::/\n', {}) is None
  monkeypatch.setattr(memory, 'machine_bytes', lambda: None)
  Interpolator.random(Options.tiny()).check_size(100_000, 100_000)


def test_the_estimate_grows_with_the_frame_the_widths_and_flip_averaging():
  tiny, compact, released = Options.tiny(), Options.compact(), Options.released()
  sizes = [memory.frame_bytes(o, 1088, 1920, False) for o in (tiny, compact, released)]
  assert sizes == sorted(sizes) and len(set(sizes)) == 3
  assert memory.frame_bytes(compact, 2176, 3840, False) > 3 * sizes[1] - 2 * memory.BASE_BYTES
  assert memory.frame_bytes(compact, 1088, 1920, True) > sizes[1]
  # What the built-in model measured (bench/bench_memory.py): 4.2 GB at 1080p, flip-averaged.
  assert 3.5 * GB < memory.frame_bytes(compact, 1088, 1920, True) < 4.5 * GB


def _frames(height, width):
  rng = np.random.default_rng(0)
  return rng.random((height, width, 3), np.float32), rng.random((height, width, 3), np.float32)


def test_a_frame_beyond_the_machines_memory_is_refused_before_the_model_runs(monkeypatch):
  interp = Interpolator.random(Options.tiny(), align=64)
  room = memory.frame_bytes(interp.options, 128, 128, False)
  monkeypatch.setattr(memory, 'machine_bytes', lambda: room)
  assert interp(*_frames(128, 128)).shape == (128, 128, 3)
  with pytest.raises(memory.FrameTooLarge, match=r'a 130x128 frame is too large for this '
                     r'machine: it would need about [\d.]+ GB .* more than the [\d.]+ GB it has '
                     r'in all.*run it as tiles \(--tile\)'):
    interp(*_frames(128, 130))  # padded to 192 wide
  with pytest.raises(ValueError):  # as frames too small for the model are
    list(interp.iter_recursive(_frames(128, 130), 2))
  assert interp.model_calls == 1 and interp.feature_calls == 2
  tiled = Interpolator.random(Options.tiny(), align=64, tile=64, tile_overlap=16)
  assert tiled(*_frames(128, 130)).shape == (128, 130, 3)
  monkeypatch.setattr(memory, 'machine_bytes', lambda: memory.BASE_BYTES)
  with pytest.raises(memory.FrameTooLarge, match=r'its tiles of up to 64x64 \(tile=64\) would '
                     r'need .* run it as smaller tiles'):
    tiled(*_frames(128, 130))
