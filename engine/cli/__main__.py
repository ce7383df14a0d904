"""``python -m engine.cli``: the ``engine`` command."""

import sys

from .main import main

sys.exit(main())
