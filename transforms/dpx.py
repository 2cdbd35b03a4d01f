"""DPX (SMPTE 268M), the film scanner's frame format, decoded to integer pixels with numpy.

PIL has no DPX reader. What scanners and grading tools write is read: one image element of RGB,
RGBA, ABGR or luma; 8, 10, 12 or 16 bits per sample; 10 bit filled into 32-bit words three
samples at a time (method A, padding in the low bits, the usual one; or method B, in the high
bits), 12 bit one sample per 16-bit word (filled to either end); either byte order; each line
starting on a 32-bit word, plus the element's own end-of-line padding; rows bottom to top or
right to left as the orientation says. Code values are kept as they are: a log scan stays log
(the transfer characteristic is the grade's business, not the interpolator's). 10- and 12-bit
samples widen to 16 bit by repeating their top bits below them (`v << 6 | v >> 4`: 0 and full
scale stay exact, and `p >> 6` gives `v` back). The rest (packed 10/12 bit without filling, RLE,
signed or float samples, chroma descriptors, transposed orientations) is refused naming what
it is.
"""

import struct

import numpy as np

MAGICS = (b'SDPX', b'XPDS')  # big-endian, little-endian
_UNDEFINED = 0xFFFFFFFF
# Image element descriptor -> (channels, order of the samples as stored, as RGB(A)).
_DESCRIPTORS = {6: (1, None), 50: (3, None), 51: (4, None), 52: (4, [3, 2, 1, 0])}
_DESCRIPTOR_NAMES = {1: 'red', 2: 'green', 3: 'blue', 4: 'alpha', 100: 'CbYCrY', 101: 'CbYACrYA',
                     102: 'CbYCr', 103: 'CbYCrA'}


def is_dpx(data: bytes) -> bool:
  return data[:4] in MAGICS


def size(data: bytes) -> tuple[int, int]:
  """(width, height) from the header, for the pixel limit before anything is decoded."""
  endian = _endian(data)
  try:
    return struct.unpack_from(endian + 'II', data, 772)
  except struct.error as e:
    raise ValueError('corrupt or truncated DPX (its header is cut short)') from e


def decode(data: bytes) -> np.ndarray:
  """HxWxC pixels (C = 1, 3 or 4), uint8 for 8-bit files, else uint16; ValueError says why
  a file cannot be read."""
  endian = _endian(data)
  try:
    header_offset, = struct.unpack_from(endian + 'I', data, 4)
    orientation, elements, width, height = struct.unpack_from(endian + 'HHII', data, 768)
    sign, = struct.unpack_from(endian + 'I', data, 780)
    descriptor, _, _, bits = data[800:804]
    packing, encoding, offset, line_padding = struct.unpack_from(endian + 'HHII', data, 804)
  except (struct.error, ValueError) as e:
    raise ValueError('corrupt or truncated DPX (its header is cut short)') from e
  if elements < 1 or not width or not height:
    raise ValueError(f'corrupt DPX ({elements} image elements of {width}x{height})')
  if descriptor not in _DESCRIPTORS:
    name = _DESCRIPTOR_NAMES.get(descriptor, f'descriptor {descriptor}')
    raise ValueError(f'DPX of {name} samples is not supported (RGB, RGBA, ABGR and luma are)')
  if sign:
    raise ValueError('DPX with signed samples is not supported')
  if encoding:
    raise ValueError('run-length encoded DPX is not supported (uncompressed DPX is)')
  if orientation > 3:
    raise ValueError(f'DPX with transposed orientation {orientation} is not supported')
  if bits not in (8, 10, 12, 16):
    raise ValueError(f'{bits}-bit DPX is not supported (8, 10, 12 and 16 bit are)')
  if bits in (10, 12) and packing not in (1, 2):
    raise ValueError(f'{bits}-bit DPX packed without filling (packing {packing}) is not '
                     f'supported (filled, method A or B, is)')
  channels, order = _DESCRIPTORS[descriptor]
  if offset in (0, _UNDEFINED):
    offset = header_offset
  if line_padding == _UNDEFINED:
    line_padding = 0
  samples = width * channels
  # 10 bit: three samples to a 32-bit word; 12 bit: one to a 16-bit word.
  line_bytes = {8: samples, 10: 4 * -(-samples // 3), 12: 2 * samples, 16: 2 * samples}[bits]
  stride = -(-line_bytes // 4) * 4 + line_padding
  needed = offset + stride * (height - 1) + line_bytes
  if needed > len(data):
    raise ValueError(f'corrupt or truncated DPX ({len(data)} bytes, its {width}x{height} '
                     f'{bits}-bit image needs {needed})')
  rows = np.lib.stride_tricks.as_strided(
      np.frombuffer(data, np.uint8, count=needed - offset, offset=offset),
      shape=(height, line_bytes), strides=(stride, 1))
  pixels = _samples(np.ascontiguousarray(rows), endian, bits, packing, samples)
  pixels = pixels.reshape(height, width, channels)
  if order:
    pixels = pixels[..., order]
  if orientation & 1:
    pixels = pixels[:, ::-1]
  if orientation & 2:
    pixels = pixels[::-1]
  return np.ascontiguousarray(pixels)


def _endian(data):
  if not is_dpx(data):
    raise ValueError('not a DPX file')
  return '>' if data[:4] == b'SDPX' else '<'


def _samples(rows, endian, bits, packing, samples):
  """(height, samples) integer samples from each line's bytes."""
  if bits == 8:
    return rows
  if bits == 16:
    return rows.view(endian + 'u2').astype(np.uint16)
  if bits == 12:
    units = rows.view(endian + 'u2').astype(np.uint16)
    values = units >> 4 if packing == 1 else units & 0x0FFF
    return values << 4 | values >> 8
  words = rows.view(endian + 'u4').astype(np.uint32)
  low = 2 if packing == 1 else 0  # method A pads the low 2 bits, method B the high 2
  values = np.stack([(words >> (low + shift)) & 0x3FF for shift in (20, 10, 0)], axis=-1)
  values = values.reshape(len(rows), -1)[:, :samples].astype(np.uint16)
  return values << 6 | values >> 4
