"""The hooks pytest-faef adds, for a project's conftest.py or another plugin to implement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@pytest.hookspec
def pytest_faef_perturbations(config: pytest.Config) -> Mapping[str, SearchStrategy[Any]] | None:
    """Perturbation families of a project's own, by name (docs/robustness.md).

    Each is a hypothesis strategy of *changes*: callables ``(question, presentation) -> (question, presentation)``
    (``presentation`` a ``pytest_faef.core.presentation.Presentation``). ``--faef-perturb-kinds`` names the
    families a run draws from; a name must be new (not ``typo``, ``case``, ``space``, ``labels`` or ``format``).
    Called once per session (per xdist worker) after collection, only when ``--faef-perturb`` is on.
    """
