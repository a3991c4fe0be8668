"""``python -m sidecar ...``: the ``tollgate`` command line, for a checkout without the
console script on PATH (the same as ``python -m sidecar.cli``)."""

import sys

from sidecar.cli import main

sys.exit(main())
