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


@pytest.mark.parametrize('text, message', [
    # a traceback deep in the graph, 1.5 taken as 1, "no" taken as true, a str-int comparison
    ('{"filters": 4.5}', "filters must be a whole number, got 4.5"),
    ('{"flow_convs": [1.5, 1, 1, 1]}', r"flow_convs must be a list of whole numbers, got \[1.5"),
    ('{"use_aux_outputs": "no"}', "use_aux_outputs must be true or false, got 'no'"),
    ('{"filters": "16"}', "filters must be a whole number, got '16'"),
    ('{"sub_levels": true}', "sub_levels must be a whole number, got True"),
])
def test_option_values_of_another_type_are_refused_naming_the_option(text, message):
  with pytest.raises(ValueError, match=f'^film_net option {message}'):
    Options.parse(text)


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


@pytest.mark.parametrize('options', [Options.tiny(), Options.compact(), Options.released(),
                                     Options(pyramid_levels=3, fusion_pyramid_levels=1,
                                             specialized_levels=1, sub_levels=2,
                                             flow_convs=(1, 1), flow_filters=(4, 4), filters=4)],
                         ids=['tiny', 'compact', 'released', 'one_fusion_level'])
def test_output_resolution_convs_are_the_fusion_convs_run_on_the_full_frame(options):
  """What precision='bfloat16' keeps in float32: exactly the convs that make the frame itself."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from film_net import layers  # pylint: disable=import-outside-toplevel
  by_name, full_frame = {s.name: s for s in specs.conv_specs(options)}, set()

  def recording_conv(name, x):
    if x.shape[1:3] == (64, 64) and name.startswith('fusion/'):
      full_frame.add(name)
    return tf.zeros([*x.shape[:3], by_name[name].out_channels])

  image = tf.zeros([1, 64, 64, 3])
  features = [layers.frame_features(recording_conv, options, image) for _ in range(2)]
  layers.interpolate_from_features(recording_conv, options, *features[0], *features[1],
                                   aux_outputs=False)
  assert specs.output_resolution_convs(options) == full_frame
  assert specs.fusion_conv_names(options)[-1] in full_frame  # the output conv
