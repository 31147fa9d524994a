"""`python -m harmony_v3.scores`: see `harmony_v3.scores.cli`."""
import sys

from harmony_v3.scores.cli import main

sys.exit(main())
