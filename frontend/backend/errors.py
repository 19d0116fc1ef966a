"""What the pages show when a call fails: one message fit for the user, never a traceback."""

from __future__ import annotations

import logging

import trio

from syncrox.errors import LocalProtocolError, RequestRefused, SyncroxError, leaf_exceptions
from syncrox.logs import log_event

logger = logging.getLogger("syncrox.ui")


class BackendError(Exception):
    """A call failed; ``str()`` is a message fit for the user."""


def failed(exc: BaseException, operation: str) -> BackendError:
    """The error a page shows for ``exc``, with one log line saying what failed and why
    (the UI's stderr is ``syncrox-trio run``'s)."""
    message = user_message(exc)
    log_event(logger, "ui.call_failed", logging.WARNING, call=operation, reason=message)
    return exc if isinstance(exc, BackendError) else BackendError(message)


def user_message(exc: BaseException) -> str:
    """One line for the page, for any failure of a call to the services."""
    if isinstance(exc, BackendError):
        return str(exc)
    if isinstance(exc, RequestRefused | LocalProtocolError):
        return exc.message
    if isinstance(exc, trio.TooSlowError):
        return "the server did not answer in time"
    if isinstance(exc, SyncroxError | OSError):
        return f"cannot reach the server: {exc}"
    if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
        # The server went away mid-request (a restart, a crash, a reset connection).
        return "the server closed the connection; try again"
    if isinstance(exc, BaseExceptionGroup):  # raised out of a nursery: say its first cause
        return user_message(leaf_exceptions(exc)[0])
    return f"unexpected error: {type(exc).__name__}: {exc}"
