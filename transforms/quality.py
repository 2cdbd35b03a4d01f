"""Quality of an interpolated middle frame: FILM's metrics, the baselines, and a picture.

Images are float32 (H, W, 3) RGB in [0, 1]. Metrics follow FILM's `eval/eval_cli.py`: the
prediction is clipped to [0, 1] (no uint8 quantisation), PSNR uses max 1, and SSIM is
`tf.image.ssim` itself: 11x11 Gaussian window with sigma 1.5 over the valid region, k1 0.01, k2
0.03, per channel, then averaged, in float32 as FILM computed its published numbers (a float64
copy of it differed by up to 4.4e-4 on Middlebury's smooth, bright frames, where float32 loses
digits; it was also 7x slower). PSNR is computed in numpy (float64); the tests hold both to
`tf.image.psnr` / `tf.image.ssim`.

Baselines, each `fn(x0, x1) -> middle`:
* repeat: frame 0 as it is;
* average: the mean of the two frames;
* minterpolate: ffmpeg's motion-compensated interpolation (mci, aobmc, bidir, vsbmc) on the pair
  at 1 fps, asked for 2 fps, keeping the frame at t = 0.5 (needs an ffmpeg: the one on PATH, or
  the binary of the `imageio-ffmpeg` package, a benchmark extra);
* dis: OpenCV's DIS optical flow (medium preset) both ways on gray frames, each frame
  backward-warped half-way along its flow, the two warps averaged (needs `cv2`, a benchmark
  extra: `pip install opencv-python-headless`).
"""

import io
import shutil
import subprocess

import numpy as np

from film_net.image_io import to_uint8

BASELINES = ('repeat', 'average', 'minterpolate', 'dis')
MINTERPOLATE_MIN_SIZE = 32  # its block matching's smallest frame, in both directions
# OpenCV's DIS flow (medium preset) on frames under 16 px high crashed the process, raised or
# gave NaN (5.0; a sweep of 8-39 px against 12-4000 px); from 16 px both ways it worked.
DIS_MIN_SIZE = 16
# scd=none: its scene-change detection (on by default) would take large motion on small frames
# for a cut and repeat frame 0, scoring as the repeat baseline does (Middlebury-Other's
# 12 sequences score the same either way).
MINTERPOLATE = 'minterpolate=fps=2:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none'
NO_FFMPEG = 'no ffmpeg: none on PATH and imageio-ffmpeg is not installed'
# Error heat map scale: a mean absolute error of this much (of full range) or more is white.
HEAT_MAX = 0.25


# --------------------------------------------------------------------------------------------
# Metrics.

def psnr(prediction: np.ndarray, truth: np.ndarray) -> float:
  """PSNR in dB with max value 1, as tf.image.psnr(max_val=1) (inf for identical images)."""
  mse = np.mean((np.asarray(prediction, np.float64) - np.asarray(truth, np.float64)) ** 2)
  return float('inf') if mse == 0 else float(-10.0 * np.log10(mse))


SSIM_WINDOW = 11  # px a side of SSIM's Gaussian window: frames must be at least this large


def ssim(prediction: np.ndarray, truth: np.ndarray, k1: float = 0.01, k2: float = 0.03) -> float:
  """tf.image.ssim(max_val=1): 11x11 Gaussian (sigma 1.5), valid region, channel mean."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  x = np.asarray(prediction, np.float32)
  y = np.asarray(truth, np.float32)
  if x.ndim == 2:  # (H, W): one channel
    x, y = x[..., None], y[..., None]
  if min(x.shape[:2]) < SSIM_WINDOW:
    raise ValueError(f'{x.shape[1]}x{x.shape[0]} frames are smaller than SSIM\'s '
                     f'{SSIM_WINDOW}x{SSIM_WINDOW} window')
  return float(tf.image.ssim(x, y, max_val=1.0, filter_size=SSIM_WINDOW, filter_sigma=1.5,
                             k1=k1, k2=k2))


def metrics(prediction: np.ndarray, truth: np.ndarray) -> dict:
  """FILM's per-example metrics of a prediction, clipped to [0, 1] first."""
  clipped = np.clip(prediction, 0.0, 1.0)
  diff = clipped.astype(np.float64) - truth
  return {'psnr': psnr(clipped, truth), 'ssim': ssim(clipped, truth),
          'l1': float(np.mean(np.abs(diff))), 'l2': float(np.mean(diff ** 2))}


# --------------------------------------------------------------------------------------------
# Baselines.

def repeat(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
  del x1
  return x0


def average(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
  return (x0 + x1) / 2


def find_ffmpeg() -> str | None:
  """The ffmpeg on PATH, else the one `imageio-ffmpeg` ships (pip wheels with the binary, so
  benchmarks and CI get the baseline without a system package), else None."""
  found = shutil.which('ffmpeg')
  if found:
    return found
  try:
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
    return imageio_ffmpeg.get_ffmpeg_exe()
  except (ImportError, RuntimeError):
    return None


def minterpolate(x0: np.ndarray, x1: np.ndarray, ffmpeg: str | None = None) -> np.ndarray:
  """ffmpeg's minterpolate middle frame (8-bit input; converted through yuv444p, no subsampling).

  The frames go in at 1 fps and come out at 2 fps, so the second output frame is at t = 0.5.
  minterpolate holds frames back until it sees one past the pair, so frame 1 goes in twice; with
  just the pair it outputs nothing.
  """
  ffmpeg = ffmpeg or find_ffmpeg()
  if ffmpeg is None:
    raise RuntimeError(NO_FFMPEG)
  h, w = x0.shape[:2]
  if min(h, w) < MINTERPOLATE_MIN_SIZE:  # (ffmpeg's own words fill ten lines)
    raise ValueError(f'frames of {w}x{h}: ffmpeg minterpolate takes frames of at least '
                     f'{MINTERPOLATE_MIN_SIZE}x{MINTERPOLATE_MIN_SIZE}')
  command = [ffmpeg, '-nostdin', '-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24',
             '-s', f'{w}x{h}', '-r', '1', '-i', '-',
             '-vf', f'format=yuv444p,{MINTERPOLATE},format=rgb24',
             '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-']
  data = to_uint8(x0).tobytes() + to_uint8(x1).tobytes() * 2
  done = subprocess.run(command, input=data, capture_output=True, check=False)
  if done.returncode != 0:
    said = [line for line in done.stderr.decode(errors='replace').splitlines() if line.strip()]
    raise RuntimeError(f'ffmpeg minterpolate failed: {said[0] if said else done.returncode}')
  frames = np.frombuffer(done.stdout, np.uint8).reshape(-1, h, w, 3)
  if len(frames) < 3:
    raise RuntimeError(f'ffmpeg minterpolate gave {len(frames)} frames, expected 3')
  return frames[1].astype(np.float32) / 255.0


def dis(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
  """Half-way backward warps along DIS flow (medium preset), averaged.

  With flow01 from frame 0 to frame 1 and flow10 back, the middle pixel p is taken from frame 0 at
  p + flow10(p) / 2 and from frame 1 at p + flow01(p) / 2: the flow at p stands in for the flow
  of the point passing through p at t = 0.5. Sampling is bilinear with edges clamped.
  """
  h, w = x0.shape[:2]
  if min(h, w) < DIS_MIN_SIZE:  # a segmentation fault would end the whole evaluation
    raise ValueError(f'frames of {w}x{h}: DIS flow takes frames of at least '
                     f'{DIS_MIN_SIZE}x{DIS_MIN_SIZE}')
  import cv2  # pylint: disable=import-outside-toplevel
  gray0 = cv2.cvtColor(to_uint8(x0), cv2.COLOR_RGB2GRAY)
  gray1 = cv2.cvtColor(to_uint8(x1), cv2.COLOR_RGB2GRAY)
  flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
  flow01 = flow.calc(gray0, gray1, None)
  flow10 = flow.calc(gray1, gray0, None)
  grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))

  def warp(image, flow_field):
    return cv2.remap(np.ascontiguousarray(image, np.float32), grid_x + 0.5 * flow_field[..., 0],
                     grid_y + 0.5 * flow_field[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)

  return (warp(x0, flow10) + warp(x1, flow01)) / 2


def available_baselines() -> dict:
  """{name: fn} for the baselines this machine can run; see the module docstring."""
  found = {'repeat': repeat, 'average': average}
  ffmpeg = find_ffmpeg()
  if ffmpeg:
    found['minterpolate'] = lambda x0, x1: minterpolate(x0, x1, ffmpeg)
  try:
    import cv2  # pylint: disable=import-outside-toplevel,unused-import
    found['dis'] = dis
  except ImportError:
    pass
  return found


# --------------------------------------------------------------------------------------------
# Pictures.

def heat_map(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """Per-pixel mean absolute error as black -> red -> yellow -> white, white at HEAT_MAX."""
  error = np.abs(np.clip(prediction, 0, 1) - truth).mean(-1) / HEAT_MAX
  e = np.clip(error, 0.0, 1.0)[..., None] * 3.0
  return np.clip(np.concatenate([e, e - 1.0, e - 2.0], -1), 0.0, 1.0).astype(np.float32)


def comparison_png(x0, x1, truth, predictions: dict, scores: dict) -> bytes:
  """One PNG: a first row frame 0 | truth | frame 1, then a row per method:
  prediction | error heat map | name and scores."""
  from PIL import Image, ImageDraw, ImageFont  # pylint: disable=import-outside-toplevel
  h, w = truth.shape[:2]
  font = ImageFont.load_default(size=max(10, h // 24))
  rows = [[x0, truth, x1]]
  labels = [None]
  for name, prediction in predictions.items():
    rows.append([np.clip(prediction, 0, 1), heat_map(prediction, truth), np.zeros_like(truth)])
    s = scores[name]
    labels.append(f'{name}\nPSNR {s["psnr"]:.2f} dB\nSSIM {s["ssim"]:.4f}')
  grid = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
  image = Image.fromarray(to_uint8(grid))
  draw = ImageDraw.Draw(image)
  draw.text((4, 4), 'frame 0', fill=(255, 255, 0), font=font)
  draw.text((w + 4, 4), 'truth', fill=(255, 255, 0), font=font)
  draw.text((2 * w + 4, 4), 'frame 1', fill=(255, 255, 0), font=font)
  for i, label in enumerate(labels[1:], start=1):
    draw.multiline_text((2 * w + 8, i * h + 8), label, fill=(255, 255, 255), font=font)
    draw.text((w + 4, i * h + 4), f'|error|, white = {HEAT_MAX:g}', fill=(128, 200, 255),
              font=font)
  out = io.BytesIO()
  image.save(out, format='PNG')
  return out.getvalue()
