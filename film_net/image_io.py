"""Reading frames as the model sees them and writing them as FILM's tools do."""
from __future__ import annotations

import numpy as np
from PIL import Image


def read_rgb(path: str) -> np.ndarray:
  """An image file as float32 RGB in [0, 1] (8 and 16 bit, any PIL mode)."""
  with Image.open(path) as img:
    if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
      gray = np.asarray(img, dtype=np.float32) / 65535.0
      return np.repeat(gray[..., None], 3, axis=-1)
    return np.asarray(img.convert('RGB'), dtype=np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
  """FILM's quantisation: uint8(clip(x * 255, 0, 255) + 0.5)."""
  return (np.clip(np.asarray(image) * 255.0, 0.0, 255.0) + 0.5).astype(np.uint8)


def write_png(path: str, image: np.ndarray) -> None:
  Image.fromarray(to_uint8(image)).save(path, format='PNG')
