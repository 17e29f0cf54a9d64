"""When stored replies are replayed and how new ones are asked: the record modes, the drift check's default
sample (docs/store.md), and the transports (docs/options.md).

Record modes, as pytest-recording users know them: ``none`` replays only; ``once`` records only
into a store that did not exist when the run started; ``new`` reuses stored replies (after the
drift check) and requests the missing ones; ``all`` requests everything again.
"""

from __future__ import annotations

RECORD_MODES = ("none", "once", "new", "all")
DEFAULT_DRIFT_SAMPLE = 96  # at most, the stored replies per model asked again before the rest are replayed
# How requests are sent: "auto" sends those to an OpenAI-compatible endpoint of the user's own (openai/... with an
# api base, hosted_vllm/...) by the plugin's own HTTP client and the rest through litellm; "litellm" sends all
# through litellm (calls/openai_compatible).
TRANSPORTS = ("auto", "litellm")
