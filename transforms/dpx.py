"""DPX (SMPTE 268M), the film scanner's frame format, decoded to integer pixels with numpy.

PIL has no DPX reader. What scanners and grading tools write is read: one image element of RGB,
RGBA, ABGR or luma; 8, 10, 12 or 16 bits per sample; 10 bit filled into 32-bit words three
samples at a time (method A, padding in the low bits, the usual one; or method B, in the high
bits; colour samples from the word's high end, as Cineon stored them, luma from its low end, as
SMPTE 268M orders data and as scanners write it: ffmpeg and RAWcooked read it so), 12 bit one
sample per 16-bit word (filled to either end); either byte order; each line starting on a
32-bit word, plus the element's own end-of-line padding; rows bottom to top or
right to left as the orientation says. Code values are kept as they are: a log scan stays log
(the transfer characteristic is the grade's business, not the interpolator's). 10- and 12-bit
samples widen to 16 bit by repeating their top bits below them (`v << 6 | v >> 4`: 0 and full
scale stay exact, and `p >> 6` gives `v` back). The rest (packed 10/12 bit without filling, RLE,
signed or float samples, chroma descriptors, transposed orientations) is refused naming what
it is.

`encode` writes frames back as DPX (`--output_format dpx`): in-betweens follow an original's
header (its bit depth, packing, byte order, orientation, descriptor and every other field, so
they sit in the reel as its frames do), with what is the original's alone or the scan's timing
(time code, edge code, frame position, frame rate, ...) marked undefined; frames with no DPX to
follow get a plain header of their own bit depth.
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
  pixels = _samples(np.ascontiguousarray(rows), endian, bits, packing, samples, channels == 1)
  pixels = pixels.reshape(height, width, channels)
  if order:
    pixels = pixels[..., order]
  if orientation & 1:
    pixels = pixels[:, ::-1]
  if orientation & 2:
    pixels = pixels[::-1]
  return np.ascontiguousarray(pixels)


# Fields that describe one original frame, or the scan's timing, which frames encoded after it
# do not share, made undefined: (offset, bytes) of the film header's edge code (prefix, count),
# frame position, sequence length, held count, frame rate and frame identification, the
# television header's time code, user bits and temporal sampling rate, and the file header's
# creation time (the scan's). Numbers undefined are all ones, text all NULs, as SMPTE 268M marks
# them. The edge code is the key code's perforation offset, prefix and count.
_FRAME_OWN_NUMBERS = ((1712, 4), (1716, 4), (1720, 4), (1724, 4), (1920, 4), (1924, 4),
                      (1940, 4))
_FRAME_OWN_TEXT = ((136, 24), (1668, 2), (1670, 6), (1676, 4), (1732, 32))
_FILE_NAME = (36, 100)
_CREATOR = (160, 100)
# Who made the frames encoded here: an in-between, or an original frame of another format
# re-encoded (which a finishing system must not take for a made frame).
CREATOR = b'film-interpolation (FILM in-between)'
ORIGINAL_CREATOR = b'film-interpolation (original frame, re-encoded)'
# Every text field of the headers a plain header fills: file name, creation time, creator,
# project, copyright, element description, source file name and time, input device and serial,
# film manufacturer and type, edge code, film format, frame identification, slate.
_TEXT_FIELDS = (_FILE_NAME, (136, 24), _CREATOR, (260, 200), (460, 200), (820, 32),
                (1432, 100), (1532, 24), (1556, 32), (1588, 32), (1664, 2), (1666, 2),
                (1668, 2), (1670, 6), (1676, 4), (1680, 32), (1732, 32), (1764, 100))
# The image header's eight image element records of 72 bytes, from 780 (the first: 780-851).
_ELEMENTS = (780, 72, 8)


def encode(pixels: np.ndarray, templates=(), name: str = '', creator: bytes = CREATOR) -> bytes:
  """DPX bytes of HxWxC pixels (C = 1, 3 or 4; uint8, or uint16 with 10/12-bit codes widened as
  `decode` widens them). `templates`: DPX originals (bytes) whose layout and fields to follow,
  the first that holds the same channels and sample width; with none, a plain big-endian
  header. `name` goes in the file name field, `creator` in the creator field."""
  channels = pixels.shape[2]
  template = next((t for t in templates if t and _fits(t, pixels)), None)
  if template:
    header, layout = _from_template(template)
  else:
    header, layout = _plain_header(pixels)
  endian, offset, orientation, descriptor, bits, packing, line_padding = layout
  height, width = pixels.shape[:2]
  struct.pack_into(endian + 'II', header, 772, width, height)
  if orientation & 1:
    pixels = pixels[:, ::-1]
  if orientation & 2:
    pixels = pixels[::-1]
  order = _DESCRIPTORS[descriptor][1]
  if order:
    pixels = pixels[..., order]
  # Contiguous: reordered, a one-pixel-wide frame's samples are strided, and `_lines` views them
  # as bytes.
  samples = np.ascontiguousarray(pixels.reshape(height, width * channels))
  body = _lines(samples, endian, bits, packing, line_padding, channels == 1)
  name_field = name.encode('ascii', 'replace')[:_FILE_NAME[1] - 1]
  header[_FILE_NAME[0]:sum(_FILE_NAME)] = name_field.ljust(_FILE_NAME[1], b'\0')
  header[_CREATOR[0]:sum(_CREATOR)] = creator.ljust(_CREATOR[1], b'\0')
  struct.pack_into(endian + 'I', header, 16, offset + len(body))  # the file's size
  return bytes(header[:offset]) + body


def _fits(template, pixels):
  try:
    descriptor, _, _, bits = template[800:804]
    packing, encoding = struct.unpack_from(_endian(template) + 'HH', template, 804)
  except (ValueError, struct.error):
    return False
  channels = _DESCRIPTORS.get(descriptor, (None,))[0]
  return (channels == pixels.shape[2] and (bits == 8) == (pixels.dtype == np.uint8)
          and bits in (8, 10, 12, 16) and not encoding
          and (bits not in (10, 12) or packing in (1, 2)))


def _from_template(template):
  endian = _endian(template)
  header_offset, = struct.unpack_from(endian + 'I', template, 4)
  orientation, = struct.unpack_from(endian + 'H', template, 768)
  descriptor, _, _, bits = template[800:804]
  packing, _, offset, line_padding = struct.unpack_from(endian + 'HHII', template, 804)
  if offset in (0, _UNDEFINED):
    offset = header_offset
  header = bytearray(template[:offset])
  for start, length in _FRAME_OWN_NUMBERS:
    header[start:start + length] = b'\xff' * length
  for start, length in _FRAME_OWN_TEXT:
    header[start:start + length] = bytes(length)
  struct.pack_into(endian + 'I', header, 816, 0)  # no end-of-image padding
  # The first image element only: the others' data is not written.
  struct.pack_into(endian + 'H', header, 770, 1)
  first, size, count = _ELEMENTS
  header[first + size:first + size * count] = b'\xff' * (size * (count - 1))
  return header, (endian, offset, orientation & 3, descriptor, bits, packing,
                  0 if line_padding == _UNDEFINED else line_padding)


def _plain_header(pixels):
  """A header for pixels as they are: RGB, RGBA or luma at 8 or 16 bit, big-endian, the
  fields this says nothing about undefined (all ones, as SMPTE 268M marks them)."""
  bits = 8 if pixels.dtype == np.uint8 else 16
  descriptor = {1: 6, 3: 50, 4: 51}[pixels.shape[2]]
  offset = 2048
  header = bytearray(b'\xff' * offset)
  header[0:4] = MAGICS[0]
  struct.pack_into('>I', header, 4, offset)
  header[8:16] = b'V2.0\0\0\0\0'
  struct.pack_into('>III', header, 20, 1, 1664, 384)  # ditto key (new), generic and industry sizes
  struct.pack_into('>I', header, 32, 0)  # user data size
  for start, length in _TEXT_FIELDS:
    header[start:start + length] = bytes(length)
  struct.pack_into('>HH', header, 768, 0, 1)  # orientation, image elements
  struct.pack_into('>I', header, 780, 0)  # unsigned samples
  struct.pack_into('>IfIf', header, 784, 0, 0.0, 2 ** bits - 1, 1.0)  # reference codes
  header[800:804] = bytes([descriptor, 0, 0, bits])  # transfer, colorimetric: user defined
  struct.pack_into('>HHIII', header, 804, 0, 0, offset, 0, 0)
  return header, ('>', offset, 0, descriptor, bits, 0, 0)


def _lines(samples, endian, bits, packing, line_padding, luma=False):
  """Each line's bytes, from a 32-bit word boundary, with the element's padding after it."""
  height, count = samples.shape
  if bits == 8:
    rows = samples.astype(np.uint8)
  elif bits == 16:
    rows = samples.astype(endian + 'u2').view(np.uint8)
  elif bits == 12:
    codes = _codes(samples, 12)
    rows = (codes << 4 if packing == 1 else codes).astype(endian + 'u2').view(np.uint8)
  else:
    codes = _codes(samples, 10)
    codes = np.concatenate([codes, np.zeros((height, -count % 3), np.uint32)], axis=1)
    codes = codes.reshape(height, -1, 3)
    low = 2 if packing == 1 else 0
    words = np.zeros(codes.shape[:2], np.uint32)
    for i, shift in enumerate(_TEN_BIT_SHIFTS[luma]):
      words |= codes[..., i] << (low + shift)
    rows = words.astype(endian + 'u4').view(np.uint8)
  rows = rows.reshape(height, -1)
  pad = -rows.shape[1] % 4 + line_padding
  if pad:
    rows = np.concatenate([rows, np.zeros((height, pad), np.uint8)], axis=1)
  return rows.tobytes()


def _codes(samples, bits):
  """16-bit samples to `bits`-bit codes, rounded: exact for codes `decode` widened."""
  top = (1 << bits) - 1
  return ((samples.astype(np.uint32) * top + 32767) // 65535).astype(np.uint32)


def _endian(data):
  if not is_dpx(data):
    raise ValueError('not a DPX file')
  return '>' if data[:4] == b'SDPX' else '<'


# Where a 32-bit word's three 10-bit samples sit, in order, above the padding: colour from the
# high end, luma (True) from the low end.
_TEN_BIT_SHIFTS = {False: (20, 10, 0), True: (0, 10, 20)}


def _samples(rows, endian, bits, packing, samples, luma=False):
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
  values = np.stack([(words >> (low + shift)) & 0x3FF for shift in _TEN_BIT_SHIFTS[luma]],
                    axis=-1)
  values = values.reshape(len(rows), -1)[:, :samples].astype(np.uint16)
  return values << 6 | values >> 4
