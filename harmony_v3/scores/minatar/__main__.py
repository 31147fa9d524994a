"""python -m harmony_v3.scores.minatar (see cli.py)."""
import sys

from harmony_v3.scores.minatar.cli import main

sys.exit(main())
