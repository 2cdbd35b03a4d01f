"""A frame whose model call cannot fit in the machine's memory on CPU is refused before the model
runs: otherwise the operating system ends the process, with no record, at every re-run."""
import numpy as np
import pytest

from film_net import Interpolator, Options
from film_net import interpolator
from film_net import memory

GB = 2**30


@pytest.fixture(name='machine')
def fake_machine(tmp_path, monkeypatch):
  """`machine(meminfo, cgroup, files)` writes a Linux machine's memory files in a folder of its
  own: /proc/meminfo's text, /proc/self/cgroup's, and files {path: text} under the cgroup
  mount; returns what `machine_bytes` reads from them."""
  machines = []

  def make(meminfo, cgroup, files):
    folder = tmp_path / f'machine{len(machines)}'
    machines.append(folder)
    for path, text in {'meminfo': meminfo, 'cgroup': cgroup,
                       **{f'fs/{k}': v for k, v in files.items()}}.items():
      (folder / path).parent.mkdir(parents=True, exist_ok=True)
      (folder / path).write_text(text)
    monkeypatch.setattr(memory, 'MEMINFO', str(folder / 'meminfo'))
    monkeypatch.setattr(memory, 'OWN_CGROUPS', str(folder / 'cgroup'))
    monkeypatch.setattr(memory, 'CGROUP_ROOT', str(folder / 'fs'))
    memory.machine_bytes.cache_clear()
    try:
      return memory.machine_bytes()
    finally:
      memory.machine_bytes.cache_clear()

  return make


MEMINFO = 'MemTotal:       16777216 kB\nMemFree:         1000 kB\nSwapTotal:       2097152 kB\n'
NO_SWAP = 'MemTotal:       16777216 kB\nSwapTotal:             0 kB\n'
UNLIMITED = '9223372036854771712\n'  # cgroup v1's "no limit"


def test_a_machine_has_its_memory_and_swap_without_a_container_limit(machine):
  assert machine(MEMINFO, '0::/\n', {}) == 18 * GB
  assert machine(MEMINFO, '4:memory:/\n0::/\n', {'memory/memory.limit_in_bytes': UNLIMITED,
                                                 'memory/memory.memsw.limit_in_bytes': UNLIMITED}
                 ) == 18 * GB
  assert machine(MEMINFO, '0::/job\n', {'job/memory.max': 'max\n'}) == 18 * GB


def test_a_cgroup_v2_limit_binds_with_its_parents_memory_and_swap_limits(machine):
  v2 = {'user.slice/memory.max': str(8 * GB), 'user.slice/memory.swap.max': '0',
        'user.slice/job/memory.max': 'max', 'user.slice/job/memory.swap.max': 'max'}
  assert machine(MEMINFO, '0::/user.slice/job\n', v2) == 8 * GB
  v2 = {'user.slice/memory.max': 'max', 'user.slice/memory.swap.max': '0',
        'user.slice/job/memory.max': str(4 * GB), 'user.slice/job/memory.swap.max': 'max'}
  assert machine(MEMINFO, '0::/user.slice/job\n', v2) == 4 * GB
  v2['user.slice/memory.swap.max'] = str(GB)
  assert machine(MEMINFO, '0::/user.slice/job\n', v2) == 5 * GB
  # In a container that sees its own cgroup as the mount's root (the path listed is the host's).
  assert machine(MEMINFO, '0::/system.slice/docker-abc.scope\n',
                 {'memory.max': str(3 * GB), 'memory.swap.max': '0'}) == 3 * GB


def test_a_cgroup_v1_limit_binds_with_the_swap_it_may_use(machine):
  docker = {'memory/docker/abc/memory.limit_in_bytes': str(4 * GB)}
  assert machine(MEMINFO, '5:cpu:/docker/abc\n4:memory:/docker/abc\n', docker) == 6 * GB
  # Memory+swap limits: Docker's default (twice the memory), Kubernetes' (none), a low one.
  for memsw, expected in ((8 * GB, 4 * GB), (UNLIMITED, 4 * GB), (4 * GB, 4 * GB)):
    files = {**docker, 'memory/docker/abc/memory.memsw.limit_in_bytes': str(memsw)}
    assert machine(NO_SWAP, '4:memory:/docker/abc\n', files) == expected
  files = {**docker, 'memory/docker/abc/memory.memsw.limit_in_bytes': str(5 * GB)}
  assert machine(MEMINFO, '4:memory:/docker/abc\n', files) == 5 * GB
  assert machine(MEMINFO, '4:memory:/docker/abc\n', {**docker, 'memory/memory.limit_in_bytes':
                                                    str(GB)}) == 3 * GB
  # A parent that does not charge its children (memory.use_hierarchy 0) does not bind them.
  assert machine(MEMINFO, '4:memory:/docker/abc\n', {
      **docker, 'memory/docker/memory.limit_in_bytes': str(GB),
      'memory/docker/memory.use_hierarchy': '0'}) == 6 * GB
  # In a container that sees its own cgroup as the mount's root.
  assert machine(MEMINFO, '4:memory:/docker/abc\n',
                 {'memory/memory.limit_in_bytes': str(3 * GB)}) == 5 * GB


def test_each_cgroup_version_is_read_where_this_process_is_in_it(machine):
  # A hybrid host: memory in v1 at the root; a v1 cgroup the process is not in binds nothing.
  assert machine(MEMINFO, '4:memory:/\n0::/user.slice/x.scope\n',
                 {'memory/user.slice/memory.limit_in_bytes': str(GB)}) == 18 * GB


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


@pytest.fixture(name='on_cpu')
def computing_on_cpu(monkeypatch):
  """The model computes on CPU, where the check applies, on machines with a GPU too."""
  monkeypatch.setattr(interpolator, '_on_gpu', lambda: False)


def test_a_frame_beyond_the_machines_memory_is_refused_before_the_model_runs(monkeypatch,
                                                                              on_cpu):
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
  with pytest.raises(memory.FrameTooLarge, match=r'a batch of 2 128x128 frames is too large'):
    interp(*(np.stack([x, x]) for x in _frames(128, 128)))
  assert interp.model_calls == 1 and interp.feature_calls == 2
  tiled = Interpolator.random(Options.tiny(), align=64, tile=64, tile_overlap=16)
  assert tiled(*_frames(128, 130)).shape == (128, 130, 3)
  monkeypatch.setattr(memory, 'machine_bytes', lambda: memory.BASE_BYTES)
  with pytest.raises(memory.FrameTooLarge, match=r'its tiles of up to 64x64 \(tile=64\) would '
                     r'need .* the process; where there is more memory'):  # 64: the least tile
    tiled(*_frames(128, 130))
  larger_tiles = Interpolator.random(Options.tiny(), align=64, tile=96, tile_overlap=16)
  with pytest.raises(memory.FrameTooLarge, match=r'; run it as smaller tiles \(--tile\), or '):
    larger_tiles(*_frames(128, 130))
  # Tiles that fit do not make any frame fit: its whole frames (inputs, mid frame, blend
  # weights: 64 B a pixel) are held too, 1 GiB at 4096x4096.
  room = memory.frame_bytes(tiled.options, 64, 64, tiled.flip_average) + 2**21
  monkeypatch.setattr(memory, 'machine_bytes', lambda: room)
  tiled.check_size(128, 130)
  with pytest.raises(memory.FrameTooLarge, match=r'a 4096x4096 frame is too large .* its '
                     r'tiles of up to 64x64 \(tile=64\) would need about 1\.5 GB .* more '
                     r'than the 0\.5 GB'):
    tiled.check_size(4096, 4096)


def test_nothing_is_refused_where_the_model_computes_on_a_gpu(monkeypatch):
  monkeypatch.setattr(interpolator, '_on_gpu', lambda: True)
  monkeypatch.setattr(memory, 'machine_bytes', lambda: memory.BASE_BYTES)
  interp = Interpolator.random(Options.tiny(), align=64)
  assert interp(*_frames(64, 64)).shape == (64, 64, 3)
