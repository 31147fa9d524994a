"""python -m harmony_v3.study (see harmony_v3.study)."""
import sys

from .cli import main

if __name__ == '__main__':  # Not in the study's worker processes (spawn).
  sys.exit(main())
