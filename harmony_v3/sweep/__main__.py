"""`python -m harmony_v3.sweep`: the sweep's command line (see cli.py)."""
import sys

from .cli import main

sys.exit(main())
