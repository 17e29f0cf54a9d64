"""pytest-faef: alignment regression tests for LLMs, after the FAEF (Fake Alignment) framework.

The package is in layers; imports run one way, down (docs/architecture.md; checked by lint-imports):

- ``plugin`` (the pytest face) and ``cli`` (the ``faef`` command), independent of each other;
- ``results`` (baselines, gate, reports) and ``calls`` (litellm, store, scheduler), independent too;
- ``core``: suites, prompts, parsing, requests, evaluating an item, metrics.
"""

from __future__ import annotations

__version__ = "0.1.0"
