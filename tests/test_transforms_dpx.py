"""DPX decoding: files written by ffmpeg (an independent writer) decode to exactly the samples
they hold; the layouts ffmpeg does not write (method B, end-of-line padding, flipped
orientations, ABGR) from a writer built from SMPTE 268M's field table (`conftest.write_dpx`);
what is not supported, or cut short, says so."""

import os
import struct
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import widened, write_dpx
from transforms import dpx, images

RNG = np.random.default_rng(0)
SOURCE16 = RNG.integers(0, 65536, (6, 7, 3)).astype(np.uint16)
SOURCE8 = RNG.integers(0, 256, (6, 7, 3)).astype(np.uint8)


def _ffmpeg_dpx(ffmpeg, tmp_path, source, pix_fmt):
  png = tmp_path / f'{pix_fmt}.png'
  out = tmp_path / f'{pix_fmt}.dpx'
  if source.dtype == np.uint16:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    png.write_bytes(tf.io.encode_png(source).numpy())
  else:
    Image.fromarray(source).save(png)
  subprocess.run([ffmpeg, '-v', 'error', '-y', '-i', str(png), '-pix_fmt', pix_fmt, str(out)],
                 check=True)
  return out.read_bytes()


@pytest.mark.parametrize('pix_fmt,expected', [
    ('gbrp10be', widened(SOURCE16 >> 6, 10)), ('gbrp10le', widened(SOURCE16 >> 6, 10)),
    ('gbrp12be', widened(SOURCE16 >> 4, 12)), ('gbrp12le', widened(SOURCE16 >> 4, 12)),
    ('rgb48be', SOURCE16), ('rgb48le', SOURCE16)])
def test_ffmpegs_dpx_decodes_to_the_samples_it_holds(ffmpeg, tmp_path, pix_fmt,
                                                    expected):
  """ffmpeg keeps a 16-bit source's top bits (10-bit method A in 32-bit words, 12 bit filled
  in 16-bit words, 16 bit as it is) in either byte order."""
  frame = images.decode(_ffmpeg_dpx(ffmpeg, tmp_path, SOURCE16, pix_fmt))
  assert frame.pixels.dtype == np.uint16 and frame.color_chunks == b''
  np.testing.assert_array_equal(frame.pixels, expected)


def test_ffmpegs_8_bit_gray_and_rgba_dpx(ffmpeg, tmp_path):
  np.testing.assert_array_equal(images.decode(_ffmpeg_dpx(ffmpeg, tmp_path, SOURCE8, 'rgb24')).pixels,
                                SOURCE8)
  rgba = images.decode(_ffmpeg_dpx(ffmpeg, tmp_path, SOURCE16, 'rgba64be')).pixels
  np.testing.assert_array_equal(rgba[..., :3], SOURCE16)
  np.testing.assert_array_equal(rgba[..., 3], 65535)
  gray = images.decode(_ffmpeg_dpx(ffmpeg, tmp_path, SOURCE8, 'gray')).pixels
  assert gray.shape == (6, 7, 1) and gray.dtype == np.uint8


@pytest.mark.parametrize('endian', ['>', '<'])
@pytest.mark.parametrize('packing', [1, 2], ids=['method_a', 'method_b'])
def test_10_bit_luma_decodes_as_ffmpeg_reads_it(ffmpeg, tmp_path, endian, packing):
  """A 10-bit luma scan (black-and-white film) holds its first sample in a word's low bits:
  read from the high end, as colour is, every three samples come mirrored. ffmpeg (which reads
  scanners' luma DPX, as RAWcooked does) is the reference, on lines of 7: a part-filled word."""
  codes = RNG.integers(0, 1024, (5, 7, 1))
  path = tmp_path / 'luma.dpx'
  path.write_bytes(write_dpx(codes, 10, descriptor=6, packing=packing, endian=endian))
  raw = subprocess.run([ffmpeg, '-v', 'error', '-i', str(path), '-f', 'rawvideo', '-pix_fmt',
                        'gray10le', '-'], check=True, capture_output=True).stdout
  ffmpegs = np.frombuffer(raw, '<u2').reshape(5, 7, 1)
  np.testing.assert_array_equal(ffmpegs, codes)
  np.testing.assert_array_equal(images.decode(path.read_bytes()).pixels, widened(codes, 10))


TEN = RNG.integers(0, 1024, (5, 9, 3))


@pytest.mark.parametrize('endian', ['>', '<'])
@pytest.mark.parametrize('packing', [1, 2], ids=['method_a', 'method_b'])
def test_10_bit_methods_a_and_b_with_line_padding(endian, packing):
  data = write_dpx(TEN, 10, packing=packing, endian=endian, line_padding=8)
  np.testing.assert_array_equal(images.decode(data).pixels, widened(TEN, 10))


def test_rgba_whose_words_span_pixels_and_abgr_order():
  rgba = RNG.integers(0, 1024, (4, 5, 4))  # 20 samples a line: the last word is half empty
  np.testing.assert_array_equal(images.decode(write_dpx(rgba, 10, descriptor=51)).pixels,
                                widened(rgba, 10))
  abgr = rgba[..., ::-1]
  np.testing.assert_array_equal(images.decode(write_dpx(abgr, 10, descriptor=52)).pixels,
                                widened(rgba, 10))


@pytest.mark.parametrize('packing', [1, 2])
def test_12_bit_filled_either_end(packing):
  twelve = RNG.integers(0, 4096, (3, 5, 3))
  np.testing.assert_array_equal(images.decode(write_dpx(twelve, 12, packing=packing)).pixels,
                                widened(twelve, 12))


def test_orientation_flips_rows_and_columns_to_top_left():
  stored = RNG.integers(0, 1024, (4, 6, 3))
  for orientation, upright in ((0, stored), (1, stored[:, ::-1]), (2, stored[::-1]),
                               (3, stored[::-1, ::-1])):
    pixels = images.decode(write_dpx(stored, 10, orientation=orientation)).pixels
    np.testing.assert_array_equal(pixels, widened(upright, 10))


def test_widening_keeps_the_ends_and_every_code_value():
  values = np.arange(1024).reshape(1, -1, 1).repeat(3, axis=-1)
  pixels = images.decode(write_dpx(values, 10)).pixels
  assert pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 65535
  np.testing.assert_array_equal(pixels >> 6, values)


@pytest.mark.parametrize('kwargs,message', [
    ({'encoding': 1}, 'run-length encoded DPX'),
    ({'packing': 0}, 'packed without filling'),
    ({'sign': 1}, 'signed samples'),
    ({'descriptor': 102}, 'DPX of CbYCr samples'),
    ({'orientation': 4}, 'transposed orientation'),
])
def test_what_is_not_supported_says_what_it_is(kwargs, message):
  with pytest.raises(images.BadImage, match=message):
    images.decode(write_dpx(TEN, 10, **kwargs))


def test_cut_short_or_too_large_says_so():
  data = write_dpx(TEN, 10)
  with pytest.raises(images.BadImage, match='corrupt or truncated DPX'):
    images.decode(data[:-10])
  with pytest.raises(images.BadImage, match='header is cut short'):
    images.decode(data[:700])
  with pytest.raises(images.BadImage, match='over the limit'):
    images.decode(data, max_pixels=40)


def test_dpx_frames_are_found_in_clip_folders(tmp_path):
  assert images.is_frame_name('reel1_0001.dpx') and images.is_frame_name('A.DPX')
  path = tmp_path / 'f.dpx'
  path.write_bytes(write_dpx(TEN, 10))
  from film_net import image_io  # pylint: disable=import-outside-toplevel
  np.testing.assert_allclose(image_io.read_rgb(str(path)), widened(TEN, 10) / 65535, atol=1e-6)
  assert dpx.size(path.read_bytes()) == (9, 5)
  assert os.path.getsize(path) == 2048 + 5 * 9 * 4  # 27 samples a line: 9 words of 3


# -- encoding (`--output_format dpx`) -------------------------------------------------------

TEMPLATES = [dict(bits=10, packing=1, endian='>'), dict(bits=10, packing=2, endian='<',
                                                        line_padding=8),
             dict(bits=12, packing=1, endian='<', orientation=3), dict(bits=12, packing=2),
             dict(bits=16, endian='<', orientation=2), dict(bits=8, orientation=1),
             dict(bits=10, descriptor=51), dict(bits=16, descriptor=52, endian='<'),
             dict(bits=10, descriptor=6, offset=8192)]


@pytest.mark.parametrize('width', [11, 1])  # 1: ABGR's reordered samples came out strided
@pytest.mark.parametrize('layout', TEMPLATES, ids=lambda t: '-'.join(map(str, t.values())))
def test_frames_encoded_after_an_original_follow_its_layout_and_decode_exactly(layout, width):
  bits = layout['bits']
  channels = {50: 3, 51: 4, 52: 4, 6: 1}[layout.get('descriptor', 50)]
  codes = RNG.integers(0, 2 ** bits, (5, width, channels))
  original = write_dpx(codes, **layout)
  header = bytearray(original[:2048])
  header[1920:1924] = b'\x01\x02\x03\x04'  # a time code: the original's alone
  header[1724:1728] = struct.pack('>f', 16.0)  # the scan's frame rate, not the output's
  header[1732:1764] = b'reel 7 frame 1201'.ljust(32, b'\0')  # frame identification
  header[1680:1712] = b'35mm 4-perf'.ljust(32, b'\0')  # film format: the reel's
  header[820:852] = b'Scanner element 0'.ljust(32, b'\0')  # the element's description
  header[1664:1676] = b'KU79 02A1B2C3'[:12]  # key code: stock (the reel's), perf offset, prefix
  header[136:160] = b'2026:01:02:03:04:05Z'.ljust(24, b'\0')  # when the scanner made it
  header[160:260] = b'Scanner 3000'.ljust(100, b'\0')
  original = bytes(header) + original[2048:]
  # A new frame's samples, as the decoder widens them; 8-bit stays 8-bit.
  new_codes = RNG.integers(0, 2 ** bits, (5, width, channels))
  pixels = (new_codes.astype(np.uint8) if bits == 8 else widened(new_codes, bits))
  data = dpx.encode(pixels, templates=(original,), name='frame_000003.dpx')
  np.testing.assert_array_equal(dpx.decode(data), pixels)
  expected = write_dpx(_stored(new_codes, layout.get('orientation', 0),
                               layout.get('descriptor') == 52), **layout)
  offset = layout.get('offset', 2048)
  assert data[offset:] == expected[offset:]  # the same bytes an independent writer lays out
  assert data[800:804] == original[800:804] and data[768:770] == original[768:770]
  assert data[1680:1712] == original[1680:1712] and data[820:852] == original[820:852]
  assert data[1920:1924] == data[1724:1728] == b'\xff' * 4  # time code, frame rate undefined
  assert data[1732:1764] == bytes(32)  # frame identification: none
  assert data[1664:1668] == original[1664:1668] and data[1668:1676] == bytes(8)  # key code
  assert data[136:160] == bytes(24) and data[160:260].rstrip(b'\0') == dpx.CREATOR
  assert data[36:52] == b'frame_000003.dpx'
  endian = layout.get('endian', '>')
  assert int.from_bytes(data[16:20], 'big' if endian == '>' else 'little') == len(data)


def _stored(codes, orientation, abgr):
  """Samples as a file with `orientation` (and ABGR order) stores them: the decoder flips and
  reorders them back."""
  if abgr:
    codes = codes[..., ::-1]
  if orientation & 1:
    codes = codes[:, ::-1]
  if orientation & 2:
    codes = codes[::-1]
  return codes


def test_the_first_template_that_fits_is_followed_else_a_plain_header():
  ten = write_dpx(RNG.integers(0, 1024, (4, 4, 3)), 10)
  eight = write_dpx(RNG.integers(0, 256, (4, 4, 3)), 8)
  sixteen_bit = widened(RNG.integers(0, 1024, (4, 4, 3)), 10)
  data = dpx.encode(sixteen_bit, templates=(eight, ten))  # 8 bit cannot hold it: 10 bit can
  assert data[803] == 10
  np.testing.assert_array_equal(dpx.decode(data), sixteen_bit)
  rgba = RNG.integers(0, 65536, (4, 4, 4)).astype(np.uint16)  # alpha the originals lack
  data = dpx.encode(rgba, templates=(ten, eight))
  assert data[800] == 51 and data[803] == 16
  np.testing.assert_array_equal(dpx.decode(data), rgba)
  assert data[816:820] == bytes(4) and data[820:852] == bytes(32)  # no padding, description
  assert data[852:1356] == b'\xff' * 504  # elements 2-8 undefined
  gray8 = RNG.integers(0, 256, (4, 4, 1)).astype(np.uint8)
  data = dpx.encode(gray8, templates=(b'not a dpx',))
  assert data[800] == 6 and data[803] == 8
  # Text says nothing as NULs (ffmpeg showed an input device of 0xFF bytes); numbers as ones.
  for start, length in ((1432, 100), (1532, 24), (1556, 32), (1588, 32), (1664, 2), (1666, 2),
                        (1668, 2), (1670, 6), (1676, 4), (1680, 32), (1732, 32), (1764, 100)):
    assert data[start:start + length] == bytes(length), start
  assert data[160:260].rstrip(b'\0') == dpx.CREATOR and data[1712:1716] == b'\xff' * 4
  np.testing.assert_array_equal(dpx.decode(data), gray8)


def test_what_a_template_says_of_its_own_data_is_not_copied():
  """End-of-image padding and further image elements describe the original's data, not the
  new frame's: one element, no padding."""
  original = bytearray(write_dpx(RNG.integers(0, 1024, (4, 5, 3)), 10))
  struct.pack_into('>I', original, 816, 4096)  # end-of-image padding
  struct.pack_into('>H', original, 770, 2)  # a second image element ...
  original[852:856] = bytes(4)  # ... its fields, data offset at 852 + 28
  struct.pack_into('>I', original, 852 + 28, len(original))
  pixels = widened(RNG.integers(0, 1024, (4, 5, 3)), 10)
  data = dpx.encode(pixels, templates=(bytes(original),))
  assert struct.unpack_from('>H', data, 770)[0] == 1
  assert struct.unpack_from('>I', data, 816)[0] == 0
  assert data[852:1356] == b'\xff' * 504
  np.testing.assert_array_equal(dpx.decode(data), pixels)


@pytest.mark.parametrize('source', [SOURCE8, SOURCE16], ids=['8bit', '16bit'])
def test_ffmpeg_reads_plain_headers_as_written(ffmpeg, tmp_path, source):
  path = tmp_path / 'plain.dpx'
  path.write_bytes(dpx.encode(source))
  out = tmp_path / 'back.png'
  subprocess.run([ffmpeg, '-v', 'error', '-y', '-i', str(path), str(out)], check=True)
  np.testing.assert_array_equal(images.decode(out.read_bytes()).pixels, source)


@pytest.mark.parametrize('bits', [8, 10, 16])
@pytest.mark.parametrize('endian', ['>', '<'])
def test_an_element_offset_of_zero_means_the_files_image_offset(bits, endian):
  """Writers that leave the image element's data offset (byte 808) at 0 rely on the file's
  (byte 4): read from byte 0, the header would be taken for picture, and as a template it gave
  in-betweens no header at all."""
  codes = RNG.integers(0, 2 ** bits, (4, 6, 3))
  data = bytearray(write_dpx(codes, bits, endian=endian, offset=2048))
  struct.pack_into(endian + 'I', data, 808, 0)
  pixels = codes.astype(np.uint8) if bits == 8 else widened(codes, bits)
  np.testing.assert_array_equal(dpx.decode(bytes(data)), pixels)
  new_codes = RNG.integers(0, 2 ** bits, (4, 6, 3))
  new = new_codes.astype(np.uint8) if bits == 8 else widened(new_codes, bits)
  made = dpx.encode(new, templates=(bytes(data),))
  np.testing.assert_array_equal(dpx.decode(made), new)
  assert made[800:804] == data[800:804] and made[:4] == data[:4]  # the template's layout
