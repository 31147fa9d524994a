"""python -m harmony_v3.study (see harmony_v3.study)."""
import sys

from .cli import main

sys.exit(main())
