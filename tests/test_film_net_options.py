"""Options: presets, validation, serialisation."""
import pytest

from film_net import Options, create_model, keras_inputs
from film_net import specs


def test_released_preset_has_the_released_parameter_count():
  convs = specs.conv_specs(Options.released())
  params = sum(s.kernel_size ** 2 * s.in_channels * s.out_channels + s.out_channels for s in convs)
  assert len(convs) == 41
  assert params == 34_436_667


def test_fewer_pyramid_levels_than_fusion_levels_is_rejected():
  with pytest.raises(ValueError, match='fusion_pyramid_levels'):
    Options(pyramid_levels=3, fusion_pyramid_levels=5)


@pytest.mark.parametrize('kwargs, message', [
    ({'flow_convs': (3, 3, 3)}, 'specialized_levels \\+ 1'),
    ({'filters': 0}, 'filters must be positive'),
    ({'specialized_levels': 1, 'sub_levels': 4, 'flow_convs': (3, 3), 'flow_filters': (8, 8)},
     'shared flow predictor'),
])
def test_impossible_settings_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match=message):
    Options(**kwargs)


def test_create_model_validates_config():
  bad = Options.tiny()
  object.__setattr__(bad, 'fusion_pyramid_levels', bad.pyramid_levels + 1)
  with pytest.raises(ValueError, match='fusion_pyramid_levels'):
    create_model(*keras_inputs(), bad)


def test_json_round_trip_and_unknown_keys():
  for name in ('released', 'compact', 'tiny'):
    options = Options.preset(name)
    assert Options.from_dict(options.to_dict()) == options
  with pytest.raises(ValueError, match='unknown film_net options'):
    Options.from_dict({**Options.tiny().to_dict(), 'widths': 3})
  with pytest.raises(ValueError, match='unknown options preset'):
    Options.preset('huge')
  assert Options.parse('compact') == Options.compact()
  assert Options.parse(' ' + Options.tiny().to_json()) == Options.tiny()
  with pytest.raises(ValueError, match='unknown options preset'):
    Options.parse('huge')
