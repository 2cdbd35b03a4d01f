"""Frame decoding and encoding that keeps each input's mode and bit depth.

A decoded `Frame` holds integer pixels HxWxC with C = 1 (gray), 2 (gray+alpha), 3 (RGB) or
4 (RGBA), 8 or 16 bits per sample. The model only ever sees float32 RGB in [0, 1] (gray is
repeated into three channels, alpha is dropped). An in-between frame is written in the "widest"
format of its pair: colour if either input is colour (else gray, the mean of the model's three
nearly equal channels), with alpha if either has alpha (alpha is blended linearly in time; a frame
without alpha counts as opaque), 16 bit if either input is 16 bit. Samples are quantised as
FILM's `write_image` does: `uint(clip(x, 0, 1) * max + 0.5)`.

PIL decodes everything except 16-bit colour, which it truncates to 8 bit, and DPX, which it
cannot read: 16-bit PNG (gray too, alike) goes through `tf.io.decode_png` (PIL, read twice,
without TensorFlow), 16-bit colour TIFF (what film scanners write, with DPX) through PIL's
libtiff as 16-bit gray (`_decode_tiff16`), DPX through `transforms.dpx` (10 and 12 bit widen
to 16), and all 16-bit output through `tf.io.encode_png`. Floating-point and other deep TIFF
(12, 32 bit), which PIL would also misread, are refused with a reason (`BadImage`).

Colour: a frame's colour description (a PNG's iCCP, sRGB, gAMA and cHRM chunks, or the ICC
profile of a JPEG or TIFF) goes into every PNG written from it, re-encoded originals and the
in-betweens after it alike, so colour-managed players show the sequence without a flicker.
"""

import dataclasses
import io
import struct
import warnings
import zlib

import numpy as np
from PIL import Image
from PIL import TiffImagePlugin

from transforms import dpx

FRAME_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.dpx')
_FORMATS = {'PNG', 'JPEG', 'TIFF', 'MPO'}  # MPO: JPEGs from some cameras.
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# PNG chunks that say how to read the pixels' colours, copied into what we write.
_COLOR_CHUNKS = (b'iCCP', b'sRGB', b'gAMA', b'cHRM')
# TIFF tags and field types used to relabel a 16-bit colour TIFF as 16-bit gray.
_TIFF_MAGICS = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')  # little-, big-endian; BigTIFF
_TIFF_SHORT, _TIFF_LONG = 3, 4
_STRIP_TAGS = (273, 279)  # StripOffsets, StripByteCounts
_TILE_TAGS = (324, 325)  # TileOffsets, TileByteCounts
# PIL's own bomb guard would warn or raise at its own limits; we check --max_pixels first.
Image.MAX_IMAGE_PIXELS = None


_PIL_METADATA_WARNINGS = r'(Corrupt EXIF data|Possibly corrupt EXIF|Truncated File Read)'


def _quiet_pil_metadata_warnings():
  """PIL warns about the tags it cannot read in a corrupt or truncated TIFF ('Corrupt EXIF
  data', 'Truncated File Read'), naming no file, then fails or reads the pixels anyway: what
  matters is told either way (`BadImage` names the reason, the error record the file), and a
  job's log would fill with warnings no one can place. Filtered for the whole process, not
  with `warnings.catch_warnings` around each decode (not thread-safe); added again where a
  caller's `catch_warnings` has since restored the filters without it."""
  if not any(f[0] == 'ignore' and f[1] is not None and f[1].pattern == _PIL_METADATA_WARNINGS
             for f in warnings.filters):
    warnings.filterwarnings('ignore', message=_PIL_METADATA_WARNINGS, category=UserWarning,
                            module=r'PIL\.')


class BadImage(ValueError):
  """An input that is not a usable frame; the message says why."""


@dataclasses.dataclass
class Frame:
  pixels: np.ndarray  # HxWxC, uint8 or uint16
  uri: str = ''
  color_chunks: bytes = b''  # whole PNG chunks describing the colour space; b'' if none
  turned_upright: bool = False  # pixels turned as the file's EXIF orientation says

  @property
  def height(self):
    return self.pixels.shape[0]

  @property
  def width(self):
    return self.pixels.shape[1]

  @property
  def channels(self):
    return self.pixels.shape[2]

  @property
  def bits(self):
    return 16 if self.pixels.dtype == np.uint16 else 8

  def rgb(self):
    """The model's view: float32 HxWx3 in [0, 1]."""
    x = self.pixels.astype(np.float32) / np.float32(_max_value(self.bits))
    color = x[..., :3] if self.channels >= 3 else np.repeat(x[..., :1], 3, axis=-1)
    return np.ascontiguousarray(color)

  def alpha(self):
    """Float alpha HxWx1 in [0, 1]; opaque when the frame has none."""
    if self.channels in (2, 4):
      return self.pixels[..., -1:].astype(np.float32) / np.float32(_max_value(self.bits))
    return np.ones(self.pixels.shape[:2] + (1,), np.float32)


def _max_value(bits):
  return 65535 if bits == 16 else 255


def is_frame_name(name):
  return name.lower().endswith(FRAME_EXTENSIONS)


def decode(data, uri='', max_pixels=None):
  """Decodes image bytes into a Frame, or raises BadImage naming the reason."""
  _quiet_pil_metadata_warnings()
  if not data:  # (no decoder recognises nothing: say what it is)
    raise BadImage('empty file (0 bytes): a copy or transfer cut short?')
  if dpx.is_dpx(data):
    return Frame(pixels=_decode_dpx(data, max_pixels), uri=uri)
  if data.startswith(_PNG_SIGNATURE):
    _check_png_chunks(data)
    _refuse_animation(data)
  white_is_zero, extra = False, None
  if data.startswith(_TIFF_MAGICS):
    data, white_is_zero, extra = _relabelled_for_pil(data)
  try:
    image = Image.open(io.BytesIO(data))
  except Image.UnidentifiedImageError as e:  # its message names our BytesIO, not the file
    if not data.startswith(_TIFF_MAGICS):
      raise BadImage('not a readable image (no PNG, JPEG, TIFF or DPX decoder recognises '
                     'it)') from e
    pixels, orientation, profile = _decode_tiff_pil_cannot_open(data, max_pixels)
  except Exception as e:  # pylint: disable=broad-except
    raise BadImage(f'not a readable image ({type(e).__name__}: {e})') from e
  else:
    pixels, orientation = _decode_with_pil(image, data, max_pixels)
    profile = image.info.get('icc_profile') or b''
  if white_is_zero:
    pixels = np.concatenate([np.iinfo(pixels.dtype).max - pixels[..., :1], pixels[..., 1:]], -1)
  if extra == 0:  # an unspecified last sample is no alpha: dropped, as PIL does at 8 bit (RGBX)
    pixels = np.ascontiguousarray(pixels[..., :-1])
  elif extra == 1:
    pixels = _unpremultiplied(pixels)
  if data.startswith(_PNG_SIGNATURE):
    chunks = _png_color_chunks(data)
  else:
    # PNG allows an RGB profile on colour pixels and a gray one on gray pixels; a CMYK JPEG's
    # profile does not describe the RGB we decoded it to, so it is left out.
    space = b'RGB ' if pixels.shape[2] >= 3 else b'GRAY'
    chunks = (_png_chunk(b'iCCP', b'icc\x00\x00' + zlib.compress(profile))
              if profile[16:20] == space else b'')
  return Frame(pixels=pixels, uri=uri, color_chunks=chunks, turned_upright=orientation != 1)


def _decode_with_pil(image, data, max_pixels):
  """(upright HxWxC pixels, the EXIF orientation they were turned from) of an image PIL
  opened."""
  if image.format not in _FORMATS:
    raise BadImage(f'unsupported image format {image.format}')
  _check_pixel_limit(*image.size, max_pixels)
  _refuse_what_pil_would_misread(image)
  orientation = exif_orientation(image)
  if data.startswith(_PNG_SIGNATURE) and len(data) > 25 and data[24] == 16:
    return _upright(_decode_png16(data), orientation), orientation
  if image.format == 'PNG':
    _check_png_rows(data)
  if _is_tiff16_pil_truncates(image):
    return _upright(_decode_tiff16(data, image.tag_v2, *_stored_size(image)),
                    orientation), orientation
  try:
    image.load()
  except Exception as e:  # pylint: disable=broad-except
    raise BadImage(f'corrupt or truncated image ({type(e).__name__}: {e})') from e
  # PIL turns TIFFs itself as it loads them (dropping the tag), JPEGs and PNGs not. Loading a
  # PNG reads an eXIf after its pixels too: it counts no more now than at open.
  turn = orientation if image.format == 'PNG' else exif_orientation(image)
  if (image.format == 'PNG' and data[25] == 0 and data[24] in (2, 4)
      and isinstance(image.info.get('transparency'), int)):
    # PIL widens 2- and 4-bit gray to 8 bits but leaves tRNS's key as stored (15, not 255):
    # widened alike, it marks the pixels it names (their alpha was lost).
    image.info['transparency'] *= 255 // (2 ** data[24] - 1)
  return _upright(_pil_to_pixels(image), turn), orientation


def _decode_tiff_pil_cannot_open(data, max_pixels):
  """(upright pixels, orientation, ICC profile) of a TIFF PIL has no mode for: 16-bit gray
  with alpha, which scanners write for a frame with a matte. Anything else is refused saying
  what its samples are."""
  if data.startswith(_TIFF_MAGICS[3]):  # PIL takes its header for a classic TIFF's
    raise BadImage('big-endian BigTIFF is not supported (convert it to 16-bit PNG or TIFF)')
  try:
    tags = TiffImagePlugin.ImageFileDirectory_v2(_tiff_header(data))
    io_data = io.BytesIO(data)
    io_data.seek(tags.next)
    tags.load(io_data)
    width, height = int(tags[256]), int(tags[257])
  except Exception as e:  # pylint: disable=broad-except
    samples = _tiff_samples(data)
    if samples is None:
      raise BadImage('corrupt or truncated TIFF (its header is cut short)') from e
    raise BadImage(f'corrupt TIFF ({samples}; {type(e).__name__}: {e})') from e
  if (set(_tag_tuple(tags, 258, 1)) != {16} or int(tags.get(277, 1)) != 2 or
      set(_tag_tuple(tags, 339, 1)) != {1} or tags.get(262) not in (0, 1)):
    raise BadImage(f'unsupported TIFF ({_tiff_samples(data)}; supported: 8-bit gray, '
                   f'gray+alpha, RGB and RGBA, 16-bit gray, gray+alpha, RGB and RGBA; convert '
                   f'it to 16-bit PNG)')
  _check_pixel_limit(width, height, max_pixels)
  _refuse_full_pages(_later_subfile_types(data, tags))
  orientation = int(tags.get(274, 1))
  orientation = orientation if orientation in range(1, 9) else 1
  pixels = _upright(_decode_tiff16(data, tags, width, height), orientation)
  return pixels, orientation, bytes(tags.get(34675, b''))


_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def exif_orientation(image):
  """The EXIF orientation (1-8, 1 upright) of an opened PIL image. Cameras and phones store
  frames sideways and say so here; every viewer and ffmpeg turn them, so the frames written must
  be turned too. A PNG's eXIf counts where its spec puts it, before the pixels (read at open;
  looking further would decode the whole file)."""
  if image.format == 'PNG' and 'exif' not in image.info:
    return 1
  try:
    value = image.getexif().get(_EXIF_ORIENTATION, 1)
  except Exception:  # pylint: disable=broad-except
    return 1  # unreadable EXIF: the pixels as stored, as viewers show them
  return value if value in range(1, 9) else 1


def _stored_size(image):
  """(width, height) of an opened PIL image as its file stores it: PIL gives a TIFF's size as
  it will turn it on loading."""
  if image.format == 'TIFF':
    return int(image.tag_v2[256]), int(image.tag_v2[257])
  return image.size


def header_size(path):
  """(width, height) of the frame at `path` (local or a Beam filesystem's) as decoded, read
  from its header alone; None where PIL cannot open it (16-bit gray+alpha TIFF: decode it).
  Raises where the file cannot be read, or is an image `decode` refuses (a WebP named .jpg)."""
  from transforms import files  # pylint: disable=import-outside-toplevel
  with files.open_for_reading(path) as f:
    return _size_from_header(f)


def data_size(data):
  """`header_size` of a frame's bytes, read already: the size before the pixels are decoded."""
  return _size_from_header(io.BytesIO(data))


def _size_from_header(f):
  header = f.read(1024)
  if dpx.is_dpx(header):
    return dpx.size(header)
  f.seek(0)
  try:
    with Image.open(f) as image:
      if image.format not in _FORMATS:
        raise BadImage(f'unsupported image format {image.format}')
      return upright_size(image)
  except Image.UnidentifiedImageError:
    return None


def upright_size(image):
  """(width, height) of an opened PIL image as decoded: turned by its EXIF orientation."""
  width, height = _stored_size(image)
  if exif_orientation(image) in _TRANSPOSING_ORIENTATIONS:
    return height, width
  return width, height


def _upright(pixels, orientation):
  """HxWxC pixels turned as EXIF `orientation` says (what PIL's ImageOps.exif_transpose does)."""
  if orientation in _TRANSPOSING_ORIENTATIONS:
    pixels = pixels.swapaxes(0, 1)
    orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
  flipped = {1: pixels, 2: pixels[:, ::-1], 3: pixels[::-1, ::-1], 4: pixels[::-1]}[orientation]
  return np.ascontiguousarray(flipped)


def _check_pixel_limit(width, height, max_pixels):
  if max_pixels and width * height > max_pixels:
    raise BadImage(f'image is {width}x{height} = {width * height} pixels, over the limit of '
                   f'{max_pixels} (--max_pixels); refusing to decode (decompression bomb?)')


def _decode_dpx(data, max_pixels):
  try:
    _check_pixel_limit(*dpx.size(data), max_pixels)
    return dpx.decode(data)
  except ValueError as e:  # BadImage is one too: the pixel limit's passes as it is
    raise BadImage(str(e)) from e


def _check_png_chunks(data):
  """Refuses PNG bytes whose chunks are not all whole, CRCs right, up to IEND. PIL stops
  reading once every row is decoded, so a file cut short after its pixels (IEND, a CRC or the
  zlib checksum lost) would decode and, PNGs being copied as they are, reach the output still
  broken (ffmpeg and OpenCV refuse it); a damaged byte that still inflates would pass too.
  Every CRC costs ~1 ms per 4 MB. (Its pixel data's rows: `_check_png_rows`.)"""
  view, pos = memoryview(data), len(_PNG_SIGNATURE)
  while True:
    if pos + 12 > len(data):
      raise BadImage(f'truncated PNG: it ends at byte {len(data)} without its IEND chunk (the '
                     f'file is cut short)')
    length, kind = struct.unpack('>I', data[pos:pos + 4])[0], data[pos + 4:pos + 8]
    name = kind.decode('latin-1')
    end = pos + 8 + length
    if end + 4 > len(data):
      raise BadImage(f'truncated PNG: it ends at byte {len(data)} inside its {name!r} chunk '
                     f'(of {length} bytes, at byte {pos}; the file is cut short)')
    if zlib.crc32(view[pos + 4:end]) != struct.unpack('>I', data[end:end + 4])[0]:
      raise BadImage(f'corrupt PNG: its {name!r} chunk at byte {pos} fails its CRC check (a '
                     f'damaged byte)')
    if kind == b'IEND':
      return
    pos = end + 4


# Samples per pixel of each PNG colour type: gray, RGB, palette, gray+alpha, RGBA.
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7's passes: (first row, first column, row step, column step).
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
          (1, 0, 2, 1))


def _check_png_rows(data):
  """Refuses a PNG whose pixel data, every chunk whole, inflates to fewer rows than its header
  promises: PIL stops at the end of the zlib stream and leaves the rows it never got black,
  without a word (a frame half black, interpolated as if real). Run after the --max_pixels
  check; inflating again costs 21 ms per 1080p 8-bit frame (`bench/bench_decode.py`: 0.050 s
  against 0.029 s)."""
  width, height, depth, colour, _, _, interlaced = struct.unpack('>IIBBBBB', data[16:29])
  view, pos, pixel_data = memoryview(data), len(_PNG_SIGNATURE), []
  while pos + 8 <= len(data):  # (whole chunks: `_check_png_chunks`)
    length, kind = struct.unpack('>I', data[pos:pos + 4])[0], data[pos + 4:pos + 8]
    if kind == b'IDAT':
      pixel_data.append(view[pos + 8:pos + 8 + length])
    pos += 12 + length
  bits = depth * _PNG_SAMPLES.get(colour, 0)
  passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
  expected = sum(len(range(y0, height, dy)) * (1 + (len(range(x0, width, dx)) * bits + 7) // 8)
                 for y0, x0, dy, dx in passes if len(range(x0, width, dx)))
  inflate, got = zlib.decompressobj(), 0
  try:
    for piece in pixel_data:
      while piece and got < expected:
        got += len(inflate.decompress(piece, 1 << 20))
        piece = inflate.unconsumed_tail
  except zlib.error as e:
    raise BadImage(f'corrupt PNG: its pixel data does not inflate ({e})') from e
  if got < expected:
    raise BadImage(f'corrupt PNG: its pixel data ends after {got} of the {expected} bytes its '
                   f'{width}x{height} header promises (rows missing; PIL would leave them black)')


def _refuse_animation(data):
  """A frame is one image: an animated PNG (APNG, its acTL chunk counting the frames) was read
  as its first image and, PNGs being copied as they are, written on still animated."""
  control = next((chunk[8:-4] for kind, chunk in _png_chunks_before_pixels(data)
                  if kind == b'acTL'), b'')
  frames = struct.unpack('>I', control[:4])[0] if len(control) >= 4 else 1
  if frames > 1:
    raise BadImage(f'animated PNG ({frames} frames): a frame is one image; give each frame a '
                   f'file of its own')


def _png_chunk(kind, payload):
  return (struct.pack('>I', len(payload)) + kind + payload +
          struct.pack('>I', zlib.crc32(kind + payload) & 0xffffffff))


def _png_chunks_before_pixels(data):
  """Yields (type, whole chunk: length, type, data, CRC) of PNG bytes' chunks before IDAT."""
  pos = len(_PNG_SIGNATURE)
  while pos + 8 <= len(data):
    length, kind = struct.unpack('>I', data[pos:pos + 4])[0], data[pos + 4:pos + 8]
    if kind in (b'IDAT', b'IEND'):
      return
    yield kind, data[pos:pos + 12 + length]
    pos += 12 + length


def _png_color_chunks(data):
  """The colour chunks before the image data of PNG bytes, whole (length, type, data, CRC)."""
  return b''.join(chunk for kind, chunk in _png_chunks_before_pixels(data)
                  if kind in _COLOR_CHUNKS)


def _with_colour_key_as_alpha(pixels, data):
  """16-bit gray or RGB pixels with the PNG's tRNS colour key (the one sample value, or RGB
  triple, that is transparent) made an alpha channel, as PIL does at 8 bit: ignored, originals
  (copied with the chunk) showed it transparent and their in-betweens opaque."""
  key = next((chunk[8:-4] for kind, chunk in _png_chunks_before_pixels(data)
              if kind == b'tRNS'), None)
  if key is None or len(key) != 2 * pixels.shape[2] or pixels.shape[2] not in (1, 3):
    return pixels
  keyed = np.all(pixels == np.frombuffer(key, '>u2').astype(np.uint16), axis=-1, keepdims=True)
  return np.concatenate([pixels, np.where(keyed, 0, 65535).astype(np.uint16)], axis=-1)


def _with_chunks(png, chunks):
  """PNG bytes with `chunks` inserted after the header chunk (IHDR, always first, 25 bytes)."""
  if not chunks:
    return png
  end_of_header = len(_PNG_SIGNATURE) + 25
  return png[:end_of_header] + chunks + png[end_of_header:]


def _refuse_what_pil_would_misread(image):
  """PIL reads float TIFF as black and deep samples other than 16 bit wrongly: refuse them by
  name rather than write a frame that silently lost its values."""
  if image.format != 'TIFF':
    return
  tags = image.tag_v2
  if 3 in _tag_tuple(tags, 339, 1):
    raise BadImage('floating-point TIFF is not supported (convert it to 16-bit PNG or TIFF)')
  bits = _tag_tuple(tags, 258, 1)
  if max(bits) > 8 and set(bits) != {16}:
    raise BadImage(f'TIFF with {"/".join(map(str, bits))} bits per sample is not supported '
                   f'(8 or 16 bits are; convert it to 16-bit PNG or TIFF)')
  if 2 in _tag_tuple(tags, 339, 1):
    raise BadImage('TIFF with signed integer samples is not supported (convert it to 16-bit '
                   'PNG or TIFF)')
  _refuse_pages_beyond_the_first(image)


def _refuse_pages_beyond_the_first(image):
  """A frame is one image: a TIFF of several full pages is refused rather than read as its first
  alone. Reduced-resolution pages (NewSubfileType bit 0: previews some scanners add) pass."""
  kinds = []
  try:
    if image.n_frames == 1:
      return  # (n_frames leaves the image at its page: no seek back needed)
    for page in range(1, image.n_frames):
      image.seek(page)
      kinds.append(image.tag_v2.get(254, 0))
  except Exception:  # pylint: disable=broad-except
    pass  # pages past the first that cannot be read: the first is the frame, as other readers see
  try:
    image.seek(0)
  except Exception as e:  # pylint: disable=broad-except
    raise BadImage(f'corrupt TIFF ({type(e).__name__}: {e})') from e
  _refuse_full_pages(kinds)


def _tiff_header(data):
  """The bytes that open a TIFF (8) or BigTIFF (16), which say where its first IFD is."""
  return data[:16] if data[2:4] in (b'+\x00', b'\x00+') else data[:8]


def _later_subfile_types(data, first_page):
  """NewSubfileType (tag 254) of each page after `first_page` (its IFD, loaded), as far as they
  can be read."""
  page = TiffImagePlugin.ImageFileDirectory_v2(_tiff_header(data))
  kinds, seen, at, fp = [], {page.next}, first_page.next, io.BytesIO(data)
  try:
    while at and at not in seen:  # a loop of IFDs ends where it repeats
      seen.add(at)
      fp.seek(at)
      page.load(fp)
      kinds.append(page.get(254, 0))
      at = page.next
  except Exception:  # pylint: disable=broad-except
    pass
  return kinds


def _refuse_full_pages(later_subfile_types):
  """Refuses a TIFF with a page after the first that is no reduced-resolution preview."""
  full = [n + 2 for n, kind in enumerate(later_subfile_types) if not int(kind) & 1]
  if full:
    raise BadImage(f'multi-page TIFF ({len(later_subfile_types) + 1} pages, page {full[0]} as '
                   f'full as the first): a frame is one image; give each page a file of its own')


def _tag_tuple(tags, tag, default):
  value = tags.get(tag, default)
  return value if isinstance(value, tuple) else (value,)


def _first_ifd(data):
  """{tag: (first value, byte offset of its value field)} of TIFF or BigTIFF bytes' first IFD;
  raises struct.error if the bytes end before it does. A list stored elsewhere in the file
  stands for itself by its first value, which is all the callers here need."""
  endian = '<' if data.startswith(b'II') else '>'
  # Classic: 4-byte offsets and counts, 12-byte entries; BigTIFF: 8-byte ones, 20-byte entries.
  big = len(_tiff_header(data)) == 16
  word, entry, count_format = ('Q', 20, 'Q') if big else ('I', 12, 'H')
  (ifd,) = struct.unpack_from(endian + word, data, 8 if big else 4)
  (count,) = struct.unpack_from(endian + count_format, data, ifd)
  tags = {}
  for k in range(count):
    field = ifd + struct.calcsize(count_format) + entry * k
    tag, kind, n, value = struct.unpack_from(f'{endian}HH{word}{word}', data, field)
    at = field + 4 + struct.calcsize(word)
    if kind == _TIFF_SHORT and 2 * n <= struct.calcsize(word):
      value = struct.unpack_from(endian + 'H', data, at)[0]
    elif kind == _TIFF_SHORT:
      value = struct.unpack_from(endian + 'H', data, value)[0]
    tags[tag] = (value, at)
  return tags


def _tiff_samples(data):
  """What the first IFD of TIFF bytes says its samples are, in words, for an error message;
  None if the bytes end before it does."""
  try:
    tags = {tag: value for tag, (value, _) in _first_ifd(data).items()}
  except struct.error:
    return None
  kinds = {1: 'unsigned integer', 2: 'signed integer', 3: 'floating-point'}
  return (f'{tags.get(277, 1)} sample(s) per pixel of {tags.get(258, 1)}-bit '
          f'{kinds.get(tags.get(339, 1), "unknown")} values')


def _relabelled_for_pil(data):
  """(bytes, white_is_zero, extra sample kind or None) of a TIFF relabelled where PIL misreads
  or refuses what it says, for the caller to mend the pixels it decodes:
  - 16-bit gray WhiteIsZero, relabelled BlackIsZero (white_is_zero True: the caller inverts):
    PIL reads it uninverted (a negative, silently) and cannot open it big-endian;
  - 8-bit gray with a second sample that is premultiplied alpha (1) or unspecified (0), or
    WhiteIsZero: PIL opens none of these; relabelled BlackIsZero gray with plain alpha, the
    caller inverts the gray, unpremultiplies or drops the second sample (extra: 1 or 0).
  (data, False, None) for every other TIFF."""
  try:
    tags = _first_ifd(data)
  except struct.error:
    return data, False, None  # PIL says what is wrong with it
  photometric, bits, samples = (tags.get(tag, (default,))[0]
                                for tag, default in ((262, None), (258, 1), (277, 1)))
  extra = tags.get(338, (None,))[0]
  endian = '<' if data.startswith(b'II') else '>'

  def relabelled(tag, value):
    at = tags[tag][1]
    return data[:at] + struct.pack(endian + 'H', value) + data[at + 2:]
  if photometric == 0 and bits == 16 and samples == 1:
    return relabelled(262, 1), True, None
  if (photometric in (0, 1) and bits == 8 and samples == 2 and extra in (0, 1, 2)
      and (photometric, extra) != (1, 2)):
    data = relabelled(262, 1) if photometric == 0 else data
    data = relabelled(338, 2) if extra != 2 else data
    return data, photometric == 0, extra if extra != 2 else None
  return data, False, None


def _unpremultiplied(pixels):
  """Pixels whose last channel is associated (premultiplied) alpha with their colour divided by
  it: plain alpha, as every other frame's."""
  top = float(np.iinfo(pixels.dtype).max)
  alpha = pixels[..., -1:]
  colour = pixels[..., :-1] * (top / np.maximum(alpha.astype(np.float32), 1.0))
  return np.concatenate([np.clip(colour + 0.5, 0, top).astype(pixels.dtype), alpha], -1)


def _is_tiff16_pil_truncates(image):
  """16-bit TIFF that PIL would read as 8 bit: everything but one gray channel."""
  return (image.format == 'TIFF' and set(_tag_tuple(image.tag_v2, 258, 1)) == {16} and
          image.mode not in ('I;16', 'I;16B', 'I;16L', 'I'))


def _decode_tiff16(data, tags, width, height):
  """HxWxC uint16 pixels of a 16-bit RGB, RGBA or gray+alpha TIFF (its first IFD's `tags`,
  as PIL reads them), which PIL can only read as 8 bit or not at all.

  Each plane's strips or tiles, untouched in the file, are described again as a 16-bit gray
  image (one sample per pixel, C times as wide when samples are interleaved) by an IFD appended
  to the file's bytes, which PIL decodes in full, with libtiff for every compression it has
  (LZW, Deflate, PackBits, ...); the samples are then regrouped and the horizontal-differencing
  predictor, which the relabelled image no longer declares, is undone per channel here."""
  channels = int(tags.get(277, 1))
  photometric = tags.get(262)
  if (photometric, channels) not in ((2, 3), (2, 4), (0, 2), (1, 2)):
    raise BadImage(f'16-bit TIFF with photometric interpretation {photometric} and {channels} '
                   f'samples per pixel is not supported (16-bit gray, gray+alpha, RGB and RGBA '
                   f'are)')
  if len(data) >= 2 ** 32:  # the relabelled IFD has 32-bit offsets
    raise BadImage('16-bit TIFF of 4 GiB or more is not supported')
  predictor = tags.get(317, 1)
  if predictor not in (1, 2):
    raise BadImage(f'16-bit TIFF with predictor {predictor} is not supported')
  tiled = 322 in tags
  offsets, counts = (_tag_tuple(tags, t, 0) for t in (_TILE_TAGS if tiled else _STRIP_TAGS))
  planar = tags.get(284, 1) == 2
  per_plane = len(offsets) // channels if planar else len(offsets)
  if len(offsets) != len(counts) or per_plane * (channels if planar else 1) != len(offsets):
    raise BadImage('corrupt 16-bit TIFF (its strip or tile offsets and byte counts disagree)')
  planes = []
  for plane in range(channels if planar else 1):
    span = slice(plane * per_plane, (plane + 1) * per_plane)
    samples = 1 if planar else channels
    planes.append(_decode_tiff16_plane(data, tags, width * samples, height, samples, tiled,
                                       offsets[span], counts[span]))
  pixels = np.stack(planes, axis=-1) if planar else planes[0].reshape(height, width, channels)
  if predictor == 2:
    tile_width = int(tags[322]) if tiled else width
    if tile_width < 1:
      raise BadImage(f'corrupt 16-bit TIFF (tile width {tile_width})')
    for start in range(0, width, tile_width):  # each strip row or tile row is differenced alone
      block = pixels[:, start:start + tile_width]
      np.cumsum(block, axis=1, dtype=np.uint16, out=block)  # wraps modulo 2**16, as encoded
  if photometric == 0:  # WhiteIsZero gray
    pixels[..., 0] = 65535 - pixels[..., 0]
  extra = _tag_tuple(tags, 338, 2)[0] if channels in (2, 4) else None
  if extra == 0:  # an unspecified last sample is no alpha: dropped, as PIL does at 8 bit (RGBX)
    return np.ascontiguousarray(pixels[..., :-1])
  return _unpremultiplied(pixels) if extra == 1 else pixels


def _decode_tiff16_plane(data, tags, width, height, samples, tiled, offsets, counts):
  """One plane of a 16-bit TIFF, `samples` interleaved samples per pixel, decoded as a 16-bit
  gray image `width` samples wide: (height, width) uint16."""
  try:
    relabelled = _relabelled_as_gray(data, tags, width, height, samples, tiled, offsets, counts)
  except (KeyError, TypeError, ValueError, struct.error) as e:  # tags no reader would accept
    raise BadImage(f'corrupt 16-bit TIFF (its strip or tile tags are not valid: {e})') from e
  try:
    gray = Image.open(io.BytesIO(relabelled))
    gray.load()
  except Exception as e:  # pylint: disable=broad-except
    raise BadImage(f'corrupt or truncated 16-bit TIFF ({type(e).__name__}: {e})') from e
  if gray.size != (width, height) or gray.mode not in ('I;16', 'I;16B', 'I;16L'):
    raise BadImage(f'16-bit TIFF read back as {gray.mode} {gray.size}, not 16-bit samples')
  return np.array(gray).astype(np.uint16, copy=False)  # a writable copy, in native order


def _relabelled_as_gray(data, tags, width, height, samples, tiled, offsets, counts):
  """The TIFF bytes with an IFD describing one plane's strips or tiles as 16-bit gray."""
  endian = '<' if data.startswith(b'II') else '>'
  entries = {256: (_TIFF_LONG, [width]), 257: (_TIFF_LONG, [height]),
             258: (_TIFF_SHORT, [16]), 259: (_TIFF_SHORT, [int(tags.get(259, 1))]),
             262: (_TIFF_SHORT, [1]), 277: (_TIFF_SHORT, [1]), 284: (_TIFF_SHORT, [1])}
  if tiled:
    entries[322] = (_TIFF_LONG, [int(tags[322]) * samples])
    entries[323] = (_TIFF_LONG, [int(tags[323])])
    location = _TILE_TAGS
  else:
    entries[278] = (_TIFF_LONG, [int(tags.get(278, height))])
    location = _STRIP_TAGS
  entries[location[0]] = (_TIFF_LONG, [int(v) for v in offsets])
  entries[location[1]] = (_TIFF_LONG, [int(v) for v in counts])
  return _with_appended_ifd(data, endian, entries)


def _with_appended_ifd(data, endian, entries):
  """TIFF bytes whose first (only) IFD is `entries` {tag: (type, values)}, appended to `data`,
  so the original strip and tile offsets still point at their bytes."""
  sizes = {_TIFF_SHORT: 'H', _TIFF_LONG: 'I'}
  start = len(data) + (len(data) & 1)  # IFDs start on a word boundary
  extra_at = start + 2 + 12 * len(entries) + 4
  ifd, extra = [struct.pack(endian + 'H', len(entries))], []
  for tag in sorted(entries):
    kind, values = entries[tag]
    packed = struct.pack(f'{endian}{len(values)}{sizes[kind]}', *values)
    if len(packed) <= 4:
      field = packed.ljust(4, b'\x00')
    else:
      field = struct.pack(endian + 'I', extra_at + sum(map(len, extra)))
      extra.append(packed + b'\x00' * (len(packed) & 1))
    ifd.append(struct.pack(endian + 'HHI', tag, kind, len(values)) + field)
  ifd.append(struct.pack(endian + 'I', 0))  # no next IFD
  # Classic TIFF, also for a BigTIFF's bytes: its 16-byte header's first 8 are all replaced.
  header = _TIFF_MAGICS[endian == '>'] + struct.pack(endian + 'I', start)
  return header + data[8:] + b'\x00' * (start - len(data)) + b''.join(ifd) + b''.join(extra)


def _decode_png16(data):
  """The channels as stored (16-bit PNGs are gray, gray+alpha, RGB or RGBA, never palette):
  TF's decoder takes no channels=2, so asking for the colour type's count refused gray+alpha.
  Where TensorFlow is not installed (film_net.train_torch's GPU machines, reading --clips),
  PIL's decoder reads every bit too, at about half the speed (`_decode_png16_with_pil`)."""
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
  except ImportError:
    tf = None
    _check_png_rows(data)  # (TensorFlow's decoder refuses missing rows itself)
  try:
    pixels = (_decode_png16_with_pil(data) if tf is None else
              tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy())
  except Exception as e:  # pylint: disable=broad-except
    raise BadImage(f'corrupt or truncated 16-bit PNG ({type(e).__name__}: {e})') from e
  return _with_colour_key_as_alpha(pixels, data)


def _decode_png16_with_pil(data):
  """A 16-bit PNG's samples through PIL, which unfilters and de-interlaces the rows but keeps 8
  of each colour sample's 16 bits: colour is decoded twice, as stored (big-endian, the high
  bytes) and as if little-endian (which takes the other byte, the low one); gray+alpha, which
  PIL turns into 8-bit RGBA, as 4 bytes a pixel; gray PIL reads whole."""
  def decoded(rawmode=None):
    with Image.open(io.BytesIO(data)) as image:
      if rawmode:
        image.tile = [image.tile[0]._replace(args=rawmode)]
      image.load()
      return np.asarray(image)
  with Image.open(io.BytesIO(data)) as image:
    stored = image.tile[0].args  # I;16B, LA;16B, RGB;16B or RGBA;16B
  if stored == 'I;16B':
    return decoded().astype(np.uint16)[..., None]
  if stored == 'LA;16B':
    pairs = decoded('RGBA').astype(np.uint16)
    return pairs[..., 0::2] << 8 | pairs[..., 1::2]
  high = decoded(stored).astype(np.uint16)
  return high << 8 | decoded(stored.replace(';16B', ';16L'))


def _pil_to_pixels(image):
  mode = image.mode
  if mode in ('I;16', 'I;16B', 'I;16L', 'I'):
    a = np.asarray(image)
    if mode == 'I' and (a.min() < 0 or a.max() > 65535):
      raise BadImage('32-bit integer images are not supported')
    return a.astype(np.uint16)[..., None]
  keyed = 'transparency' in image.info  # a palette's alpha, or a colour key (PNG's tRNS)
  if mode == 'P':
    image = image.convert('RGBA' if keyed else 'RGB')
  elif mode in ('1', 'L') and keyed:
    image = image.convert('LA')
  elif mode == 'RGB' and keyed:
    image = image.convert('RGBA')
  elif mode == '1':
    image = image.convert('L')
  elif mode == 'PA':
    image = image.convert('RGBA')
  elif mode not in ('L', 'LA', 'RGB', 'RGBA'):
    image = image.convert('RGB')  # CMYK, YCbCr, LAB, ...: shown as RGB by every viewer.
  a = np.asarray(image, dtype=np.uint8)
  return a[..., None] if a.ndim == 2 else a


# zlib level of the PNGs written. 1, not libpng's usual 6: on Middlebury-Other's frames 4.3x
# faster for 9.5% more bytes (16-bit scans: 1.3-1.6x for 2.6%); at 6 a 1080p 8-bit frame took
# 1.7 s of a core to encode, work that does not shrink when the model runs on a GPU
# (`bench/bench_decode.py`, docs/benchmarks.md "Decoding").
DEFAULT_PNG_COMPRESSION = 1


def encode_png(pixels, color_chunks=b'', compression=DEFAULT_PNG_COMPRESSION):
  """Encodes HxWxC uint8/uint16 pixels (C in 1..4) as PNG bytes, with the given colour chunks
  (a decoded `Frame`'s), at zlib level `compression` (0-9)."""
  return _with_chunks(_encode_png(pixels, compression), color_chunks)


def _encode_png(pixels, compression):
  if pixels.dtype == np.uint16:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.io.encode_png(pixels, compression=compression).numpy()
  mode = {1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA'}[pixels.shape[2]]
  data = pixels[..., 0] if pixels.shape[2] == 1 else pixels
  buf = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(data), mode=mode).save(buf, format='PNG',
                                                              compress_level=compression)
  return buf.getvalue()


OUTPUT_FORMATS = ('png', 'dpx')


def encode(pixels, output_format, color_chunks=b'', templates=(), name='',
           png_compression=DEFAULT_PNG_COMPRESSION):
  """An output frame's bytes: PNG with `color_chunks`, or DPX following the first of
  `templates` (DPX originals' bytes) that fits, its file name field `name` (`dpx.encode`)."""
  if output_format == 'dpx':
    return dpx.encode(_as_dpx_channels(pixels), templates, name)
  return encode_png(pixels, color_chunks, png_compression)


def original_bytes(data, frame, output_format, name='', png_compression=DEFAULT_PNG_COMPRESSION):
  """An original frame's output bytes: the file itself where it is in the output format already
  (a DPX keeps its header: time code, edge code, the scanner's fields), others re-encoded
  losslessly."""
  if output_format == 'dpx':
    if dpx.is_dpx(data):
      return data
    return dpx.encode(_as_dpx_channels(frame.pixels), name=name, creator=dpx.ORIGINAL_CREATOR)
  return original_png(data, frame, png_compression)


def _as_dpx_channels(pixels):
  """DPX has no gray+alpha element: such pixels go as RGBA, the gray repeated."""
  if pixels.shape[2] == 2:
    return np.concatenate([np.repeat(pixels[..., :1], 3, axis=-1), pixels[..., 1:]], axis=-1)
  return pixels


def original_png(data, frame, compression=DEFAULT_PNG_COMPRESSION):
  """PNG bytes of an original frame: PNG inputs as they are (unless turned upright: their eXIf
  would turn them again), others re-encoded losslessly."""
  if data.startswith(_PNG_SIGNATURE) and not frame.turned_upright:
    return data
  return encode_png(frame.pixels, frame.color_chunks, compression)


def inbetween_color_chunks(frame0, frame1):
  """The colour chunks of an in-between: the earlier frame's, or the later one's where only it
  is colour (the in-between is colour then, and a gray profile would not fit it)."""
  if frame0.channels < 3 <= frame1.channels:
    return frame1.color_chunks
  return frame0.color_chunks


def held_color_chunks(held, frame0, frame1):
  """The colour chunks of an in-between holding `held` (frame0 or frame1, at a scene cut): the
  held frame's, so it looks as that frame does, unless it is gray in a colour pair (a gray
  profile would not fit the colour in-between)."""
  if held.channels >= 3 or max(frame0.channels, frame1.channels) < 3:
    return held.color_chunks
  return inbetween_color_chunks(frame0, frame1)


def same_picture(a, b):
  """Whether two decoded frames show one image: the same pixels, or the same values written
  another way (gray as RGB, opaque alpha or none, 16 bits at 257 times the 8-bit codes), as a
  transfer that repeats a frame may write it."""
  if a.pixels.shape == b.pixels.shape and a.bits == b.bits:
    return np.array_equal(a.pixels, b.pixels)
  if a.pixels.shape[:2] != b.pixels.shape[:2]:
    return False
  return np.array_equal(a.rgb(), b.rgb()) and np.array_equal(a.alpha(), b.alpha())


def inbetween_pixels(rgb, frame0, frame1, t):
  """Quantises the model's float RGB output at time t in the widest format of the pair."""
  color = frame0.channels >= 3 or frame1.channels >= 3
  has_alpha = frame0.channels in (2, 4) or frame1.channels in (2, 4)
  bits = max(frame0.bits, frame1.bits)
  planes = [rgb if color else rgb.mean(axis=-1, keepdims=True)]
  if has_alpha:
    planes.append(frame0.alpha() * np.float32(1 - t) + frame1.alpha() * np.float32(t))
  x = np.concatenate(planes, axis=-1) if len(planes) > 1 else planes[0]
  top = _max_value(bits)
  q = np.clip(x, 0.0, 1.0) * np.float32(top) + np.float32(0.5)
  return q.astype(np.uint16 if bits == 16 else np.uint8)
