"""``python -m pytest_faef``: the ``faef`` command, for environments where its script is not on PATH."""

import sys

from pytest_faef.cli import main

sys.exit(main())
