"""warp: bilinear backward warping with edge clamping, as tfa.image.dense_image_warp; the
XLA-fused variant computes the same values."""
import numpy as np
import pytest
import tensorflow as tf

from film_net.warp import default_warp, fused_warp, warp

BOTH = pytest.mark.parametrize('warp_fn', [warp, fused_warp], ids=['ops', 'fused'])


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


@BOTH
def test_matches_reference_including_far_out_of_range_flow(warp_fn):
  rng = np.random.default_rng(0)
  image = rng.random((2, 7, 9, 4), np.float32)
  flow = (rng.standard_normal((2, 7, 9, 2)) * 6).astype(np.float32)
  np.testing.assert_allclose(warp_fn(image, flow).numpy(), _reference_warp(image, flow),
                             atol=1e-6)


@BOTH
def test_integer_shift_reads_the_neighbouring_pixel_and_clamps_at_the_edge(warp_fn):
  image = np.arange(2 * 5 * 6 * 1, dtype=np.float32).reshape(2, 5, 6, 1)
  flow = np.zeros((2, 5, 6, 2), np.float32)
  flow[..., 0] = 2.0  # read two pixels to the right
  expected = image[:, :, np.minimum(np.arange(6) + 2, 5)]
  np.testing.assert_array_equal(warp_fn(image, flow).numpy(), expected)


@BOTH
def test_outside_coordinates_take_the_border_pixel_exactly(warp_fn):
  image = np.random.default_rng(1).random((1, 4, 4, 3), np.float32)
  flow = np.zeros((1, 4, 4, 2), np.float32)
  flow[..., 0] = -0.25 - np.arange(4)[None, None, :]   # x = -0.25 everywhere
  flow[..., 1] = 100.0                                  # far below the last row
  out = warp_fn(image, flow).numpy()
  np.testing.assert_array_equal(out, np.broadcast_to(image[:, 3:4, 0:1], out.shape))


@BOTH
def test_a_nan_flow_samples_nan_where_it_is_and_fails_nowhere(warp_fn):
  """Weights gone to NaN in a diverging training run: the NaN coordinate cast to INT_MIN and
  the CPU gather failed (a TensorFlow traceback) before the run could say it diverged."""
  image = np.random.default_rng(2).random((1, 4, 5, 2), np.float32)
  flow = np.zeros((1, 4, 5, 2), np.float32)
  flow[0, 1, 2, 0] = np.nan  # x alone: y * width + INT_MIN is out of range
  out = warp_fn(image, flow).numpy()
  assert np.isnan(out[0, 1, 2]).all()
  out[0, 1, 2] = image[0, 1, 2]
  np.testing.assert_array_equal(out, image)


@BOTH
def test_gradients_flow_to_image_and_flow(warp_fn):
  image = tf.constant(np.random.default_rng(2).random((1, 6, 6, 2), np.float32))
  flow = tf.constant(np.full((1, 6, 6, 2), 0.5, np.float32))
  with tf.GradientTape() as tape:
    tape.watch([image, flow])
    loss = tf.reduce_sum(warp_fn(image, flow) ** 2)
  g_image, g_flow = tape.gradient(loss, [image, flow])
  assert np.abs(g_image.numpy()).sum() > 0 and np.abs(g_flow.numpy()).sum() > 0


def test_fused_gradients_equal_the_ops_gradients():
  rng = np.random.default_rng(3)
  image = tf.constant(rng.random((2, 9, 11, 5), np.float32))
  flow = tf.constant((rng.standard_normal((2, 9, 11, 2)) * 4).astype(np.float32))
  weights = tf.constant(rng.random((2, 9, 11, 5), np.float32))
  grads = []
  for warp_fn in (warp, fused_warp):
    with tf.GradientTape() as tape:
      tape.watch([image, flow])
      loss = tf.reduce_sum(warp_fn(image, flow) * weights)
    grads.append([g.numpy() for g in tape.gradient(loss, [image, flow])])
  for ops_grad, fused_grad in zip(*grads):
    np.testing.assert_allclose(fused_grad, ops_grad, atol=1e-5)


def test_both_refuse_images_smaller_than_two_pixels():
  image, flow = np.zeros((1, 1, 5, 3), np.float32), np.zeros((1, 1, 5, 2), np.float32)
  for warp_fn in (warp, fused_warp):
    with pytest.raises(tf.errors.InvalidArgumentError, match='at least 2x2'):
      warp_fn(image, flow)


def test_cpu_only_hosts_default_to_the_fused_warp():
  has_gpu = bool(tf.config.list_physical_devices('GPU'))
  assert default_warp() is (warp if has_gpu else fused_warp)
