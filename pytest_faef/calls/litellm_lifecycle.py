"""litellm's end of a run: released at the end of the session, so the process exits promptly (issue 20).

At the end of the session what litellm leaves for interpreter exit
(its logging worker's queue, its cached async HTTP clients) is finished on the loop that made it, and
the objects alive then are frozen out of the garbage collector's reach, so that the process exits as
soon as pytest has printed its last line instead of spending seconds walking litellm's object graph
in the full garbage collections that follow it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import sys

_exit_registered = False
_frozen = False
# Seconds the end of a session waits for litellm's queued success handlers: they are best-effort logging.
_RELEASE_TIMEOUT = 5.0


async def release_litellm() -> None:
    """Finish on this (the requests') event loop what litellm would otherwise leave to interpreter exit.

    Its logging worker's queued success handlers (the user's callbacks, litellm's own bookkeeping) run
    now rather than in an atexit handler on a fresh loop; its cached async HTTP clients are closed on the
    loop that opened them by the responder's ``aclose`` (:func:`close_litellm_clients`), after this. Does
    nothing if litellm was never imported; a litellm without these parts (they moved between versions) is
    left to its own atexit handlers.
    """
    if "litellm" not in sys.modules:
        return
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:
        return
    # Only a worker whose queue lives on this loop: one left on an earlier loop (an earlier session in
    # this process) would be moved here with a warning, and tasks of a closed loop never finish.
    if getattr(GLOBAL_LOGGING_WORKER, "_bound_loop", None) is asyncio.get_running_loop():
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout=_RELEASE_TIMEOUT)
            await GLOBAL_LOGGING_WORKER.stop(timeout=_RELEASE_TIMEOUT)


async def close_litellm_clients() -> None:
    """Close the async HTTP clients litellm cached for the running loop, if litellm was ever imported."""
    if "litellm" not in sys.modules:
        return
    try:
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients
    except ImportError:
        return
    with contextlib.suppress(Exception):
        await close_litellm_async_clients()  # type: ignore[no-untyped-call]


def exit_promptly() -> None:
    """Collect the young garbage, then freeze every object still alive out of the garbage collector's
    reach, until :func:`thaw` or exit.

    Called first in pytest's unconfigure after a run that evaluated items: after it, pytest's
    unraisable-exception plugin runs a full collection, and the interpreter collects again as it tears
    down; with litellm loaded (some hundred thousand long-lived objects) each took 0.3 s or more, and
    a full collection here would cost the same. The young generations hold what the session's last
    items left behind: collected here, while pytest's unraisable hook still reports what their
    finalizers raise. Frozen objects are still freed by their reference counts, just never traversed.
    The next session in the same process (pytester's inline runs) thaws them, so no cycle stays
    uncollected for longer than one session; an atexit handler freezes what came after.
    """
    global _exit_registered, _frozen
    gc.collect(1)
    gc.freeze()
    _frozen = True
    if not _exit_registered:
        _exit_registered = True
        atexit.register(gc.freeze)


def thaw() -> None:
    """Hand the objects :func:`exit_promptly` froze back to the collector (a new session in this process)."""
    global _frozen
    if _frozen:
        gc.unfreeze()
        _frozen = False
