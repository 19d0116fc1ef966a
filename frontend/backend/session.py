"""Every live link of one browser session, so that leaving or closing the tab ends them all.

The UI keeps one ``SessionLinks`` per browser session in a session-scoped
``st.cache_resource`` whose ``on_release`` is ``close_all``: Streamlit releases it when the
tab closes (its websocket drops) and the page calls it when the user leaves the room. The
original kept users present after they left (sockets never closed); here every link of the
session is cancelled, without blocking the UI server.
"""

from __future__ import annotations

import threading
from typing import Protocol

from backend.chat import ChatLink
from syncrox.client.endpoints import Endpoints

MAX_JOBS = 8  # transfers one browser session may run or keep results of at once


class Closable(Protocol):
    def close(self) -> None: ...


class SessionLinks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chat: ChatLink | None = None
        self._jobs: dict[str, Closable] = {}
        self.closed = False

    def chat(self, where: Endpoints, room: str, user: str, token: str) -> ChatLink:
        """This session's chat link for that membership, started on first use."""
        with self._lock:
            link = self._chat
            if link is not None and (link.room, link.user, link.token) == (room, user, token):
                return link
            if link is not None:
                link.close()
            self._chat = ChatLink(where, room, user, token).start()
            return self._chat

    def current_chat(self) -> ChatLink | None:
        with self._lock:
            return self._chat

    def add_job(self, key: str, job: Closable) -> None:
        with self._lock:
            old = self._jobs.pop(key, None)
            if old is not None:
                old.close()
            while len(self._jobs) >= MAX_JOBS:  # the oldest (most likely finished) goes
                self._jobs.pop(next(iter(self._jobs))).close()
            self._jobs[key] = job

    def job(self, key: str) -> Closable | None:
        with self._lock:
            return self._jobs.get(key)

    def close_all(self) -> None:
        """End every link; returns at once (safe from ``on_release``)."""
        with self._lock:
            self.closed = True
            links: list[Closable] = [*self._jobs.values()]
            if self._chat is not None:
                links.append(self._chat)
            self._chat, self._jobs = None, {}
        for link in links:
            link.close()
