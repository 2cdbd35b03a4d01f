"""Frame decode/encode: every mode and bit depth survives, in-betweens follow the documented
policy (widest format of the pair, alpha blended linearly), bad bytes say why."""

import io
import sys
import warnings
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from transforms import images


def _png(array, mode=None):
  buf = io.BytesIO()
  Image.fromarray(array, mode=mode).save(buf, format='PNG')
  return buf.getvalue()


RNG = np.random.default_rng(0)


@pytest.mark.parametrize('channels,dtype', [(1, np.uint8), (2, np.uint8), (3, np.uint8),
                                            (4, np.uint8), (1, np.uint16), (3, np.uint16),
                                            (4, np.uint16)])
def test_png_round_trip_keeps_mode_and_depth(channels, dtype):
  top = np.iinfo(dtype).max
  pixels = RNG.integers(0, top + 1, (6, 7, channels)).astype(dtype)
  frame = images.decode(images.encode_png(pixels))
  assert frame.pixels.dtype == dtype and frame.pixels.shape == (6, 7, channels)
  np.testing.assert_array_equal(frame.pixels, pixels)
  assert frame.rgb().shape == (6, 7, 3) and frame.rgb().dtype == np.float32
  assert frame.rgb().max() <= 1.0


def test_16_bit_rgb_png_is_not_truncated():
  pixels = np.full((4, 4, 3), 1000, np.uint16)  # 8-bit truncation would give 3 or 0.
  frame = images.decode(tf.io.encode_png(pixels).numpy())
  assert frame.bits == 16 and int(frame.pixels[0, 0, 0]) == 1000


def test_16_bit_gray_alpha_png_reads_back_what_the_pipeline_writes():
  """A 16-bit gray frame paired with a gray+alpha one gets a 16-bit gray+alpha in-between;
  TF's decoder takes no channels=2, which refused such files as corrupt."""
  pixels = RNG.integers(0, 65536, (6, 5, 2)).astype(np.uint16)
  frame = images.decode(images.encode_png(pixels))
  assert frame.bits == 16
  np.testing.assert_array_equal(frame.pixels, pixels)


def test_one_picture_written_another_way_is_the_same_picture():
  """A repeated frame is held without a model call; one written in another layout or depth
  (gray as RGB, opaque alpha, 16 bits at 257x) cost a model call for the same picture."""
  rng = np.random.default_rng(4)
  gray = rng.integers(0, 256, (6, 5, 1), dtype=np.uint8)
  rgb = np.repeat(gray, 3, axis=-1)
  opaque = np.concatenate([rgb, np.full_like(gray, 255)], axis=-1)
  for a, b in ((rgb, rgb.copy()), (gray, rgb), (rgb, opaque), (gray, rgb.astype(np.uint16) * 257),
               (opaque, opaque.astype(np.uint16) * 257)):
    assert images.same_picture(images.Frame(a), images.Frame(b))
    assert images.same_picture(images.Frame(b), images.Frame(a))
  changed = rgb.copy()
  changed[5, 4, 2] ^= 1
  see_through = opaque.copy()
  see_through[0, 0, 3] = 254
  for a, b in ((rgb, changed), (rgb, see_through), (rgb, rgb.astype(np.uint16) * 257 + 1),
               (rgb, rgb[:5]), (rgb, rgb.astype(np.uint16))):
    assert not images.same_picture(images.Frame(a), images.Frame(b))


def test_jpeg_and_tiff_decode():
  rgb = RNG.integers(0, 256, (8, 8, 3)).astype(np.uint8)
  for fmt in ('JPEG', 'TIFF'):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    frame = images.decode(buf.getvalue())
    assert frame.pixels.shape == (8, 8, 3)
    if fmt == 'TIFF':
      np.testing.assert_array_equal(frame.pixels, rgb)
  gray16 = Image.fromarray(np.full((5, 5), 40000, np.uint16))
  buf = io.BytesIO()
  gray16.save(buf, format='TIFF')
  assert int(images.decode(buf.getvalue()).pixels[0, 0, 0]) == 40000


def test_originals_png_bytes_kept_and_others_reencoded_losslessly():
  rgba = RNG.integers(0, 256, (5, 5, 4)).astype(np.uint8)
  data = _png(rgba)
  assert images.original_png(data, images.decode(data)) == data
  buf = io.BytesIO()
  Image.fromarray(rgba[..., 0]).save(buf, format='TIFF')
  frame = images.decode(buf.getvalue())
  out = images.decode(images.original_png(buf.getvalue(), frame))
  np.testing.assert_array_equal(out.pixels, rgba[..., :1])


def test_inbetween_policy():
  gray = images.Frame(np.full((2, 2, 1), 100, np.uint8))
  rgba = images.Frame(np.dstack([np.full((2, 2, 3), 50, np.uint8), np.full((2, 2, 1), 0,
                                                                           np.uint8)]))
  rgb16 = images.Frame(np.full((2, 2, 3), 30000, np.uint16))
  model_out = np.full((2, 2, 3), 0.5, np.float32)
  out = images.inbetween_pixels(model_out, gray, gray, 0.5)
  assert out.shape == (2, 2, 1) and out.dtype == np.uint8 and out[0, 0, 0] == 128
  out = images.inbetween_pixels(model_out, gray, rgba, 0.25)
  assert out.shape == (2, 2, 4)
  assert out[0, 0, 3] == int(0.75 * 255 + 0.5)  # gray is opaque, rgba transparent.
  out = images.inbetween_pixels(model_out * 3 - 1, rgb16, rgb16, 0.5)  # unclipped model output
  assert out.dtype == np.uint16 and out[0, 0, 0] == 32768
  np.testing.assert_array_equal(images.inbetween_pixels(np.full((2, 2, 3), 9.0, np.float32),
                                                        gray, gray, 0.5), 255)


def test_bad_bytes_say_why():
  good = _png(np.zeros((50, 50, 3), np.uint8))
  with pytest.raises(images.BadImage, match='truncated'):
    images.decode(good[:len(good) // 2] if len(good) > 200 else good[:60])
  with pytest.raises(images.BadImage, match='not a readable image'):
    images.decode(b'hello')
  with pytest.raises(images.BadImage, match='over the limit'):
    images.decode(good, max_pixels=2499)
  buf = io.BytesIO()
  Image.new('RGB', (4, 4)).save(buf, format='BMP')
  with pytest.raises(images.BadImage, match='unsupported image format BMP'):
    images.decode(buf.getvalue())


def test_a_png_cut_after_its_pixels_or_with_a_damaged_byte_is_refused():
  """PIL alone decodes a PNG that lost only its end (IEND, the last CRC, the zlib checksum), and
  PNGs are copied to the output as they are: it would be written as broken as it came."""
  pixels = RNG.integers(0, 256, (24, 24, 3)).astype(np.uint8)
  for good in (_png(pixels), tf.io.encode_png(pixels.astype(np.uint16) * 257).numpy()):
    np.testing.assert_array_equal(images.decode(good).pixels >> (8 * (good[24] == 16)), pixels)
    assert images.original_png(good, images.decode(good)) == good
    images.decode(good + b'trailing bytes after IEND')  # as readers take it
    for cut in range(1, 21):
      with pytest.raises(images.BadImage, match='truncated PNG: it ends at byte'):
        images.decode(good[:-cut])
    damaged = bytearray(good)
    damaged[good.index(b'IDAT') + 20] ^= 0x10
    with pytest.raises(images.BadImage, match="'IDAT' chunk at byte 3[0-9] fails its CRC"):
      images.decode(bytes(damaged))


def _tifffile():
  return pytest.importorskip('tifffile', reason='tifffile (installed with scikit-image) writes '
                             'the 16-bit colour and float TIFFs PIL cannot')


def _tiff(array, **kwargs):
  buf = io.BytesIO()
  _tifffile().imwrite(buf, array, **kwargs)
  return buf.getvalue()


# Scanner-like 16-bit content: smooth ramps (what predictors are for) with the low bits busy.
_Y, _X = np.mgrid[0:37, 0:53]
RGB16 = (np.stack([_X * 1200, _Y * 1700, (_X + _Y) * 700], axis=-1) +
         RNG.integers(0, 4096, (37, 53, 3))).astype(np.uint16)
RGBA16 = np.concatenate([RGB16, RNG.integers(0, 65536, (37, 53, 1)).astype(np.uint16)], -1)
GRAY_ALPHA16 = RGBA16[..., 1:3]  # PIL cannot open it at all


@pytest.mark.parametrize('layout', [
    {}, {'compression': 'zlib'}, {'compression': 'zlib', 'predictor': True},
    {'byteorder': '>'}, {'byteorder': '>', 'compression': 'zlib', 'predictor': True},
    {'rowsperstrip': 5, 'compression': 'zlib', 'predictor': True},
    {'tile': (16, 16)}, {'tile': (16, 32), 'compression': 'zlib', 'predictor': True},
    {'planarconfig': 'separate'},
    {'planarconfig': 'separate', 'compression': 'zlib', 'predictor': True},
    {'bigtiff': True}, {'bigtiff': True, 'compression': 'zlib', 'predictor': True}])
@pytest.mark.parametrize('pixels', [RGB16, RGBA16, GRAY_ALPHA16], ids=['rgb', 'rgba', 'gray+alpha'])
def test_16_bit_colour_tiff_keeps_every_bit(layout, pixels):
  """PIL reads 16-bit colour as 8 bit and cannot open 16-bit gray+alpha; nor did we a 16-bit
  BigTIFF in colour."""
  colour = pixels.shape[-1] >= 3
  kwargs = dict(photometric='rgb' if colour else 'minisblack',
                extrasamples=['unassalpha'] * (pixels.shape[-1] - (3 if colour else 1)), **layout)
  if layout.get('planarconfig') == 'separate':
    data = _tiff(np.moveaxis(pixels, -1, 0), **kwargs)
  else:
    data = _tiff(pixels, **kwargs)
  frame = images.decode(data)
  assert frame.pixels.dtype == np.uint16
  np.testing.assert_array_equal(frame.pixels, pixels)


@pytest.mark.parametrize('compression', ['lzw', 'packbits', 'deflate', 'none'])
def test_16_bit_colour_tiff_from_libtiff_keeps_every_bit(compression):
  """OpenCV writes TIFF with libtiff (LZW with the horizontal predictor by default, what many
  scanners and editors write) in every compression tifffile cannot write alone."""
  cv2 = pytest.importorskip('cv2', reason='OpenCV (a benchmark extra) writes LZW and PackBits '
                            '16-bit TIFF')
  code = {'none': 1, 'lzw': 5, 'deflate': 8, 'packbits': 32773}[compression]
  for pixels in (RGB16, RGBA16):
    bgr = pixels[..., [2, 1, 0, 3][:pixels.shape[-1]]]
    ok, data = cv2.imencode('.tiff', bgr, [cv2.IMWRITE_TIFF_COMPRESSION, code])
    assert ok
    np.testing.assert_array_equal(images.decode(data.tobytes()).pixels, pixels)


def test_tiff_with_premultiplied_alpha_is_unpremultiplied():
  """(8-bit gray with premultiplied alpha was refused as 'unsupported', its message listing
  8-bit gray+alpha as supported.)"""
  alpha = np.full((4, 5, 1), 32768, np.uint16)
  colour = np.full((4, 5, 3), 16384, np.uint16)  # premultiplied: 0.25 = 0.5 of 0.5
  data = _tiff(np.concatenate([colour, alpha], -1), photometric='rgb', extrasamples=['assocalpha'])
  pixels = images.decode(data).pixels
  np.testing.assert_array_equal(pixels[..., 3], 32768)
  np.testing.assert_allclose(pixels[..., :3], 32767.5, atol=1)
  gray = np.concatenate([np.full((4, 5, 1), 50, np.uint8), np.full((4, 5, 1), 100, np.uint8)], -1)
  pixels = images.decode(_tiff(gray, photometric='minisblack', extrasamples=['assocalpha'])).pixels
  np.testing.assert_array_equal(pixels, np.stack([np.full((4, 5), 128), np.full((4, 5), 100)], -1))


def test_16_bit_tiff_with_an_unspecified_extra_sample_reads_as_rgb_as_at_8_bit():
  """ExtraSamples 0 is data that is no alpha: read as alpha, a zero-filled one made every
  frame written fully transparent."""
  for pixels in (RGBA16, (RGBA16 >> 8).astype(np.uint8), GRAY_ALPHA16,
                 (GRAY_ALPHA16 >> 8).astype(np.uint8)):  # (8-bit gray's was refused)
    photometric = 'rgb' if pixels.shape[-1] == 4 else 'minisblack'
    frame = images.decode(_tiff(pixels, photometric=photometric, extrasamples=['unspecified']))
    assert frame.channels == pixels.shape[-1] - 1
    np.testing.assert_array_equal(frame.pixels, pixels[..., :-1])


@pytest.mark.parametrize('layout', [{'byteorder': '<'}, {'byteorder': '>'}, {'bigtiff': True}])
def test_a_white_is_zero_gray_tiff_is_not_read_as_its_negative(layout):
  """PIL inverts WhiteIsZero (photometric 0) at 8 bit but not at 16: the frames came out as
  negatives, silently (a BigTIFF's too). Its alpha, if any, stays as it is."""
  gray16 = RNG.integers(0, 65536, (4, 5)).astype(np.uint16)
  for stored, top in ((gray16, 65535), ((gray16 >> 8).astype(np.uint8), 255)):
    data = _tiff(stored, photometric='miniswhite', **layout)
    np.testing.assert_array_equal(images.decode(data).pixels[..., 0], top - stored)
  for stored, top in ((GRAY_ALPHA16, 65535), ((GRAY_ALPHA16 >> 8).astype(np.uint8), 255)):
    data = _tiff(stored, photometric='miniswhite', extrasamples=['unassalpha'], **layout)
    np.testing.assert_array_equal(images.decode(data).pixels,  # (8-bit was refused)
                                  np.stack([top - stored[..., 0], stored[..., 1]], -1))


def test_a_big_endian_bigtiff_is_refused_by_name():
  """PIL reads its header as a classic TIFF's and cannot open it."""
  for pixels in (RGB16, GRAY_ALPHA16, (RGB16 >> 8).astype(np.uint8)):
    with pytest.raises(images.BadImage, match='big-endian BigTIFF is not supported'):
      images.decode(_tiff(pixels, bigtiff=True, byteorder='>'))


def test_a_truncated_16_bit_colour_tiff_says_so():
  for layout in ({}, {'compression': 'zlib', 'predictor': True}):
    data = _tiff(RGB16, photometric='rgb', **layout)
    with pytest.raises(images.BadImage, match='corrupt or truncated 16-bit TIFF'):
      images.decode(data[:len(data) // 2])
  with pytest.raises(images.BadImage, match='corrupt or truncated TIFF'):
    images.decode(data[:12])


def test_a_truncated_tiff_is_refused_without_pils_unnamed_warnings():
  """PIL warns about the tags of a cut TIFF without naming it; the refusal says what is wrong
  and the error record names the file, so those warnings stay out of a job's log."""
  buf = io.BytesIO()
  Image.fromarray(RNG.integers(0, 256, (64, 64), dtype=np.uint8)).save(
      buf, format='TIFF', compression='tiff_lzw')
  cut = buf.getvalue()[:200]
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    with pytest.raises(Exception):
      Image.open(io.BytesIO(cut))
    assert any('Corrupt EXIF data' in str(w.message) for w in caught)  # what PIL says
    del caught[:]
    with pytest.raises(images.BadImage, match='corrupt or truncated TIFF'):
      images.decode(cut)
    assert not caught


def test_tiffs_that_pil_would_misread_are_refused_with_the_reason():
  with pytest.raises(images.BadImage, match='floating-point TIFF'):
    images.decode(_tiff(RNG.random((4, 5), dtype=np.float32)))
  # What PIL cannot even open is named from the file's own header.
  with pytest.raises(images.BadImage, match='floating-point TIFF|3 sample.* 32-bit floating'):
    images.decode(_tiff(RNG.random((4, 5, 3), dtype=np.float32), photometric='rgb'))
  with pytest.raises(images.BadImage, match='32 bits per sample|3 sample.* 32-bit unsigned'):
    images.decode(_tiff(RNG.integers(0, 2**32, (4, 5, 3), dtype=np.uint32), photometric='rgb'))
  with pytest.raises(images.BadImage, match='signed integer'):
    images.decode(_tiff(RNG.integers(-100, 100, (4, 5, 3)).astype(np.int16), photometric='rgb'))
  with pytest.raises(images.BadImage, match='signed integer'):
    images.decode(_tiff(RNG.integers(-100, 100, (4, 5)).astype(np.int16)))
  for stored in (GRAY_ALPHA16.astype(np.int16), GRAY_ALPHA16.astype(np.uint32)):
    with pytest.raises(images.BadImage, match='2 sample.* (16-bit signed|32-bit unsigned)'):
      images.decode(_tiff(stored, photometric='minisblack', extrasamples=['unassalpha']))
  # What PIL reads in full still goes through it: 16-bit gray and 8-bit colour TIFF.
  gray16 = RNG.integers(0, 65536, (4, 5)).astype(np.uint16)
  np.testing.assert_array_equal(images.decode(_tiff(gray16)).pixels[..., 0], gray16)
  rgb8 = RNG.integers(0, 256, (4, 5, 3)).astype(np.uint8)
  np.testing.assert_array_equal(images.decode(_tiff(rgb8, photometric='rgb')).pixels, rgb8)


def _with_orientation(pixels, fmt, orientation):
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format=fmt, exif=_exif(orientation), **(
      {'quality': 100, 'subsampling': 0} if fmt == 'JPEG' else {}))
  return buf.getvalue()


@pytest.mark.parametrize('fmt', ['PNG', 'JPEG', 'TIFF'])
def test_frames_are_turned_as_their_exif_orientation_says(fmt):
  """Phones and cameras store frames sideways with an EXIF orientation that viewers and ffmpeg
  apply: ignored, a clip came out sideways, and PNG originals (copied with their eXIf) and
  in-betweens (without) were turned differently."""
  from PIL import ImageOps  # pylint: disable=import-outside-toplevel
  stored = RNG.integers(0, 256, (6, 10, 3)).astype(np.uint8)
  for orientation in range(1, 9):
    data = _with_orientation(stored, fmt, orientation)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    frame = images.decode(data)
    np.testing.assert_array_equal(frame.pixels, shown)
    assert frame.pixels.shape[:2] == ((10, 6) if orientation >= 5 else (6, 10))
    assert images.upright_size(Image.open(io.BytesIO(data))) == (frame.width, frame.height)
    written = images.original_png(data, frame)
    assert (written == data) == (fmt == 'PNG' and orientation == 1)  # as they are if upright
    again = Image.open(io.BytesIO(written))
    assert again.getexif().get(0x0112, 1) == 1 or written == data
    np.testing.assert_array_equal(np.asarray(again), shown)


def test_16_bit_frames_are_turned_as_their_exif_orientation_says():
  """16-bit TIFF and PNG do not go through PIL's decoder (it would cut them to 8 bit)."""
  for stored in (RGB16, RGBA16, RGB16[..., 0], GRAY_ALPHA16):
    upright = np.rot90(np.atleast_3d(stored), -1)  # orientation 6: turn clockwise
    photometric = 'rgb' if upright.shape[2] >= 3 else 'minisblack'
    extra = {'extrasamples': ['unassalpha']} if upright.shape[2] in (2, 4) else {}
    for layout in ({}, {'compression': 'zlib', 'predictor': True, 'tile': (16, 16)}):
      data = _tiff(stored, photometric=photometric, extratags=[(274, 'H', 1, 6, True)],
                   **extra, **layout)
      np.testing.assert_array_equal(images.decode(data).pixels, upright)
    png = _with_chunk_after_header(tf.io.encode_png(np.atleast_3d(stored)).numpy(), b'eXIf',
                                   _exif(6))
    frame = images.decode(png)
    np.testing.assert_array_equal(frame.pixels, upright)
    assert images.original_png(png, frame) != png


@pytest.mark.parametrize('stored', [(RGB16 >> 8).astype(np.uint8), RGB16], ids=['8-bit', '16-bit'])
def test_a_png_exif_after_its_pixels_turns_nothing(stored):
  """A PNG's eXIf counts before its pixels (the spec's place, read at open). One after them was
  ignored for the copied original but, read by decoding, turned the 8-bit in-betweens: a clip of
  40x20 originals and 20x40 in-betweens, exit 0."""
  png = tf.io.encode_png(stored).numpy()
  iend = png.rindex(b'IEND') - 4
  late = png[:iend] + _chunk(b'eXIf', _exif(6)) + png[iend:]
  frame = images.decode(late)
  np.testing.assert_array_equal(frame.pixels, stored)
  assert not frame.turned_upright
  assert images.original_png(late, frame) == late
  assert images.upright_size(Image.open(io.BytesIO(late))) == (frame.width, frame.height)


def _exif(orientation):
  exif = Image.Exif()
  exif[0x0112] = orientation
  return exif.tobytes()


def _chunk(kind, payload):
  import struct, zlib  # pylint: disable=import-outside-toplevel,multiple-imports
  return (struct.pack('>I', len(payload)) + kind + payload +
          struct.pack('>I', zlib.crc32(kind + payload)))


def _with_chunk_after_header(png, kind, payload):
  return png[:33] + _chunk(kind, payload) + png[33:]


def test_a_png_colour_key_is_alpha_so_in_betweens_keep_it_transparent():
  """tRNS on a gray or RGB PNG names one value transparent. Originals are copied with it; read
  as opaque, their in-betweens lost it and the keyed area blinked from frame to frame."""
  import struct  # pylint: disable=import-outside-toplevel
  rgb = RNG.integers(1, 255, (6, 7, 3)).astype(np.uint8)  # no (0, 255, 0), no 255 but the key
  rgb[:3] = (0, 255, 0)
  gray = rgb[..., 1:2].copy()
  cases = []
  for pixels, key in ((rgb, (0, 255, 0)), (gray, 255)):
    buf = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if pixels.shape[2] == 1 else pixels).save(
        buf, format='PNG', transparency=key)
    cases.append((buf.getvalue(), pixels, 255))
    wide = pixels.astype(np.uint16) * 257
    trns = struct.pack(f'>{len(np.atleast_1d(key))}H', *(np.atleast_1d(key) * 257))
    cases.append((_with_chunk_after_header(tf.io.encode_png(wide).numpy(), b'tRNS', trns), wide,
                  65535))
  for data, pixels, top in cases:
    frame = images.decode(data)
    assert frame.channels == pixels.shape[2] + 1
    np.testing.assert_array_equal(frame.pixels[..., :-1], pixels)
    np.testing.assert_array_equal(frame.pixels[:3, ..., -1], 0)
    np.testing.assert_array_equal(frame.pixels[3:, ..., -1], top)
    between = images.inbetween_pixels(frame.rgb(), frame, frame, 0.5)
    np.testing.assert_array_equal(between[..., -1], frame.pixels[..., -1])


def test_a_colour_key_of_2_or_4_bit_gray_is_widened_with_the_pixels():
  """PIL widens 2- and 4-bit gray to 8 bits but kept tRNS's key as stored: a 4-bit key of 15
  matched no widened pixel (they are 255), so the keyed pixels came out opaque."""
  import struct, zlib  # pylint: disable=import-outside-toplevel,multiple-imports
  for bits in (2, 4):
    top = 2 ** bits - 1
    samples = np.array([[top, 1, top, 0], [0, top, 1, 1]], np.uint8)
    rows = b''
    for row in samples:  # packed, the first sample in the high bits; each row filter 0
      packed = 0
      for value in row:
        packed = packed << bits | int(value)
      rows += b'\0' + (packed << (8 - 4 * bits % 8) % 8).to_bytes(-(-4 * bits // 8), 'big')
    png = (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', struct.pack('>IIBBBBB', 4, 2, bits, 0, 0, 0, 0))
           + _chunk(b'tRNS', struct.pack('>H', top)) + _chunk(b'IDAT', zlib.compress(rows))
           + _chunk(b'IEND', b''))
    frame = images.decode(png)
    np.testing.assert_array_equal(frame.pixels[..., 0], samples.astype(np.int64) * 255 // top)
    np.testing.assert_array_equal(frame.pixels[..., 1], np.where(samples == top, 0, 255))


def _unfiltered_png(pixels, interlaced=True, rows_lost=0):
  """A PNG of 8 or 16-bit samples written here, rows unfiltered: stored interlaced (Adam7;
  neither PIL nor TensorFlow writes one), or with its last `rows_lost` rows left out of the
  pixel data (its chunks whole)."""
  import struct  # pylint: disable=import-outside-toplevel
  height, width, channels = pixels.shape
  sample = '>u2' if pixels.dtype == np.uint16 else 'u1'
  rows = []
  for y0, x0, dy, dx in (((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2),
                          (0, 1, 2, 2), (1, 0, 2, 1)) if interlaced else ((0, 0, 1, 1),)):
    rows += [b'\x00' + row.astype(sample).tobytes() for row in pixels[y0::dy, x0::dx] if row.size]
  header = struct.pack('>IIBBBBB', width, height, 8 * pixels.itemsize,
                       {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, int(interlaced))
  pixel_data = zlib.compress(b''.join(rows[:len(rows) - rows_lost]))
  return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header) + _chunk(b'IDAT', pixel_data[:9])
          + _chunk(b'IDAT', pixel_data[9:]) + _chunk(b'IEND', b''))


@pytest.mark.parametrize('interlaced', [False, True], ids=['rows', 'interlaced'])
@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_a_png_whose_pixel_data_ends_early_is_refused(interlaced, dtype):
  """Its chunks whole, its zlib stream ending a few rows short: PIL left the rows it never got
  black without a word, and a frame half black was interpolated as if real."""
  pixels = RGB16.astype(dtype) if dtype == np.uint16 else (RGB16 >> 8).astype(np.uint8)
  whole = images.decode(_unfiltered_png(pixels, interlaced))
  np.testing.assert_array_equal(whole.pixels, pixels)
  ours = r'pixel data ends after \d+ of the \d+ bytes its 53x37 header promises \(rows missing'
  # (16-bit PNG goes through TensorFlow's decoder, which refuses it itself)
  with pytest.raises(images.BadImage, match=ours if dtype == np.uint8 else
                     f'{ours}|corrupt or truncated 16-bit PNG .*Invalid PNG data'):
    images.decode(_unfiltered_png(pixels, interlaced, rows_lost=3))


@pytest.mark.parametrize('pixels', [RGB16[..., :1], GRAY_ALPHA16, RGB16, RGBA16],
                         ids=['gray', 'gray+alpha', 'rgb', 'rgba'])
def test_16_bit_png_keeps_every_bit_without_tensorflow(pixels, monkeypatch):
  """film_net.train_torch runs where PyTorch is and TensorFlow is not: its --clips of 16-bit PNG
  scans stopped at their first frame (the decoder imported TensorFlow). Rows filtered as libpng
  filters them, and interlaced."""
  import struct  # pylint: disable=import-outside-toplevel
  stored = [tf.io.encode_png(pixels).numpy(), _unfiltered_png(pixels)]
  assert images.decode(stored[1]).pixels.tolist() == pixels.tolist()  # (the file is sound)
  monkeypatch.setitem(sys.modules, 'tensorflow', None)  # `import tensorflow` fails
  with pytest.raises(ImportError):
    import tensorflow  # pylint: disable=import-outside-toplevel,unused-import,redefined-outer-name
  for data in stored:
    frame = images.decode(data)
    assert frame.pixels.dtype == np.uint16
    np.testing.assert_array_equal(frame.pixels, pixels)
  if pixels.shape[2] in (1, 3):  # a colour key (tRNS) is still alpha
    key = struct.pack(f'>{pixels.shape[2]}H', *pixels[0, 0])
    keyed = images.decode(_with_chunk_after_header(stored[0], b'tRNS', key)).pixels
    assert keyed[0, 0, -1] == 0 and keyed[..., -1].max() == 65535
  with pytest.raises(images.BadImage, match='pixel data ends after'):
    images.decode(_unfiltered_png(pixels, rows_lost=1))


def test_a_tiff_of_several_pages_is_refused_but_a_preview_page_passes():
  """Read as its first page alone, a multi-page TIFF lost the others without a word."""
  pages = [RNG.integers(0, 256, (6, 7, 3)).astype(np.uint8) for _ in range(3)]
  data = _tiff(np.stack(pages), photometric='rgb')
  with pytest.raises(images.BadImage, match=r'multi-page TIFF \(3 pages, page 2 as full'):
    images.decode(data)
  buf = io.BytesIO()
  with _tifffile().TiffWriter(buf) as tiff:
    tiff.write(pages[0], photometric='rgb')
    tiff.write(pages[1][::2, ::2], photometric='rgb', subfiletype=1)
  np.testing.assert_array_equal(images.decode(buf.getvalue()).pixels, pages[0])
  # The same for 16-bit gray+alpha, which PIL cannot open.
  for preview in (False, True):
    buf = io.BytesIO()
    with _tifffile().TiffWriter(buf) as tiff:
      for page, kind in ((GRAY_ALPHA16, 0), (GRAY_ALPHA16[::2, ::2] if preview else GRAY_ALPHA16,
                                              int(preview))):
        tiff.write(page, photometric='minisblack', extrasamples=['unassalpha'], subfiletype=kind)
    if preview:
      np.testing.assert_array_equal(images.decode(buf.getvalue()).pixels, GRAY_ALPHA16)
    else:
      with pytest.raises(images.BadImage, match=r'multi-page TIFF \(2 pages, page 2 as full'):
        images.decode(buf.getvalue())


def test_an_empty_file_is_named_so():
  """It read 'no PNG, JPEG, TIFF or DPX decoder recognises it', not what it was."""
  with pytest.raises(images.BadImage, match=r'empty file \(0 bytes\)'):
    images.decode(b'')


def test_an_animated_png_is_refused_as_a_multi_page_tiff_is():
  """Read as its first image, an APNG was copied on as it was: an animated 'frame'."""
  stills = [Image.fromarray(RNG.integers(0, 256, (6, 7, 3)).astype(np.uint8)) for _ in range(3)]
  buf = io.BytesIO()
  stills[0].save(buf, format='PNG', save_all=True, append_images=stills[1:])
  with pytest.raises(images.BadImage, match=r'animated PNG \(3 frames\): a frame is one image'):
    images.decode(buf.getvalue())
  buf = io.BytesIO()
  stills[0].save(buf, format='PNG')
  np.testing.assert_array_equal(images.decode(buf.getvalue()).pixels, np.asarray(stills[0]))


def test_colour_profiles_go_into_every_frame_written():
  from PIL import ImageCms  # pylint: disable=import-outside-toplevel
  profile = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
  rgb = RNG.integers(0, 256, (6, 7, 3)).astype(np.uint8)
  gray = RNG.integers(0, 256, (6, 7)).astype(np.uint8)
  for fmt in ('PNG', 'JPEG', 'TIFF'):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, icc_profile=profile)
    frame = images.decode(buf.getvalue())
    plain = images.decode(_png(gray))
    assert plain.color_chunks == b''
    written = [images.original_png(buf.getvalue(), frame),
               images.encode_png(images.inbetween_pixels(rgb / 255, frame, frame, 0.5),
                                 images.inbetween_color_chunks(frame, frame)),
               images.encode_png(rgb.astype(np.uint16) * 257, frame.color_chunks),
               # Gray then colour: the in-between is colour and takes the colour frame's.
               images.encode_png(images.inbetween_pixels(rgb / 255, plain, frame, 0.5),
                                 images.inbetween_color_chunks(plain, frame))]
    for data in written:
      image = Image.open(io.BytesIO(data))
      assert image.info.get('icc_profile') == profile, fmt
      bit_depth = data[24]  # in the header chunk, which comes first
      decoded = tf.io.decode_png(data, dtype=tf.uint16 if bit_depth == 16 else tf.uint8).numpy()
      # (libpng checks every chunk's CRC.)
      assert decoded.shape == (6, 7, 3)
    assert images.inbetween_color_chunks(frame, plain) == frame.color_chunks


def test_a_held_inbetween_takes_the_held_frames_colour_chunks_where_they_fit():
  rgb0, rgb1 = (images.Frame(np.zeros((2, 2, 3), np.uint8), color_chunks=c) for c in (b'A', b'B'))
  gray = images.Frame(np.zeros((2, 2, 1), np.uint8), color_chunks=b'G')
  assert images.held_color_chunks(rgb1, rgb0, rgb1) == b'B'
  assert images.held_color_chunks(rgb0, rgb0, rgb1) == b'A'
  # A gray frame held in a colour in-between: its gray profile would not fit, the colour one's does.
  assert images.held_color_chunks(gray, rgb0, gray) == b'A'
  assert images.held_color_chunks(gray, gray, rgb1) == b'B'
  assert images.held_color_chunks(gray, gray, gray) == b'G'


def test_corrupt_headers_are_bad_images_never_another_error():
  """The headers of 16-bit colour TIFF (strips, tiles, LZW via OpenCV where installed) and DPX
  with 4 bytes at every even offset set to extremes: decoding returns or raises BadImage, so
  one bad scan is an error record, not a crashed worker."""
  from conftest import write_dpx  # pylint: disable=import-outside-toplevel
  seeds = [_tiff(RGB16, photometric='rgb'), _tiff(RGB16, photometric='rgb', tile=(16, 16),
                                                  compression='zlib', predictor=True),
           write_dpx(RGB16 >> 6, 10), write_dpx(RGB16 >> 4, 12, endian='<')]
  try:
    import cv2  # pylint: disable=import-outside-toplevel
    seeds.append(cv2.imencode('.tiff', RGB16, [cv2.IMWRITE_TIFF_COMPRESSION, 5])[1].tobytes())
  except ImportError:
    pass
  outcomes = set()
  for data in seeds:
    header = 820 if data[:4] in (b'SDPX', b'XPDS') else 400
    for position in range(4, min(header, len(data) - 4), 2):
      for value in (0, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF):
        corrupt = bytearray(data)
        corrupt[position:position + 4] = value.to_bytes(4, 'little')
        try:
          images.decode(bytes(corrupt), max_pixels=1 << 20)
          outcomes.add('decoded')
        except images.BadImage:
          outcomes.add('refused')
  assert outcomes == {'decoded', 'refused'}
