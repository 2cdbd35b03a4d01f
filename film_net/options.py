"""Model options for film_net.

The fields and their meaning follow FILM's `models/film_net/options.Options`. The released
L1/VGG/Style checkpoints all use `Options.released()`; `Options.tiny()` is for fast tests.
"""
from __future__ import annotations

import dataclasses
import json
import numbers
from typing import Any


@dataclasses.dataclass(frozen=True)
class Options:
  """Architecture of a film_net model (what the weight shapes and graph depend on)."""
  pyramid_levels: int = 5
  fusion_pyramid_levels: int = 5
  specialized_levels: int = 3
  sub_levels: int = 4
  flow_convs: tuple[int, ...] = (4, 4, 4, 4)
  flow_filters: tuple[int, ...] = (64, 128, 256, 256)
  filters: int = 16
  use_aux_outputs: bool = True

  def __post_init__(self):
    # Values of another type went on: 4.5 filters failed deep in the graph in a traceback,
    # flow_convs 1.5 became 1, use_aux_outputs "no" was true.
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.name == 'use_aux_outputs':
        fits, kind = isinstance(value, bool), 'true or false'
      elif field.name in ('flow_convs', 'flow_filters'):
        fits = isinstance(value, (list, tuple)) and all(map(is_whole_number, value))
        kind = 'a list of whole numbers'
      else:
        fits, kind = is_whole_number(value), 'a whole number'
      if not fits:
        raise ValueError(f'film_net option {field.name} must be {kind}, got {value!r}')
      if kind == 'a whole number':
        object.__setattr__(self, field.name, int(value))  # numpy's ints become Python's
    # Lists from JSON or callers become tuples, so options stay hashable and comparable.
    object.__setattr__(self, 'flow_convs', tuple(int(v) for v in self.flow_convs))
    object.__setattr__(self, 'flow_filters', tuple(int(v) for v in self.flow_filters))
    self.validate()

  @classmethod
  def released(cls) -> 'Options':
    """The configuration of the released film_net L1 / VGG / Style models."""
    return cls(pyramid_levels=7, fusion_pyramid_levels=5, specialized_levels=3,
               sub_levels=4, flow_convs=(3, 3, 3, 3), flow_filters=(32, 64, 128, 256),
               filters=64)

  @classmethod
  def compact(cls) -> 'Options':
    """The built-in default model: the released structure at a quarter of the feature widths
    (half to a quarter of the flow widths), about 1/16 of the released FLOPs. Seven levels like
    the released model: the seventh, at 1/64 scale, costs little and gives the flow context on
    large plain surfaces."""
    return cls(pyramid_levels=7, fusion_pyramid_levels=5, specialized_levels=3,
               sub_levels=4, flow_convs=(3, 3, 3, 3), flow_filters=(16, 32, 64, 64),
               filters=16)

  PRESETS = ('compact', 'released', 'tiny')  # the class methods `preset` takes by name

  @classmethod
  def preset(cls, name: str) -> 'Options':
    if name not in cls.PRESETS:
      raise ValueError(f'unknown options preset {name!r}; choose from {list(cls.PRESETS)}')
    return getattr(cls, name)()

  @classmethod
  def parse(cls, text: str) -> 'Options':
    """A preset name ('compact') or a JSON object of fields, as command lines take them."""
    text = text.strip()
    return cls.from_dict(json.loads(text)) if text.startswith('{') else cls.preset(text)

  @classmethod
  def tiny(cls) -> 'Options':
    """A very small model for tests: same structure, a few thousand parameters per conv."""
    return cls(pyramid_levels=4, fusion_pyramid_levels=4, specialized_levels=2,
               sub_levels=2, flow_convs=(1, 1, 1), flow_filters=(4, 8, 8), filters=4)

  def validate(self) -> None:
    """Raises ValueError for settings the graph cannot be built with."""
    if self.pyramid_levels < self.fusion_pyramid_levels:
      raise ValueError('pyramid_levels must be greater than or equal to fusion_pyramid_levels '
                       f'(got {self.pyramid_levels} < {self.fusion_pyramid_levels}).')
    if self.fusion_pyramid_levels < 1 or self.sub_levels < 1 or self.specialized_levels < 0:
      raise ValueError('fusion_pyramid_levels and sub_levels must be >= 1 and '
                       f'specialized_levels >= 0; got {self}.')
    if self.filters < 1:
      raise ValueError(f'filters must be positive, got {self.filters}.')
    expected = self.specialized_levels + 1
    if len(self.flow_convs) != expected or len(self.flow_filters) != expected:
      raise ValueError(f'flow_convs and flow_filters need specialized_levels + 1 = {expected} '
                       f'entries (the last is the shared predictor); got '
                       f'{list(self.flow_convs)} and {list(self.flow_filters)}.')
    if self.pyramid_levels > self.specialized_levels and self.specialized_levels < self.sub_levels - 1:
      raise ValueError('the shared flow predictor needs equal feature channels on every level it '
                       'runs on: specialized_levels must be >= sub_levels - 1 (got '
                       f'{self.specialized_levels} and {self.sub_levels}).')
    if min(self.flow_convs) < 0 or min(self.flow_filters) < 2:
      raise ValueError('flow_convs must be >= 0 and flow_filters >= 2; got '
                       f'{list(self.flow_convs)} and {list(self.flow_filters)}.')

  @property
  def min_size(self) -> int:
    """The smallest frame side the graph runs on: >= 1 px at the coarsest pyramid level and
    >= 2 px (for the warp) at the coarsest fusion level."""
    return max(2 ** (self.pyramid_levels - 1), 2 ** self.fusion_pyramid_levels)

  @property
  def align(self) -> int:
    """Frame sizes divisible by this make every pyramid level exact."""
    return 2 ** (self.pyramid_levels - 1)

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d['flow_convs'] = list(self.flow_convs)
    d['flow_filters'] = list(self.flow_filters)
    return d

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> 'Options':
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
      raise ValueError(f'unknown film_net options: {sorted(unknown)}')
    return cls(**d)


def is_whole_number(value) -> bool:
  """An int (numpy's too), not a bool; floats are refused even when whole (3.0)."""
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)
