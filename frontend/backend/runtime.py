"""A live link's own Trio thread: one daemon thread running one ``trio.run``.

Streamlit runs page scripts in ordinary threads and has no server push, so a live link (a
chat connection, a transfer) runs in a thread of its own and keeps what the page shows in
plain Python objects under a lock; a ``st.fragment(run_every=...)`` renders snapshots of
them. Page code calls into the link with ``call`` (``trio.from_thread.run`` with a
deadline). Nothing here touches Streamlit: no Streamlit API is safe off the script thread.

``close`` never blocks: it is called from ``st.cache_resource``'s ``on_release``, which runs
on the UI server's event loop. It asks the link's Trio loop to cancel itself and returns; the
thread ends on its own a moment later (its sockets closed by their ``async with``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from backend.errors import BackendError, failed, user_message

T = TypeVar("T")
logger = logging.getLogger("syncrox.ui.link")
START_TIMEOUT_S = 5.0


class LinkThread:
    """Runs ``main()`` in its own thread and Trio loop until it returns or ``close()``."""

    def __init__(self, name: str, main: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self._main = main
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._started = threading.Event()
        self._closing = False
        self.failure: str | None = None  # why main() ended with an error, for the page
        self._thread = threading.Thread(target=self._run, name=f"syncrox-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(START_TIMEOUT_S)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def closing(self) -> bool:
        return self._closing

    def _run(self) -> None:
        try:
            trio.run(self._guarded)
        except BaseException as exc:
            self.failure = user_message(exc)
            logger.exception("link %s failed", self.name)
        finally:
            self._started.set()

    async def _guarded(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            self._started.set()
            if self._closing:  # closed before it started
                return
            await self._main()

    def call(self, operation: Callable[[], Awaitable[T]], *, timeout_s: float) -> T:
        """Run ``operation`` on the link's loop, from a page's thread, within ``timeout_s``.
        Errors come back as ``BackendError`` with a message fit for the user."""
        token = self._token
        if token is None or not self.alive or self._closing:
            raise BackendError("not connected; try again in a moment")

        async def bounded() -> T:
            with trio.fail_after(timeout_s):
                return await operation()

        try:
            return trio.from_thread.run(bounded, trio_token=token)
        except trio.RunFinishedError as exc:
            raise BackendError("not connected; try again in a moment") from exc
        except Exception as exc:
            raise failed(exc, self.name) from exc

    def post(self, function: Callable[[], object]) -> None:
        """Run a quick synchronous ``function`` on the link's loop soon; never blocks."""
        token = self._token
        if token is None or self._closing:
            return
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(function)

    def close(self) -> None:
        """Ask the link to stop; returns at once (safe from ``on_release``)."""
        self._closing = True
        token, scope = self._token, self._scope
        if token is not None and scope is not None:
            with contextlib.suppress(trio.RunFinishedError):  # already over
                token.run_sync_soon(scope.cancel)

    def join(self, timeout_s: float) -> bool:
        """For tests and shutdown only (never from ``on_release``): wait for the end."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
