"""``python -m icgt``: the icgt command line."""

import sys

from .cli import main

sys.exit(main())
