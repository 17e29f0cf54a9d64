"""When stored replies are replayed: the record modes and the drift check's default sample (docs/store.md).

Record modes, as pytest-recording users know them: ``none`` replays only; ``once`` records only
into a store that did not exist when the run started; ``new`` reuses stored replies (after the
drift check) and requests the missing ones; ``all`` requests everything again.
"""

from __future__ import annotations

RECORD_MODES = ("none", "once", "new", "all")
DEFAULT_DRIFT_SAMPLE = 8  # stored replies per model asked again before the rest are replayed
