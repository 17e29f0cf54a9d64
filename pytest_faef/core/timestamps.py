"""Moments as the reports show them: ISO 8601 in the JSON, minutes in the terminal, always UTC."""

from __future__ import annotations

import datetime


def iso_time(seconds: float) -> str:
    """Epoch seconds as ISO 8601 in UTC, to the second: ``2026-12-01T11:15:45+00:00``."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


def short_time(seconds: float) -> str:
    """Epoch seconds as ``2026-12-01 11:15`` in UTC, for the terminal."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def span(first: float, last: float) -> str:
    """``2026-11-30 10:02 to 2026-12-01 09:15 UTC``, or one moment when both fall in the same minute."""
    start, end = short_time(first), short_time(last)
    return f"{start} UTC" if start == end else f"{start} to {end} UTC"
