"""litellm's start and end around a run: imported early in the background, released at the end (issue 20).

``import litellm`` costs seconds; a run that will send requests starts it in a thread while pytest
collects, so that the two overlap. At the end of the session what litellm leaves for interpreter exit
(its logging worker's queue, its cached async HTTP clients) is finished on the loop that made it, and
the objects alive then are frozen out of the garbage collector's reach, so that the process exits as
soon as pytest has printed its last line instead of spending a second or more collecting litellm's
object graph while the interpreter tears down.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import sys
import threading

from pytest_faef.calls.responders import import_litellm

IMPORT_THREAD_NAME = "faef-import-litellm"
_exit_registered = False
# Seconds the end of a session waits for litellm's queued success handlers: they are best-effort logging.
_RELEASE_TIMEOUT = 5.0


def start_import() -> threading.Thread:
    """Import litellm in a background thread; the first caller of ``import_litellm`` waits for it there.

    A daemon thread, so that a run that ends before the import does (a usage error) is not held up by
    it; :func:`finish_import` joins it at the end of the session, so no import is cut off at exit.
    """
    thread = threading.Thread(target=_import_quietly, name=IMPORT_THREAD_NAME, daemon=True)
    thread.start()
    return thread


def _import_quietly() -> None:
    # A failed import is tried again where litellm is needed, and fails there with its reason.
    with contextlib.suppress(Exception):
        import_litellm()


def finish_import(thread: threading.Thread | None) -> None:
    """Wait for an early import still running, so that interpreter exit never meets a half-imported litellm."""
    if thread is not None:
        thread.join()


async def release_litellm() -> None:
    """Finish on this (the requests') event loop what litellm would otherwise leave to interpreter exit.

    Its logging worker's queued success handlers (the user's callbacks, litellm's own bookkeeping) run
    now rather than in an atexit handler on a fresh loop, and its cached async HTTP clients are closed
    on the loop that opened them. Does nothing if litellm was never imported; a litellm without these
    parts (they moved between versions) is left to its own atexit handlers.
    """
    if "litellm" not in sys.modules:
        return
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients
    except ImportError:
        return
    with contextlib.suppress(Exception, asyncio.TimeoutError):
        await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout=_RELEASE_TIMEOUT)
        await GLOBAL_LOGGING_WORKER.stop(timeout=_RELEASE_TIMEOUT)
    with contextlib.suppress(Exception):
        await close_litellm_async_clients()  # type: ignore[no-untyped-call]


def exit_promptly() -> None:
    """At interpreter exit, freeze every object then alive out of the garbage collector's reach.

    After the atexit handlers, the interpreter clears its modules and collects garbage; with litellm
    loaded (some hundred thousand objects) those collections took 1-2 s after pytest's last line.
    Frozen objects are still freed by their reference counts, just never traversed again. Done from an
    atexit handler rather than at the end of the session, so a process that runs many sessions
    (pytester's inline runs) keeps collecting its garbage. Registered once per process.
    """
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(gc.freeze)
