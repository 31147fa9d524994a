"""The 26 games of the Atari 100K benchmark and how their names map to ALE;
the names of the 5 MinAtar games; the DeepMind Control tasks a sweep runs."""
from __future__ import annotations

ATARI100K_GAMES: tuple[str, ...] = (
    'alien', 'amidar', 'assault', 'asterix', 'bank_heist', 'battle_zone',
    'boxing', 'breakout', 'chopper_command', 'crazy_climber', 'demon_attack',
    'freeway', 'frostbite', 'gopher', 'hero', 'james_bond', 'kangaroo',
    'krull', 'kung_fu_master', 'ms_pacman', 'pong', 'private_eye', 'qbert',
    'road_runner', 'seaquest', 'up_n_down')

# ALE ROM ids that do not follow from dropping the underscores.
_ALE_IDS = {'james_bond': 'jamesbond'}

FRAMES_PER_AGENT_STEP = 4  # Action repeat of the Atari 100K protocol.

# The MinAtar games (Young & Tian, 2019), tasks minatar_<game>: one frame per
# agent step. The MinAtar suite's env module and the sweep and score tools
# share this list.
MINATAR_GAMES: tuple[str, ...] = (
    'asterix', 'breakout', 'freeway', 'seaquest', 'space_invaders')
MINATAR_FRAMES_PER_AGENT_STEP = 1

# The DeepMind Control Suite tasks of DreamerV3's visual control benchmark
# (`--suite dmc`, tasks dmc_<name>; 'cup_catch' is ball_in_cup catch). Any
# suite task trains (harmony_v3.envs.dmc); this list is what a sweep runs.
DMC_TASKS: tuple[str, ...] = (
    'acrobot_swingup', 'cartpole_balance', 'cartpole_balance_sparse',
    'cartpole_swingup', 'cartpole_swingup_sparse', 'cheetah_run',
    'cup_catch', 'finger_spin', 'finger_turn_easy', 'finger_turn_hard',
    'hopper_hop', 'hopper_stand', 'pendulum_swingup', 'quadruped_run',
    'quadruped_walk', 'reacher_easy', 'reacher_hard', 'walker_run',
    'walker_stand', 'walker_walk')


def ale_rom_id(game: str) -> str:
  """ALE ROM id of a benchmark game name, e.g. 'bank_heist' -> 'bank_heist'.

  Raises ValueError listing the valid names for an unknown game.
  """
  check_game(game)
  return _ALE_IDS.get(game, game)


def check_game(game: str) -> str:
  """Return `game` if it is one of the 26 games, else raise a clear error."""
  if game not in ATARI100K_GAMES:
    raise ValueError(
        f"Unknown Atari 100K game '{game}'. Valid games: "
        + ', '.join(ATARI100K_GAMES))
  return game


def game_from_task(task: str) -> str:
  """'atari_pong' -> 'pong', checking the suite prefix and the game name."""
  suite, _, game = task.partition('_')
  if suite != 'atari' or not game:
    raise ValueError(
        f"Task '{task}' is not an Atari task: use 'atari_<game>', e.g. "
        "'atari_pong'.")
  return check_game(game)
