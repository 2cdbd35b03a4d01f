"""Training triplets for film_net: rendered scenes with an exactly known middle frame.

No interpolation training set can be downloaded here, so the default model learns from scenes this
module renders. A scene is a stack of textured layers: an opaque background and a few foreground
layers with soft-edged masks of random shapes. Every layer moves on its own (translation, rotation
and log-scale, each linear in t; optionally also bending, see `Layer.deform`), a camera pans and
zooms over all of them, and a global gain changes the brightness a little. Frames are rendered at t = 0, 0.5 and 1 from the same scene by
inverse mapping with bilinear sampling, so the middle frame is exactly the scene at t = 0.5.

Textures are natural photographs that ship inside scikit-image (`skimage/data/*.png`, no download)
plus procedural ones (noise octaves, stripes, checkers, gradients). Middlebury's stereo images
that also ship there are left out: Middlebury is this project's evaluation set.

Conventions: images are float32 (H, W, 3) RGB in [0, 1]; pixel centres sit at integer (x, y)
coordinates; transforms are 3x3 similarity matrices acting on column vectors (x, y, 1).
"""

import signal
if __name__ == '__main__' and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
  signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while the imports below load ends the
  # command at once, not in a traceback of them; flags.start_command gives it back

import dataclasses
import functools
import logging
import os
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np

from film_net import flags
from film_net import weights as weights_lib

_log = logging.getLogger(__name__)

# Photographs and textures in scikit-image's wheel, all usable without a network.
NATURAL_IMAGES = ('astronaut.png', 'coffee.png', 'chelsea.png', 'rocket.jpg', 'ihc.png',
                  'camera.png', 'brick.png', 'grass.png', 'gravel.png', 'coins.png', 'moon.png',
                  'page.png', 'color.png', 'retina.jpg')


# --------------------------------------------------------------------------------------------
# Scene description.

@dataclasses.dataclass
class Layer:
  """A textured layer; its pose at time t is `center + velocity * (t - 0.5)` etc.

  `texture` is an (h, w, 3) array sampled at layer coordinates + `texture_offset`. `mask` is None
  for an opaque layer, else (a, b, power, harmonics, softness): a superellipse of half-axes a, b
  whose radius is modulated by `sum(amp * cos(k * angle + phase))` over harmonics rows
  (k, amp, phase), with an edge `softness` pixels (layer units) wide.

  `deform` makes the motion non-rigid (a body bending, cloth, a face): None, or rows
  (kx, ky, phase, ax, ay) of a smooth field D(p) = sum((ax, ay) * sin(kx x + ky y + phase)) over
  frame pixels p; at time t, p shows what the rigid layer shows at p + (t - 0.5) D(p). At
  t = 0.5 the layer is exactly its rigid self; between t = 0 and 1 each point moves by up to
  max |D| beyond the rigid motion, smoothly varying across the layer.
  """
  texture: np.ndarray
  texture_offset: Tuple[float, float]
  center: Tuple[float, float]
  velocity: Tuple[float, float] = (0.0, 0.0)
  angle: float = 0.0
  angular_velocity: float = 0.0
  log_scale: float = 0.0
  log_scale_velocity: float = 0.0
  mask: Optional[tuple] = None
  gain: Tuple[float, float, float] = (1.0, 1.0, 1.0)
  tint: Optional[Tuple[np.ndarray, np.ndarray]] = None
  deform: Optional[np.ndarray] = None

  def deform_bound(self) -> float:
    """An upper bound of |D(p)| in frame pixels (0 for a rigid layer)."""
    if self.deform is None:
      return 0.0
    return float(np.hypot(self.deform[:, 3], self.deform[:, 4]).sum())

  def deformation(self, px: np.ndarray, py: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """D at frame pixels (px (1, w) and py (h, 1) float32): two (h, w) float32 arrays."""
    dx = np.zeros(np.broadcast_shapes(px.shape, py.shape), np.float32)
    dy = np.zeros_like(dx)
    for kx, ky, phase, ax, ay in self.deform:
      wave = np.sin(np.float32(kx) * px + (np.float32(ky) * py + np.float32(phase)))
      dx += np.float32(ax) * wave
      dy += np.float32(ay) * wave
    return dx, dy

  def transform(self, t: float) -> np.ndarray:
    """Layer coordinates to scene coordinates at time t."""
    dt = t - 0.5
    return _similarity(np.exp(self.log_scale + self.log_scale_velocity * dt),
                       self.angle + self.angular_velocity * dt,
                       self.center[0] + self.velocity[0] * dt,
                       self.center[1] + self.velocity[1] * dt)

  def radius(self) -> float:
    """Radius (layer units) outside which the mask is zero; inf for an opaque layer.

    `_mask_alpha` is nonzero where rho < 1 + softness / (2 min(a, b)), rho the superellipse norm
    over the modulation: a power-p superellipse reaches 2^(1/2 - 1/p) max(a, b) along its
    diagonals (1.19x at p = 4, 1.30x at 8), the modulation at most 1 + sum |amp|. (Before
    2026-12-01 this was max(a, b) (1 + sum |amp|) + softness, which cut the corners of turned
    square-ish layers, differently in each frame.)"""
    if self.mask is None:
      return np.inf
    a, b, power, harmonics, softness = self.mask
    reach = max(a, b) * max(1.0, 2.0 ** (0.5 - 1.0 / power))
    return reach * (1.0 + np.abs(harmonics[:, 1]).sum()) * (1.0 + 0.5 * softness / min(a, b))


@dataclasses.dataclass
class Scene:
  """Layers back to front, plus camera motion about the frame centre and a brightness ramp.

  Scene coordinates equal frame coordinates at t = 0.5, where the camera is the identity.
  """
  height: int
  width: int
  layers: List[Layer]
  pan: Tuple[float, float] = (0.0, 0.0)
  log_zoom: float = 0.0
  roll: float = 0.0
  brightness: float = 0.0

  def camera(self, t: float) -> np.ndarray:
    """Scene coordinates to frame coordinates at time t."""
    dt = t - 0.5
    cx, cy = (self.width - 1) / 2.0, (self.height - 1) / 2.0
    move = _similarity(np.exp(self.log_zoom * dt), self.roll * dt,
                       cx + self.pan[0] * dt, cy + self.pan[1] * dt)
    return move @ _similarity(1.0, 0.0, -cx, -cy)


def _similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
  c, s = scale * np.cos(angle), scale * np.sin(angle)
  return np.array([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]])


def _invert(m: np.ndarray) -> np.ndarray:
  """Exact for pure translations (no LU rounding), so even shifts stay integer."""
  a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
  det = a * d - b * c
  inv = np.array([[d, -b], [-c, a]]) / det
  out = np.eye(3)
  out[:2, :2] = inv
  out[:2, 2] = -inv @ m[:2, 2]
  return out


def layer_to_frame(scene: Scene, layer: Layer, t: float) -> np.ndarray:
  """Layer coordinates to frame pixel coordinates at time t."""
  return scene.camera(t) @ layer.transform(t)


def max_motion(scene: Scene) -> float:
  """Largest displacement, in pixels, of any point visible in frame 0 between t = 0 and t = 1.

  For each layer the displacement field p -> M1 M0^-1 p - p is affine, so its norm is convex and
  reaches its maximum over the frame rectangle at a corner. A deforming layer adds its
  `deform_bound` (its points move by at most that much more, to first order).
  """
  h, w = scene.height, scene.width
  corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
  worst = 0.0
  for layer in scene.layers:
    move = layer_to_frame(scene, layer, 1.0) @ _invert(layer_to_frame(scene, layer, 0.0))
    rigid = float(np.linalg.norm((move @ corners - corners)[:2], axis=0).max())
    worst = max(worst, rigid + layer.deform_bound())
  return worst


# --------------------------------------------------------------------------------------------
# Rendering.

def render(scene: Scene, t: float) -> np.ndarray:
  """The scene at time t as an (H, W, 3) float32 image in [0, 1]."""
  return render_times(scene, (t,))[0]


def render_times(scene: Scene, times: Sequence[float]) -> np.ndarray:
  """The scene at each of `times`, (T, H, W, 3) float32 in [0, 1], identical to `render` per t.

  The times are rendered together, each layer sampled once over the union of its footprints,
  which saves per-call overhead that dominates at training sizes.
  """
  h, w = scene.height, scene.width
  images = np.zeros((len(times), h, w, 3), np.float32)
  cameras = [scene.camera(t) for t in times]
  for layer in scene.layers:
    to_frames = [camera @ layer.transform(t) for camera, t in zip(cameras, times)]
    reach = layer.radius()
    if layer.deform is not None:  # frame pixels up to max|t - 0.5| max|D| away show the layer
      scale = np.sqrt(abs(np.linalg.det(to_frames[0][:2, :2])))
      reach += max(abs(t - 0.5) for t in times) * layer.deform_bound() / scale
    boxes = np.array([_footprint(m, reach, h, w) for m in to_frames])
    y0, x0 = boxes[:, 0].min(), boxes[:, 2].min()
    y1, x1 = boxes[:, 1].max(), boxes[:, 3].max()
    if y0 >= y1 or x0 >= x1:
      continue
    inverse = np.stack([_invert(m) for m in to_frames]).astype(np.float32)[:, :2, :, None, None]
    px = np.arange(x0, x1, dtype=np.float32)[None, :]
    py = np.arange(y0, y1, dtype=np.float32)[:, None]
    # Layer coordinates: the small (T, 1, w) and (T, h, 1) terms are summed first, so one
    # addition runs over the whole (T, h, w) box.
    ux = (inverse[:, 0, 0] * px + inverse[:, 0, 2]) + inverse[:, 0, 1] * py
    uy = (inverse[:, 1, 0] * px + inverse[:, 1, 2]) + inverse[:, 1, 1] * py
    if layer.deform is not None:  # sample the rigid layer at p + (t - 0.5) D(p)
      dx, dy = layer.deformation(px, py)
      dt = (np.asarray(times, np.float32) - np.float32(0.5))[:, None, None]
      ux += (inverse[:, 0, 0] * dt) * dx + (inverse[:, 0, 1] * dt) * dy
      uy += (inverse[:, 1, 0] * dt) * dx + (inverse[:, 1, 1] * dt) * dy
    colour = _bilinear(layer.texture, ux + np.float32(layer.texture_offset[0]),
                       uy + np.float32(layer.texture_offset[1]))
    if layer.tint is not None:
      dark, light = layer.tint
      colour = dark + (light - dark) * colour[..., :1]
    if layer.gain != (1.0, 1.0, 1.0):
      colour *= np.asarray(layer.gain, np.float32)
    region = images[:, y0:y1, x0:x1]
    if layer.mask is None:
      region[...] = colour
    else:
      alpha = _mask_alpha(layer.mask, ux, uy)[..., None]
      region *= 1 - alpha  # this form is exact where alpha is 0 or 1
      colour *= alpha
      region += colour
  if scene.brightness:
    gains = np.exp(scene.brightness * (np.asarray(times, np.float64) - 0.5))
    images *= gains.astype(np.float32)[:, None, None, None]
  return np.clip(images, 0.0, 1.0, out=images)


def _footprint(to_frame: np.ndarray, radius: float, h: int, w: int):
  """Frame rows/columns a layer of this radius can touch: (y0, y1, x0, x1), end exclusive."""
  if not np.isfinite(radius):
    return 0, h, 0, w
  scale = np.sqrt(abs(to_frame[0, 0] * to_frame[1, 1] - to_frame[0, 1] * to_frame[1, 0]))
  cx, cy = to_frame[0, 2], to_frame[1, 2]
  r = radius * scale + 1.0
  return (max(0, int(np.floor(cy - r))), min(h, int(np.ceil(cy + r)) + 1),
          max(0, int(np.floor(cx - r))), min(w, int(np.ceil(cx + r)) + 1))


def _bilinear(texture: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Samples (h, w, c) `texture` at float coordinates, mirroring outside it."""
  th, tw, channels = texture.shape
  if x.min() < 0 or x.max() > tw - 1:
    x = _mirror(x, tw)
  if y.min() < 0 or y.max() > th - 1:
    y = _mirror(y, th)
  fx, fy = np.floor(x), np.floor(y)
  wx, wy = (x - fx)[..., None], (y - fy)[..., None]
  ix, iy = fx.astype(np.intp), fy.astype(np.intp)
  ix1 = np.minimum(ix + 1, tw - 1)
  iy1 = np.minimum(iy + 1, th - 1) * tw
  iy *= tw
  flat = texture.reshape(-1, channels)
  top, top_right = flat.take(iy + ix, axis=0), flat.take(iy + ix1, axis=0)
  bottom, bottom_right = flat.take(iy1 + ix, axis=0), flat.take(iy1 + ix1, axis=0)
  top += (top_right - top) * wx
  bottom += (bottom_right - bottom) * wx
  top += (bottom - top) * wy
  return top


def _mirror(x: np.ndarray, n: int) -> np.ndarray:
  """Reflects coordinates into [0, n - 1] (a triangle wave; integers stay integers).

  The period is taken off with floor, not np.mod (7x slower on float32); where rounding puts a
  value a hair outside [0, n - 1], the clip puts it back.
  """
  if n == 1:
    return np.zeros_like(x)
  period = 2 * (n - 1)
  y = x - period * np.floor(x * np.float32(1.0 / period))
  y -= n - 1
  np.abs(y, out=y)
  return np.clip((n - 1) - y, 0, n - 1, out=y)


def _mask_alpha(mask: tuple, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
  """Soft alpha in [0, 1] of a modulated superellipse, at layer coordinates.

  Written without arctan2 and fractional powers, which cost more than the rest of a frame: the
  power is 2, 4 or 8 (repeated squaring, then square roots) and cos(k angle) comes from the
  angle-addition recurrence on (x, y) / r.
  """
  a, b, power, harmonics, softness = mask
  rx2, ry2 = (ux / a) ** 2, (uy / b) ** 2
  sum_pow, roots = rx2 + ry2, 1
  while 2 ** roots < power:
    rx2, ry2, roots = rx2 * rx2, ry2 * ry2, roots + 1
    sum_pow = rx2 + ry2
  rho = sum_pow
  for _ in range(roots):
    rho = np.sqrt(rho)
  if len(harmonics):
    r = np.maximum(np.sqrt(ux * ux + uy * uy), 1e-6)
    c1, s1 = ux / r, uy / r
    ck, sk, k = c1, s1, 1
    modulation = np.ones_like(rho)
    for order, amp, phase in sorted(harmonics.tolist()):
      while k < order:
        ck, sk, k = ck * c1 - sk * s1, sk * c1 + ck * s1, k + 1
      modulation += amp * (ck * np.cos(phase) - sk * np.sin(phase))
    rho = rho / modulation
  edge = (1.0 - rho) * (min(a, b) / softness) + 0.5
  return np.clip(edge, 0.0, 1.0).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# Textures.

@functools.lru_cache(maxsize=None)
def natural_images() -> Tuple[Tuple[np.ndarray, bool], ...]:
  """(float32 image, is_gray) for scikit-image's photographs, each also at half size.

  Gray photographs keep one channel: they are sampled once and coloured by `Layer.tint`.

  Empty (procedural textures only) where scikit-image is not installed, with a warning: the
  built-in model was trained on both.
  """
  try:
    import skimage.data
  except ImportError:
    _log.warning('scikit-image is not installed: training scenes get procedural textures '
                 'only, not its photographs (pip install .[train])')
    return ()
  from PIL import Image
  folder = os.path.dirname(skimage.data.__file__)
  images = []
  for name in NATURAL_IMAGES:
    path = os.path.join(folder, name)
    if not os.path.exists(path):
      continue
    with Image.open(path) as pil:
      gray = pil.mode in ('L', 'LA', 'I', 'I;16')
      full = pil.convert('RGB')
      half = full.resize((full.size[0] // 2, full.size[1] // 2), Image.Resampling.BOX)
      for version in (full, half):
        array = np.asarray(version, np.float32) / 255.0
        images.append((array[..., :1] if gray else array, gray))
  return tuple(images)


def _random_texture(rng: np.random.Generator, regular_share: float = 0.0):
  """(texture, tint): a natural image (60%) or a procedural pattern; see `Layer.tint`.

  Procedural patterns and gray photographs are gray and get a random two-colour tint (gray
  photographs 70% of the time), so a small fixed bank gives endless colourings. With
  `regular_share` > 0, that share of textures is drawn from `regular_patterns()` first (no random
  draw is made when it is 0, so scenes of earlier runs stay the same).
  """
  bank = natural_images()
  if regular_share > 0 and rng.random() < regular_share:
    patterns = regular_patterns()
    image = patterns[rng.integers(len(patterns))]
  elif bank and rng.random() < 0.6:
    image, gray = bank[rng.integers(len(bank))]
    if not gray:
      return image, None
    if rng.random() < 0.3:
      return image, (np.zeros(3, np.float32), np.ones(3, np.float32))
  else:
    patterns = procedural_patterns()
    image = patterns[rng.integers(len(patterns))]
  dark = rng.random(3).astype(np.float32) * 0.6
  light = dark + (1 - dark) * rng.uniform(0.3, 1.0, 3).astype(np.float32)
  return image, (light, dark) if rng.random() < 0.5 else (dark, light)


@functools.lru_cache(maxsize=None)
def procedural_patterns(count: int = 32, size: int = 256) -> Tuple[np.ndarray, ...]:
  """A fixed bank of one-channel gray patterns (noise octaves, stripes, checkers, gradients), made once."""
  rng = np.random.default_rng(20240401)
  y, x = np.mgrid[0:size, 0:size].astype(np.float32)
  patterns = []
  for i in range(count):
    kind = i % 4
    if kind == 0:
      value = _noise(rng, size)
    elif kind == 1:
      period = rng.uniform(4.0, size / 4.0)
      direction = rng.uniform(0, np.pi)
      phase = (x * np.cos(direction) + y * np.sin(direction)) * (2 * np.pi / period)
      value = 0.5 + 0.5 * np.tanh(rng.uniform(0.5, 4.0) * np.sin(phase))
    elif kind == 2:
      period = rng.uniform(6.0, size / 4.0)
      wave = np.sin(x * np.pi / period) * np.sin(y * np.pi / period)
      value = 0.5 + 0.5 * np.tanh(rng.uniform(1.0, 6.0) * wave)
    else:
      direction = rng.uniform(0, 2 * np.pi)
      value = (x * np.cos(direction) + y * np.sin(direction)) / (size * np.sqrt(2)) + 0.5
    value = value * (0.7 + 0.3 * _noise(rng, size, octaves=2))  # shading variation
    patterns.append(np.clip(value, 0, 1)[..., None].astype(np.float32))
  return tuple(patterns)


@functools.lru_cache(maxsize=None)
def regular_patterns(count: int = 24, size: int = 256) -> Tuple[np.ndarray, ...]:
  """Exactly periodic man-made patterns: fine stripes (blinds, cladding), window grids, bricks.

  One pixel of such a pattern matches many shifts, so only the edges of the region tell the true
  motion: the case where a flow network trained on irregular textures makes wavy, aliased flow
  (Middlebury's Urban scenes). Periods are 3 to 64 px, mostly axis-aligned, with no shading noise;
  drawn at 4x and box-filtered, so the stripes are anti-aliased, not jagged.
  """
  rng = np.random.default_rng(20261125)
  over = 4
  y, x = (np.mgrid[0:size * over, 0:size * over].astype(np.float32) + 0.5) / over
  patterns = []
  for i in range(count):
    kind = i % 3
    angle = 0.0 if rng.random() < 0.7 else rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    if kind == 0:  # stripes: blinds, cladding, railings
      period = rng.uniform(3.0, 16.0)
      value = (np.mod(u / period, 1.0) < rng.uniform(0.25, 0.75)).astype(np.float32)
    elif kind == 1:  # a grid of windows in a wall, each window a little brighter or darker
      px, py = rng.uniform(8.0, 40.0, 2)
      fx, fy = rng.uniform(0.4, 0.85, 2)
      cell = np.floor(u / px) * 7919 + np.floor(v / py)
      shade = 0.5 + 0.5 * np.sin(cell * 12.9898) ** 2 * rng.uniform(0.0, 1.0)
      inside = (np.mod(u / px, 1.0) < fx) & (np.mod(v / py, 1.0) < fy)
      value = np.where(inside, shade, rng.uniform(0.0, 0.3)).astype(np.float32)
    else:  # running-bond bricks with thin mortar
      height = rng.uniform(4.0, 16.0)
      length = height * rng.uniform(2.0, 4.0)
      row = np.floor(v / height)
      shifted = u / length + 0.5 * np.mod(row, 2)
      mortar = rng.uniform(0.08, 0.2)
      inside = (np.mod(v / height, 1.0) > mortar) & (np.mod(shifted, 1.0) > mortar * height / length)
      value = np.where(inside, 0.8, 0.2).astype(np.float32)
    value = value.reshape(size, over, size, over).mean(axis=(1, 3))
    patterns.append(np.clip(value, 0, 1)[..., None].astype(np.float32))
  return tuple(patterns)


def _noise(rng: np.random.Generator, size: int, octaves: int = 4) -> np.ndarray:
  """Value noise in [0, 1]: random grids upsampled bilinearly and summed over octaves."""
  total = np.zeros((size, size), np.float32)
  weight = 0.0
  cells = rng.uniform(3, 6)
  for octave in range(octaves):
    n = int(cells * 2 ** octave) + 2
    lo, frac = _upsample_taps(n, size)
    grid = rng.random((n, n)).astype(np.float32)
    rows = grid[lo] * (1 - frac[:, None]) + grid[lo + 1] * frac[:, None]
    amp = 0.5 ** octave
    total += amp * (rows[:, lo] * (1 - frac) + rows[:, lo + 1] * frac)
    weight += amp
  total /= weight
  lo, hi = total.min(), total.max()
  return (total - lo) / max(hi - lo, 1e-6)


@functools.lru_cache(maxsize=64)
def _upsample_taps(n: int, size: int):
  """Left grid index and weight of each of `size` samples spread over n grid points."""
  pos = np.linspace(0, n - 1, size)
  lo = np.minimum(np.floor(pos).astype(int), n - 2)
  return lo, (pos - lo).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Random scenes.

def random_scene(rng: np.random.Generator, height: int, width: int,
                 max_layers: int = 4, min_motion: float = 2.0,
                 max_motion_px: Optional[float] = None, small_objects: int = 0,
                 regular_share: float = 0.0, deform: float = 0.0,
                 static_share: float = 0.0) -> Scene:
  """A random layered scene whose motion (see `max_motion`) lies in [min_motion, max_motion_px].

  `max_motion_px` defaults to width / 8. The motion target is log-uniform in that range; the
  camera and each layer take random shares of it, and the whole motion is rescaled to the target.
  Up to `small_objects` small layers (radius 1.5-6% of the frame) are added on top, moving at
  60-100% of the full speed: thrown balls, birds, hands, which travel further than their own size
  between frames. `regular_share` is the share of periodic textures (see `_random_texture`).
  `deform` is the share of foreground layers that also move non-rigidly (see `Layer.deform`:
  two or three waves half to one layer width long, moving its points by 50-150% of its own
  speed, as steep as `MAX_DEFORM_SLOPE` allows). `static_share` is the share of scenes shot from
  a tripod: the camera and the background stand exactly still while the other layers move (the
  whole motion target goes to them; with none, nothing moves). Without such scenes every
  background moves, and a model trained on them reads sub-pixel motion into still backgrounds.
  At their defaults of 0 no extra random draw is made, so earlier runs' scenes are unchanged.
  """
  max_motion_px = width / 8.0 if max_motion_px is None else max_motion_px
  if max_motion_px <= 0:
    raise ValueError(f'max_motion_px must be > 0, got {max_motion_px}')
  low = min(min_motion, max_motion_px)  # a --max_motion under 2 px is kept, not raised to 2
  target = float(np.exp(rng.uniform(np.log(low), np.log(max_motion_px))))
  diag = float(np.hypot(height, width))

  def moving_layer(mask, center, log_scale):
    texture, tint = _random_texture(rng, regular_share)
    return Layer(texture=texture, tint=tint, texture_offset=(0.0, 0.0), center=center, mask=mask,
                 angle=rng.uniform(-np.pi, np.pi) if mask is not None else rng.normal(0, 0.1),
                 log_scale=log_scale,
                 velocity=tuple(rng.normal(0, 1.0, 2)),
                 angular_velocity=rng.normal(0, 0.3) * 2.0 / diag,
                 log_scale_velocity=rng.normal(0, 0.3) * 2.0 / diag,
                 gain=tuple(rng.uniform(0.85, 1.15, 3)))

  background = moving_layer(None, ((width - 1) / 2.0, (height - 1) / 2.0),
                            rng.uniform(np.log(0.7), np.log(1.6)))
  layers = [background]

  def add_masked_layer(radius_range):
    radius = rng.uniform(*radius_range) * min(height, width)
    log_scale = rng.uniform(np.log(0.7), np.log(1.6))
    a = radius / np.exp(log_scale)
    harmonics = np.array([(k, rng.uniform(0, 0.3) / k, rng.uniform(0, 2 * np.pi))
                          for k in rng.choice(np.arange(2, 7), rng.integers(0, 3), False)],
                         float).reshape(-1, 3)
    mask = (a, a * rng.uniform(0.4, 1.0), int(rng.choice([2, 4, 8])), harmonics,
            rng.uniform(0.7, 2.5))
    center = (rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height)
    layers.append(moving_layer(mask, center, log_scale))

  for _ in range(rng.integers(0, max_layers + 1)):
    add_masked_layer((0.08, 0.4))
  first_small = len(layers)
  for _ in range(rng.integers(0, small_objects + 1) if small_objects else 0):
    add_masked_layer((0.015, 0.06))
    velocity = np.asarray(layers[-1].velocity)
    layers[-1].velocity = tuple(velocity * 1.5 / max(np.linalg.norm(velocity), 1e-6))
  for layer in layers:
    th, tw = layer.texture.shape[:2]
    layer.texture_offset = (rng.uniform(0, tw), rng.uniform(0, th))
  if deform:
    for layer in layers[1:first_small]:
      if rng.random() < deform:
        layer.deform = _random_deformation(rng, layer)
  scene = Scene(height, width, layers,
                pan=tuple(rng.normal(0, 1.0, 2)) if rng.random() < 0.6 else (0.0, 0.0),
                log_zoom=rng.normal(0, 0.3) * 2.0 / diag if rng.random() < 0.4 else 0.0,
                roll=rng.normal(0, 0.1) * 2.0 / diag if rng.random() < 0.2 else 0.0,
                brightness=rng.uniform(-0.1, 0.1) if rng.random() < 0.5 else 0.0)
  if static_share and rng.random() < static_share:
    scene.pan, scene.log_zoom, scene.roll = (0.0, 0.0), 0.0, 0.0
    background.velocity = (0.0, 0.0)
    background.angular_velocity = background.log_scale_velocity = 0.0
  # Layers share the motion unevenly: some nearly still, at least one at full speed.
  shares = rng.uniform(0.05, 1.0, len(layers) + 1)
  shares[rng.integers(len(shares))] = 1.0
  if len(layers) > first_small:
    shares[1 + first_small:] = rng.uniform(0.6, 1.0, len(layers) - first_small)
  _scale_motion(scene, shares, target)
  for layer in layers:
    if layer.deform is not None:  # keep p + (t - 0.5) D(p) one-to-one: no folded texture
      steepness = float((np.hypot(layer.deform[:, 0], layer.deform[:, 1]) *
                         np.hypot(layer.deform[:, 3], layer.deform[:, 4])).sum())
      if steepness > MAX_DEFORM_SLOPE:
        layer.deform[:, 3:] *= MAX_DEFORM_SLOPE / steepness
  return scene


# Bound on |dD/dp|: with it, p -> p + (t - 0.5) D(p) stretches or squeezes by at most 70% at
# t = 0 and 1 and never folds over itself.
MAX_DEFORM_SLOPE = 1.4


def _random_deformation(rng: np.random.Generator, layer: Layer) -> np.ndarray:
  """`Layer.deform` rows for a masked layer: 2-3 waves of 0.5-1 layer widths, together as strong
  as 50-150% of the layer's speed (which `_scale_motion` then scales with it)."""
  width = 2.0 * layer.mask[0] * np.exp(layer.log_scale)  # frame pixels
  count = int(rng.integers(2, 4))
  angle = rng.uniform(0, 2 * np.pi, count)
  k = 2 * np.pi / (width * rng.uniform(0.5, 1.0, count))
  amplitude = rng.uniform(0.5, 1.5) * max(float(np.hypot(*layer.velocity)), 1e-3)
  direction = rng.uniform(0, 2 * np.pi, count)
  share = rng.dirichlet(np.ones(count)) * amplitude
  return np.stack([k * np.cos(angle), k * np.sin(angle), rng.uniform(0, 2 * np.pi, count),
                   share * np.cos(direction), share * np.sin(direction)], axis=1)


def _scale_motion(scene: Scene, shares: np.ndarray, target: float) -> None:
  """Rescales camera and layer velocities so that `max_motion(scene)` is close to `target`."""
  base = [(l.velocity, l.angular_velocity, l.log_scale_velocity,
           None if l.deform is None else l.deform.copy()) for l in scene.layers]
  camera = (scene.pan, scene.log_zoom, scene.roll)

  def apply(factor):
    for layer, share, (v, w, s, d) in zip(scene.layers, shares[1:], base):
      f = factor * share
      layer.velocity = (v[0] * f, v[1] * f)
      layer.angular_velocity, layer.log_scale_velocity = w * f, s * f
      if d is not None:
        layer.deform = d * np.array([1.0, 1.0, 1.0, f, f])
    f = factor * shares[0]
    scene.pan = (camera[0][0] * f, camera[0][1] * f)
    scene.log_zoom, scene.roll = camera[1] * f, camera[2] * f

  factor = 1.0
  for _ in range(4):  # motion is nearly linear in the factor; a few secant steps suffice
    apply(factor)
    motion = max_motion(scene)
    if motion < 1e-9:
      break
    factor *= target / motion
  apply(factor)
  while max_motion(scene) > target * 1.001:
    factor *= 0.98
    apply(factor)


# Inputs at t = 0 and 1 are two frames apart in the footage the triplet stands for, so one frame
# lasts 0.5; a 180-degree shutter is open for half of it.
MAX_SHUTTER = 0.25


def render_triplet(rng: np.random.Generator, height: int, width: int, motion_blur: float = 0.0,
                   **scene_options) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(x0, mid, x1): a random scene rendered at t = 0, 0.5 and 1. See `random_scene`.

  `motion_blur` is the share of scenes filmed with an open shutter: each frame is then the mean
  of the scene over a window around its time (see `render_exposed`), as fast motion looks on
  film and video. At 0 no extra random draw is made, so earlier runs' triplets are unchanged.
  """
  scene = random_scene(rng, height, width, **scene_options)
  shutter = 0.0
  if motion_blur and rng.random() < motion_blur:
    shutter = float(rng.uniform(0.1, 1.0)) * MAX_SHUTTER
  x0, mid, x1 = render_exposed(scene, (0.0, 0.5, 1.0), shutter)
  return x0, mid, x1


def render_exposed(scene: Scene, times: Sequence[float], shutter: float,
                   samples: int = 7) -> np.ndarray:
  """Each of `times` exposed for `shutter` (in t units), as the mean of `samples` instants
  spread evenly over [t - shutter / 2, t + shutter / 2]; `shutter` 0 is `render_times`."""
  if shutter <= 0:
    return render_times(scene, times)
  offsets = ((np.arange(samples) + 0.5) / samples - 0.5) * shutter
  instants = [t + o for t in times for o in offsets]
  frames = render_times(scene, instants)
  return frames.reshape(len(times), samples, *frames.shape[1:]).mean(axis=1)


def augment(rng: np.random.Generator, x0, y, x1):
  """FILM's cheap augmentations: rot90, left-right flip, and swapping x0 and x1.

  rot90 takes k in 0..3 on square frames and k in {0, 2} otherwise, so shapes are kept. FILM's
  arbitrary-angle rotation is left out: scenes already rotate, without black corners.
  """
  square = x0.shape[0] == x0.shape[1]
  k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
  return _transformed((x0, y, x1), k, rng.random() < 0.5, rng.random() < 0.5)


def augment_views(rng: np.random.Generator, x0, y, x1, count: int):
  """`count` views of one triplet, each a different one of the square's 8 flips and rotations
  (4 on other frames: rot90 by 0 or 180 degrees, each mirrored or not), each also swapped in
  time at random: one rendered scene fills `count` batch slots (batch augmentation)."""
  square = x0.shape[0] == x0.shape[1]
  kinds = 8 if square else 4
  if not 1 <= count <= kinds:
    raise ValueError(f'{count} views of one triplet: between 1 and {kinds} on '
                     f'{"square" if square else "non-square"} frames')
  return [_transformed((x0, y, x1), int(code) // 2 * (1 if square else 2), code % 2 == 1,
                       rng.random() < 0.5)
          for code in rng.choice(kinds, size=count, replace=False)]


def _transformed(triplet, k: int, mirror: bool, reverse: bool):
  """The triplet turned k times by 90 degrees, then mirrored left-right and reversed in time."""
  frames = [np.rot90(f, k) for f in triplet]
  if mirror:
    frames = [f[:, ::-1] for f in frames]
  if reverse:
    frames = frames[::-1]
  return tuple(np.ascontiguousarray(f) for f in frames)


# --------------------------------------------------------------------------------------------
# A held-out set on disk, for choosing checkpoints without touching the evaluation set.

TRIPLET_NAMES = ('frame10.png', 'frame10i11.png', 'frame11.png')  # Middlebury's layout

# The smallest --size worth a held-out set. Below it the default motion bound (size / 8) nears
# random_scene's 2 px minimum motion (at 16 px every scene moves the same 2 px) and foreground
# layers (8-40% of the side) shrink to a few pixels, no wider than their 0.7-2.5 px soft edges.
MIN_SIZE = 32
MAX_SIZE = 4096  # 2.5 GB of float frames per triplet as rendered; larger was a memory traceback
# --max_motion in px, as render and train take it: below the least, the rescaling of a scene's
# velocities to its motion target (`_scale_motion`) never converged (1e-14 hung the command);
# far above the largest it overflowed into a traceback (1e7).
MIN_MOTION, MAX_MOTION = 0.01, 2048.0
# ... and beyond this many frame sides (a motion no footage has: every point leaves the frame),
# a scene's zoom could overflow while being rescaled, a traceback at that scene (and training
# draws it again at every resume).
MAX_MOTION_IN_SIDES = 8


def check_motion(max_motion_px: Optional[float], size: int, size_flag: str) -> Optional[str]:
  """Why --max_motion cannot be rendered at frames of `size` px a side, or None."""
  if max_motion_px is not None and max_motion_px > MAX_MOTION_IN_SIDES * size:
    return (f'--max_motion {max_motion_px:g} is more than {MAX_MOTION_IN_SIDES} times '
            f'{size_flag} {size} ({MAX_MOTION_IN_SIDES * size} px): give at most that')
  return None


def write_triplets(output: str, count: int, size: int, seed: int,
                   max_motion_px: Optional[float] = None, **scene_options) -> List[str]:
  """Renders `count` triplets as `output/NNNN/frame10.png, frame10i11.png, frame11.png`.

  Triplet i comes from the generator seeded with [seed, i, 1]; training batches use [seed, step],
  so no held-out scene is ever a training scene. `python -m pipeline.evaluate --input output`
  scores a checkpoint on it. `scene_options` go to `render_triplet`.

  A set is one run's: `output` must be new or empty (else ValueError), so two sets never mix,
  and each triplet folder appears whole (written hidden, then renamed), so a killed run leaves
  no half triplet that the evaluation would take.
  """
  from film_net import image_io  # pylint: disable=import-outside-toplevel
  if os.path.exists(output) and not os.path.isdir(output):
    raise ValueError(f'{output} is a file: --output names the folder of the held-out set')
  if os.path.isdir(output) and os.listdir(output):
    raise ValueError(f'{output} is not empty: write a held-out set to a new folder (or remove '
                     'this one) so that sets never mix')
  folders = []
  for i in range(count):
    rng = np.random.default_rng([seed, i, 1])
    triplet = render_triplet(rng, size, size, max_motion_px=max_motion_px, **scene_options)
    folder = os.path.join(output, f'{i:04d}')
    partial = os.path.join(output, f'.{i:04d}.partial')
    os.makedirs(partial)
    for name, image in zip(TRIPLET_NAMES, triplet):
      image_io.write_png(os.path.join(partial, name), image)
    os.replace(partial, folder)
    folders.append(folder)
  return folders


def add_scene_arguments(parser) -> None:
  """The opt-in scene options of `render_triplet`, for the training and held-out command lines."""
  parser.add_argument('--small_objects', type=flags.non_negative_int, default=0,
                      help='up to this many small fast objects per rendered scene (0: none)')
  parser.add_argument('--regular_share', type=flags.share, default=0.0,
                      help='share of exactly periodic textures (stripes, windows, bricks), 0 to 1')
  parser.add_argument('--motion_blur', type=flags.share, default=0.0,
                      help='share of scenes rendered with motion blur (shutter up to 180 '
                           'degrees), 0 to 1')
  parser.add_argument('--deform', type=flags.share, default=0.0,
                      help='share of foreground layers that also move non-rigidly, 0 to 1')
  parser.add_argument('--static_share', type=flags.share, default=0.0,
                      help='share of tripod shots: camera and background exactly still, 0 to 1')


def scene_options(args) -> dict:
  """The options `add_scene_arguments` defined, as `render_triplet` keywords."""
  return {'small_objects': args.small_objects, 'regular_share': args.regular_share,
          'motion_blur': args.motion_blur, 'deform': args.deform,
          'static_share': args.static_share}


def main(argv=None) -> int:
  flags.start_command()
  parser = flags.command_line(
      'film_net.render', 'Write rendered triplets in the Middlebury layout (a held-out set).')
  parser.add_argument('--output', required=True, type=flags.path_value,
                      help='folder for the triplet folders (frame10.png, frame10i11.png, '
                           'frame11.png each)')
  parser.add_argument('--count', type=flags.positive_int, default=48, help='triplets to render')
  parser.add_argument('--size', type=flags.in_range(int, MIN_SIZE, MAX_SIZE), default=256,
                      help=f'square frames of this many px, {MIN_SIZE} to {MAX_SIZE}')
  parser.add_argument('--max_motion', type=flags.in_range(float, MIN_MOTION, MAX_MOTION),
                      default=None, help='largest motion in px between frame10 and frame11 '
                                         f'({MIN_MOTION} to {MAX_MOTION:g}); default: size / 8')
  parser.add_argument('--seed', type=flags.non_negative_int, default=1000,
                      help='triplet i is drawn from seed [seed, i, 1]; training batches from '
                           '[seed, step], so no triplet is a training scene')
  add_scene_arguments(parser)
  args = parser.parse_args(argv)
  if weights_lib.is_remote(args.output):  # it wrote a local folder named 'gs:'
    parser.error(f'--output must be a local folder; got {args.output}: copy the set to cloud '
                 'storage afterwards')
  flags.check_paths(parser, [('--output', args.output)])
  problem = check_motion(args.max_motion, args.size, '--size')
  if problem:
    parser.error(problem)
  try:
    folders = write_triplets(args.output, args.count, args.size, args.seed, args.max_motion,
                             **scene_options(args))
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'wrote {len(folders)} triplets under {args.output}')
  return 0


if __name__ == '__main__':
  flags.exit_with(flags.run_command(main))
