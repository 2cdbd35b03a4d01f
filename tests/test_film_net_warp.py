"""warp: bilinear backward warping with edge clamping, as tfa.image.dense_image_warp."""
import numpy as np
import tensorflow as tf

from film_net.warp import warp


def _reference_warp(image, flow):
  """Per-pixel loop of the tfa algorithm: floor clamped to [0, n-2], alpha clamped to [0, 1]."""
  b, h, w, _ = image.shape
  out = np.zeros_like(image)
  for n in range(b):
    for y in range(h):
      for x in range(w):
        qy, qx = y + flow[n, y, x, 1], x + flow[n, y, x, 0]
        fy = int(min(max(np.floor(qy), 0), h - 2))
        fx = int(min(max(np.floor(qx), 0), w - 2))
        ay = min(max(qy - fy, 0.0), 1.0)
        ax = min(max(qx - fx, 0.0), 1.0)
        top = image[n, fy, fx] + ax * (image[n, fy, fx + 1] - image[n, fy, fx])
        bottom = image[n, fy + 1, fx] + ax * (image[n, fy + 1, fx + 1] - image[n, fy + 1, fx])
        out[n, y, x] = top + ay * (bottom - top)
  return out


def test_matches_reference_including_far_out_of_range_flow():
  rng = np.random.default_rng(0)
  image = rng.random((2, 7, 9, 4), np.float32)
  flow = (rng.standard_normal((2, 7, 9, 2)) * 6).astype(np.float32)
  np.testing.assert_allclose(warp(image, flow).numpy(), _reference_warp(image, flow), atol=1e-6)


def test_integer_shift_reads_the_neighbouring_pixel_and_clamps_at_the_edge():
  image = np.arange(2 * 5 * 6 * 1, dtype=np.float32).reshape(2, 5, 6, 1)
  flow = np.zeros((2, 5, 6, 2), np.float32)
  flow[..., 0] = 2.0  # read two pixels to the right
  expected = image[:, :, np.minimum(np.arange(6) + 2, 5)]
  np.testing.assert_array_equal(warp(image, flow).numpy(), expected)


def test_outside_coordinates_take_the_border_pixel_exactly():
  image = np.random.default_rng(1).random((1, 4, 4, 3), np.float32)
  flow = np.zeros((1, 4, 4, 2), np.float32)
  flow[..., 0] = -0.25 - np.arange(4)[None, None, :]   # x = -0.25 everywhere
  flow[..., 1] = 100.0                                  # far below the last row
  out = warp(image, flow).numpy()
  np.testing.assert_array_equal(out, np.broadcast_to(image[:, 3:4, 0:1], out.shape))


def test_gradients_flow_to_image_and_flow():
  image = tf.constant(np.random.default_rng(2).random((1, 6, 6, 2), np.float32))
  flow = tf.constant(np.full((1, 6, 6, 2), 0.5, np.float32))
  with tf.GradientTape() as tape:
    tape.watch([image, flow])
    loss = tf.reduce_sum(warp(image, flow) ** 2)
  g_image, g_flow = tape.gradient(loss, [image, flow])
  assert np.abs(g_image.numpy()).sum() > 0 and np.abs(g_flow.numpy()).sum() > 0
