"""Text from outside (an endpoint's error body, its headers, a model's name) made safe to show (issue 33).

A terminal obeys the control characters in what it prints: an error body holding ``ESC [2J`` clears the screen,
an OSC sequence sets the window's title or plants a hyperlink to another site, and bidirectional overrides make
text read differently from what it is. Whatever the terminal, the HTML report or the Markdown summary shows of
such text is first made printable here: each control character becomes its visible escape (``\\x1b``), the rest is
left as it was.
"""

from __future__ import annotations

import re

# C0 controls but the line break and the tab, DEL, C1 controls, and the bidirectional embeddings, overrides and
# isolates that reorder how text reads (the "Trojan Source" characters).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control character shown as its escape; ``one_line`` shows line breaks and tabs too."""
    shown = _UNPRINTABLE.sub(_escape, text)
    if one_line:
        shown = shown.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return shown
