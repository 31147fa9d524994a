"""Atari 100K score tables and figures, from sweep folders or published curves.

One job per module; each imports only the modules listed before it:

- `benchmark`: the 26 games, the 400K-frame final point, the random and
  human scores, the paper's Table 2;
- `runs`: sweep folders and published-curve JSONs read into `MethodData`;
- `aggregate`: final scores per game, mean and median human-normalized
  scores, IQM and optimality gap with bootstrap intervals;
- `table`: the comparison table (paper columns, then ours) and its bold;
- `formats`: that table as Markdown, CSV and LaTeX;
- `plots`: learning curves and harmonizer weights (imported on demand, so
  the table alone never loads matplotlib);
- `cli`: `python -m harmony_v3.scores`.

In Python:

    from harmony_v3 import scores
    methods = scores.load_paths([str(scores.REFERENCE_DIR /
                                     'harmony_dreamerv3_atari100k.json')])
    table = scores.build_table([scores.summarize(m) for m in methods])
    print(scores.to_markdown(table))
"""
from __future__ import annotations

from harmony_v3.scores.aggregate import (DEFAULT_BOOTSTRAP_SEED, DEFAULT_REPS,
                                         GameResult, Interval, MethodSummary,
                                         bootstrap_intervals, final_scores,
                                         hns_matrix, human_normalized,
                                         paper_aggregates, summarize)
from harmony_v3.scores.benchmark import (DEFAULT_FRAMES, GAMES,
                                         PAPER_AGENT_COLUMNS, PAPER_COLUMNS,
                                         REFERENCE_DIR, RandomHuman,
                                         load_paper_table, load_random_human,
                                         pretty_game)
from harmony_v3.scores.cli import main, parse_args
from harmony_v3.scores.formats import (FORMATS, TABLE_STEM, to_csv, to_latex,
                                       to_markdown, write_outputs)
from harmony_v3.scores.runs import (Curve, MethodData, find_run_dirs,
                                    load_path, load_paths, load_published,
                                    load_sweep, method_label, published_label,
                                    read_config, read_eval_curve,
                                    read_harmony_weights, read_jsonl)
from harmony_v3.scores.table import (AGGREGATE_ROWS, BOLD_TOLERANCE, MISSING,
                                     Cell, Table, apply_bold, build_table,
                                     method_key, paper_key)

__all__ = [
    'AGGREGATE_ROWS', 'BOLD_TOLERANCE', 'Cell', 'Curve',
    'DEFAULT_BOOTSTRAP_SEED', 'DEFAULT_FRAMES', 'DEFAULT_REPS', 'FORMATS',
    'GAMES', 'GameResult', 'Interval', 'MISSING', 'MethodData',
    'MethodSummary', 'PAPER_AGENT_COLUMNS', 'PAPER_COLUMNS', 'REFERENCE_DIR',
    'RandomHuman', 'TABLE_STEM', 'Table', 'apply_bold', 'bootstrap_intervals',
    'build_table', 'final_scores', 'find_run_dirs', 'hns_matrix',
    'human_normalized', 'load_paper_table', 'load_path', 'load_paths',
    'load_published', 'load_random_human', 'load_sweep', 'main', 'method_key',
    'method_label', 'paper_aggregates', 'paper_key', 'parse_args',
    'pretty_game', 'published_label', 'read_config', 'read_eval_curve',
    'read_harmony_weights', 'read_jsonl', 'summarize', 'to_csv', 'to_latex',
    'to_markdown', 'write_outputs',
]
