"""summary.json is folded from the records however Beam splits them among workers, and only
errors proper (not notices) or failed pairs make a run 'failed'."""

import json
import os

from transforms import records


def _pair(status):
  return ('pair', records.pair_record('r', 'clip', 0, ['a', 'b'], (8, 8), 3, status, {}))


def _error(message, severity='error'):
  return ('error', records.error_record('r', ['a'], 'discover', ValueError(), message, severity))


def _summary(tmp_path, elements, split):
  fold = records.SummarizeFn()
  parts = [fold.create_accumulator() for _ in range(split)]
  for k, element in enumerate(elements):
    fold.add_input(parts[k % split], element)
  merged = fold.merge_accumulators(parts)
  summary, = records.WriteSummary(str(tmp_path), 'r', 0, {}).process(merged)
  assert json.load(open(os.path.join(tmp_path, '_runs', 'r', 'summary.json'))) == summary
  return summary


def test_notices_are_counted_and_listed_apart_and_fail_nothing(tmp_path):
  elements = [_pair('ok'), _error('one frame', 'notice'), _pair('skipped'),
              _error('lost scan', 'notice')]
  for split in (1, 3):
    summary = _summary(tmp_path, elements, split)
    assert summary['status'] == 'ok' and summary['errors'] == 0 and summary['notices'] == 2
    assert summary['notice_messages'] == ['lost scan', 'one frame']
    assert summary['failures'] == []
  summary = _summary(tmp_path, elements + [_error('truncated')], 2)
  assert summary['status'] == 'failed' and summary['failures'] == ['truncated']
  assert (summary['errors'], summary['notices']) == (1, 2)
  assert _summary(tmp_path, elements + [_pair('failed')], 2)['status'] == 'failed'


def test_the_counts_are_of_every_pair_and_frame_and_held_pairs_only_where_made(tmp_path):
  """pairs.total counts ok, skipped and failed; frames_written adds lone frames; a held pair
  (a cut, one image twice) counts only where its frames were written, as the metrics do."""
  def held(status, frames):
    return ('pair', records.pair_record('r', 'clip', 0, ['a', 'b'], (8, 8), frames, status, {},
                                        'boom' if status == 'failed' else None,
                                        scene_cut=True, identical=True))
  elements = [_pair('ok'), _pair('skipped'), _pair('failed'), held('ok', 3), held('failed', 0),
              ('frames', {'clip': 'one', 'frames_written': 1})]
  for split in (1, 2, 4):
    summary = _summary(tmp_path, elements, split)
    assert summary['pairs'] == {'total': 5, 'ok': 2, 'skipped': 1, 'failed': 2}
    assert summary['frames_written'] == 3 + 3 + 3 + 3 + 0 + 1
    assert summary['scene_cuts'] == summary['identical_pairs'] == 1


def test_the_fifty_messages_listed_of_each_kind_are_the_same_however_folded(tmp_path):
  errors = [_error(f'e{k:02d}') for k in range(60)]
  notices = [_error(f'n{k:02d}', 'notice') for k in range(60)]
  first = _summary(tmp_path, errors + notices, 4)
  again = _summary(tmp_path, notices[::-1] + errors[::-1], 3)
  assert first['failures'] == again['failures'] == [f'e{k:02d}' for k in range(50)]
  assert first['notice_messages'] == again['notice_messages'] == [f'n{k:02d}' for k in range(50)]
  assert (first['errors'], first['notices']) == (60, 60)


def test_a_failure_recorded_while_the_run_is_stopped_is_the_stops():
  """A stop's KeyboardInterrupt raised inside a library call (a 16-bit PNG's decode in
  TensorFlow) can come out as another error: the pair was recorded failed by a 'corrupt' frame,
  the run went on and exited 1. Once a stop is requested, a failed pair or an error record
  raises KeyboardInterrupt instead; ok and skipped pairs are recorded as ever."""
  from transforms import stopping  # pylint: disable=import-outside-toplevel
  stopping.request()
  try:
    for make in (lambda: _pair('failed'), lambda: _error('corrupt')):
      try:
        make()
      except KeyboardInterrupt:
        pass
      else:
        raise AssertionError('recorded as a failure of the input')
    assert _pair('ok')[1]['status'] == 'ok' and _pair('skipped')[1]['status'] == 'skipped'
  finally:
    stopping.clear()
  assert _pair('failed')[1]['status'] == 'failed'
