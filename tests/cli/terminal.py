"""Driving a program in a pseudo-terminal as a person would: read what it shows, press keys.

The program gets the terminal as its controlling terminal, so it sees a real tty (single keypresses,
window size) and Ctrl-C sent as a key reaches it as SIGINT, as it would from a keyboard.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def plain(text: str) -> str:
    """Terminal output as a reader sees its words: escape sequences removed, line ends as newlines."""
    return _ESCAPES.sub("", text).replace("\r\n", "\n").replace("\r", "")


def _take_terminal() -> None:
    """In the child, after setsid: make its standard input, the pseudo-terminal, its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """One process running in its own pseudo-terminal of a fixed size, with ``TERM=xterm``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        rows: int = 50,
        columns: int = 200,
    ) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        environment = {**os.environ, **(env or {}), "TERM": "xterm", "COLUMNS": str(columns), "LINES": str(rows)}
        try:
            self.process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=environment,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                preexec_fn=_take_terminal,
            )
        finally:
            os.close(slave)
        self._master = master
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._raw = ""
        self._closed = False
        self._seen = 0  # where the next expect starts looking
        self.output = ""  # everything shown so far, as plain text

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def expect(self, text: str, timeout: float = 20) -> str:
        """Wait until ``text`` is shown after what the previous expect matched; the output up to its end."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.output.find(text, self._seen)
            if found >= 0:
                start, self._seen = self._seen, found + len(text)
                return self.output[start : self._seen]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                ending = "the program closed the terminal" if self._closed else f"not within {timeout} s"
                raise AssertionError(
                    f"{text!r} was not shown ({ending}); after the last match the terminal shows:\n"
                    + self.output[self._seen :]
                )
            self._read(remaining)

    def send(self, keys: str) -> None:
        """Type ``keys``: "\\r" is Enter, "\\x03" is Ctrl-C."""
        os.write(self._master, keys.encode())

    def wait(self, timeout: float = 20) -> int:
        """Read the rest of the output until the program closes the terminal; its exit status."""
        deadline = time.monotonic() + timeout
        while not self._closed and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        return self.process.wait(timeout=max(deadline - time.monotonic(), 0.1))

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self._master)

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self._master], [], [], max(timeout, 0))
        if not ready:
            return
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: every process holding the terminal has closed it
            data = b""
        if not data:
            self._closed = True
            return
        self._raw += self._decoder.decode(data)
        self.output = plain(self._raw)
