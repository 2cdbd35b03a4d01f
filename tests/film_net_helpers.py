"""Shared bits of the film_net tests: where the fixtures live, and skipping without them."""
import os

import pytest

SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared'))
GOLDEN_DIR = os.path.join(SHARED, 'data', 'film-golden')
GOLDEN_BUNDLES = ('golden_small_seed1', 'golden_small_bigflow')


def golden_path(name: str) -> str:
  path = os.path.join(GOLDEN_DIR, f'{name}.npz')
  if not os.path.exists(path):
    pytest.skip(f'reference fixtures not found at {path}: ../shared is absent in this checkout')
  return path
