"""The MinAtar benchmark: data files of finished runs, and the report built
from them alone (docs/minatar_benchmark.md).

  python -m harmony_v3.scores.minatar collect RUNROOT --out benchmarks/minatar
  python -m harmony_v3.scores.minatar report benchmarks/minatar

One job per module, each importing only the ones before it:

- `benchmark`: games, methods, seeds; the random and reference returns;
- `records`: the data file of one run (read, write, check);
- `collect`: finished run folders -> data files;
- `stats`: bootstrap intervals, normalization, IQM and probability of
  improvement (rliable);
- `summary`: what the report says: per-game results, completeness, missing
  runs, aggregates, harmonizer weights, warnings;
- `formats`: the report as Markdown, CSV and JSON;
- `plots`: learning curves and harmonizer weights (matplotlib);
- `cli`: the command line.
"""
