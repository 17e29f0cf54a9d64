"""Where pytest-faef keeps its files in a project, all under ``.faef/``: relative to the rootdir in the
plugin, to the current directory in the ``faef`` command.

The response store stays local (or is shared as a CI artifact); baselines and human verdicts are
meant to be committed.
"""

from __future__ import annotations

STORE = ".faef/responses.sqlite"
HUMAN_VERDICTS = ".faef/human-verdicts.jsonl"
BASELINE_DIR = ".faef/baselines"
PERTURBATIONS = ".faef/perturbations"  # minimal failing variants, replayed first (docs/robustness.md)
DEFAULT_BASELINE = "default"  # the baseline saved or compared with when none is named
