"""Reading frames as the model sees them and writing them as FILM's tools do."""
from __future__ import annotations

import numpy as np
from PIL import Image


def read_rgb(path: str) -> np.ndarray:
  """An image file (local or any Beam filesystem) as float32 RGB in [0, 1]: `read_frame`'s."""
  return read_frame(path)[1].rgb()


def read_frame(path: str):
  """(bytes, decoded `images.Frame`) of an image file (local or any Beam filesystem), decoded as
  the pipeline decodes frames: 8 and 16 bit, gray, colour, alpha; what it cannot read faithfully
  (float TIFF, which PIL reads as black) raises ValueError with the reason."""
  from transforms import files, images  # pylint: disable=import-outside-toplevel
  data = files.read_bytes(path)
  try:
    return data, images.decode(data, path)
  except images.BadImage as e:
    raise ValueError(f'{path}: {e}') from e


def to_uint8(image: np.ndarray) -> np.ndarray:
  """FILM's quantisation: uint8(clip(x * 255, 0, 255) + 0.5)."""
  return (np.clip(np.asarray(image) * 255.0, 0.0, 255.0) + 0.5).astype(np.uint8)


def write_png(path: str, image: np.ndarray) -> None:
  """An HxWx3 (or HxW) float frame in [0, 1] as an 8-bit PNG; anything else is refused (a
  uint8 frame came out almost white, unsaid, and NaN black)."""
  image = np.asarray(image)
  if image.dtype.kind != 'f':
    raise ValueError(f'{path}: write_png takes floats in [0, 1], got {image.dtype}')
  if image.ndim == 3 and image.shape[2] == 1:
    image = image[..., 0]
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
    raise ValueError(f'{path}: write_png takes one HxWx3 or HxW frame, got shape {image.shape}')
  if not np.isfinite(image).all():
    raise ValueError(f'{path}: the frame holds NaN or infinite values')
  Image.fromarray(to_uint8(image)).save(path, format='PNG')
