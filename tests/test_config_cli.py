"""Presets, flags and the training CLI's handling of bad input."""
import pytest

from harmony_v3 import train
from harmony_v3.config import ConfigError, load_config


def test_atari100k_preset_follows_the_paper():
  c = load_config(['atari100k'])
  assert c.rssm.deter == 512 and c.encoder.cnn_depth == 32
  assert c.actor.layers == 2 and c.actor.units == 512
  assert (c.batch_size, c.batch_length) == (16, 64)
  assert c.run.train_ratio == 1024 and c.jax.precision == 'float32'
  assert c.run.steps == 101_000 and c.run.eval_every == 5_000
  assert c.run.eval_eps == 100 and c.envs.amount == 1
  atari = c.env.atari
  assert (atari.repeat, atari.sticky, atari.noops, atari.actions) == (
      4, False, 30, 'needed')
  assert atari.lives == 'unused' and tuple(atari.size) == (64, 64)
  assert atari.max_frames == 108_000
  assert atari.chopper_command_max_frames == 5_400
  assert c.harmony.enabled and c.harmony.rectified
  assert c.loss_scales.dyn == 0.5 and c.loss_scales.rep == 0.1


def test_flags_override_and_baseline_switch():
  c = load_config(['atari100k'], ['--harmony.enabled', 'False',
                                  '--run.steps', '2e4'])
  assert c.harmony.enabled is False and c.run.steps == 2e4


@pytest.mark.parametrize('argv, message', [
    (['--no.such.key', '1'], 'did not match any config keys'),
    (['--run.eval_eps', 'many'], 'many'),
    (['--run.eval_eps', '0'], 'run.eval_eps must be a whole number >= 1'),
    (['--env.atari.actions', 'some'], 'env.atari.actions'),
    (['--jax.precision', 'float8'], 'jax.precision'),
])
def test_bad_keys_and_values_fail_early(argv, message):
  with pytest.raises(ConfigError, match=message):
    load_config(['atari100k'], argv)


def test_fixed_scales_with_harmony_on_warn():
  with pytest.warns(UserWarning, match='no effect with harmony.enabled'):
    load_config(['tiny'], ['--loss_scales.reward', '100'])


def test_unknown_preset_lists_the_available_ones():
  with pytest.raises(ConfigError, match='Available: .*tiny'):
    load_config(['atari100k', 'nope'])


def _main_error(capsys, argv):
  code = train.main(argv)
  return code, capsys.readouterr().err


def test_cli_unknown_game_lists_valid_games(capsys):
  code, err = _main_error(capsys, ['--task', 'atari_pongg', '--configs',
                                   'tiny'])
  assert code == 2
  assert "Unknown Atari 100K game 'pongg'" in err and 'bank_heist' in err


def test_cli_non_atari_task(capsys):
  code, err = _main_error(capsys, ['--task', 'dmlab_rooms_watermaze', '--configs',
                                   'tiny'])
  assert code == 2 and "atari_<game>" in err and 'dmc_<domain>_<task>' in err
  assert 'crafter_reward' in err


def test_cli_bad_flag(capsys):
  code, err = _main_error(capsys, ['--task', 'atari_pong', '--configs', 'tiny',
                                   '--harmony.enabeld', 'False'])
  assert code == 2 and 'harmony.enabeld' in err


def test_default_logdir_names_task_method_and_seed():
  c = train.build_config(['--task', 'atari_breakout', '--seed', '3',
                          '--harmony.enabled', 'False'])
  assert c.logdir.endswith('atari_breakout/dreamerv3/seed3')


def _has_gpu():
  import jax
  try:
    return bool(jax.devices('gpu'))
  except RuntimeError:
    return False


@pytest.mark.skipif(_has_gpu(), reason='needs a machine without a GPU')
def test_missing_gpu_warns_and_falls_back_to_cpu():
  c = load_config(['atari100k'], ['--jax.platform', 'gpu'])
  with pytest.warns(UserWarning, match='No GPU found'):
    c = train.setup_jax(c)
  assert c.jax.platform == 'cpu'


def test_unwritable_logdir_is_a_clear_error(tmp_path):
  from harmony_v3.run.folder import check_logdir
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  c = load_config(['tiny'], ['--logdir', str(blocker / 'run')])
  with pytest.raises(ConfigError, match='Cannot write to logdir'):
    check_logdir(c)


def test_resume_with_another_config_is_refused(tmp_path):
  from harmony_v3.run import checkpoint
  from harmony_v3.run.folder import RunFolder
  c = load_config(['tiny'], ['--logdir', str(tmp_path)])
  checkpoint.save_checkpoint(tmp_path / 'checkpoint.ckpt', {
      'step': 0, 'agent': {}, 'run': {}, 'config': dict(c.flat),
      'replay': {}})
  RunFolder(c).close()
  RunFolder(c.update({'run.steps': 800})).close()  # Allowed: a longer run.
  with pytest.raises(ConfigError, match='harmony.enabled'):
    RunFolder(c.update({'harmony.enabled': False}))
  assert not (tmp_path / 'config.yaml').exists()  # Opening writes nothing.


BAD_INPUT = [
    (['--seed', '-1'], 'seed must be a whole number >= 0, got -1'),
    (['--envs.amount', '0'], 'envs.amount must be a whole number >= 1'),
    (['--replay_size', '0'], 'replay_size must be a whole number of '
                             'sequences >= 64'),
    (['--run.steps', '0.5'], 'run.steps must be a whole number >= 1, got 0.5'),
    (['--run.save_every', '-1'], 'run.save_every must be >= 0 seconds'),
    (['--logdir', ''], 'logdir must not be empty'),
]


@pytest.mark.parametrize('argv, message', BAD_INPUT,
                         ids=[a[0] for a, _ in BAD_INPUT])
def test_bad_values_are_refused_before_anything_is_written(
    capsys, tmp_path, monkeypatch, argv, message):
  """Defects G and J: exit 2 with a clear message, and no file (such as a
  config.yaml that would block the corrected command)."""
  monkeypatch.chdir(tmp_path)
  logdir = tmp_path / 'run'
  if '--logdir' not in argv:
    argv = argv + ['--logdir', str(logdir)]
  code = train.main(['--task', 'atari_pong', '--configs', 'tiny', *argv])
  assert code == 2
  assert message in capsys.readouterr().err
  assert list(tmp_path.iterdir()) == []


ROUND_TWO = [
    (['--harmony.enabled', 'False', '--harmony.mode', 'closed_form'],
     'harmony.mode closed_form has no effect with harmony.enabled False'),
    (['--harmony.enabled', 'False', '--harmony.rectified', 'False'],
     'harmony.rectified False has no effect with harmony.enabled False'),
    (['--run.eval_every', '500'],  # tiny: run.steps 400.
     'run.eval_every (500) is larger than run.steps (400): the trained agent '
     'would never be evaluated'),
    (['--logdir', '/dev/null'], '--logdir /dev/null is not a folder'),
]


@pytest.mark.parametrize('argv, message', ROUND_TWO,
                         ids=['moot_variant', 'moot_rectified',
                              'eval_every_beyond_steps', 'logdir_dev_null'])
def test_flags_that_cannot_apply_are_refused(capsys, tmp_path, monkeypatch,
                                             argv, message):
  """Issue 19, round two: these were accepted without a word (--logdir
  /dev/null trained into the default folder under $HOME). Now exit 2 with
  one message, and the trainer is never reached."""
  from harmony_v3.run import runner
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv('HOME', str(tmp_path))
  trained = []
  monkeypatch.setattr(runner, 'train',
                      lambda config, *a, **k: trained.append(config) or 0)
  if '--logdir' not in argv:
    argv = argv + ['--logdir', str(tmp_path / 'run')]
  code = train.main(['--task', 'atari_pong', '--configs', 'tiny', *argv])
  err = capsys.readouterr().err
  assert (code, trained) == (2, []), [c.logdir for c in trained]
  assert message in err and 'Traceback' not in err
  assert list(tmp_path.iterdir()) == []


def test_the_default_logdir_is_only_for_no_logdir(monkeypatch, tmp_path):
  monkeypatch.setenv('HOME', str(tmp_path))
  c = train.build_config(['--task', 'atari_pong', '--configs', 'tiny'])
  assert c.logdir == str(tmp_path / 'logdir/harmony_v3/atari_pong/harmony/'
                                    'seed0')
  run = tmp_path / 'my run'
  c = train.build_config(['--task', 'atari_pong', '--configs', 'tiny',
                          '--logdir', str(run), '--run.eval_every', '400'])
  assert c.logdir == str(run)


def _help(capsys) -> str:
  with pytest.raises(SystemExit) as exit_:
    train.main(['--help'])
  assert exit_.value.code == 0
  return capsys.readouterr().out


def _section(text: str, title: str) -> str:
  return text.split(title, 1)[1].split('not supported yet:')[0]


def test_help_lists_the_presets_that_work_and_what_the_others_need(capsys):
  text = _help(capsys)
  usable = _section(text, 'presets (--configs):')
  unsupported = text.split('not supported yet:', 1)[1]
  for name, task in (('atari100k', 'atari_pong'), ('tiny', 'atari_pong'),
                     ('cue', 'toy_cue'), ('dmc_vision', 'dmc_walker_walk'),
                     ('dmc_proprio', 'dmc_walker_walk'),
                     ('crafter', 'crafter_reward')):
    assert f'{name}' in usable and f'task {task}' in usable
  assert 'small' in usable and 'keep the task' in usable
  for name, suite in (('loconav', 'loconav'), ('dmlab', 'dmlab'),
                      ('minecraft', 'minecraft')):
    assert name not in usable
    assert f'{name}' in unsupported and f'needs the {suite} environments' in (
        unsupported)
  assert 'multicpu' in unsupported and 'multi-device' in unsupported


def test_a_registered_suite_makes_its_presets_usable(capsys, monkeypatch):
  """As a new suite (MinAtar, say) added to harmony_v3.envs.SUITES."""
  from harmony_v3 import envs
  monkeypatch.setitem(envs.SUITES, 'dmlab', lambda *args: None)
  usable = _section(_help(capsys), 'presets (--configs):')
  assert 'dmlab' in usable and 'task dmlab_explore_goal_locations_small' in (
      usable)


def test_an_unsupported_preset_is_one_clear_error(capsys, tmp_path):
  code, err = _main_error(capsys, ['--configs', 'dmlab', '--logdir',
                                   str(tmp_path / 'run')])
  assert code == 2
  assert ("Preset 'dmlab' trains dmlab_explore_goal_locations_small, but "
          'harmony_v3 has no dmlab environments yet') in err
  assert not (tmp_path / 'run').exists()
  with pytest.raises(ConfigError, match='multi-device training is not '
                                        'supported'):
    load_config(['tiny', 'multicpu'])
