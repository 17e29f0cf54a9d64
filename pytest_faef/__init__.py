"""pytest-faef: alignment regression tests for LLMs, after the FAEF (Fake Alignment) framework."""

from __future__ import annotations

__version__ = "0.1.0"
