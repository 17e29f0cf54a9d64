from __future__ import annotations

import sys
from pathlib import Path

# The scripted model lives beside the tests; pytester runs (and their xdist workers) import it too.
TESTS_DIR = Path(__file__).parent
sys.path.insert(0, str(TESTS_DIR))
