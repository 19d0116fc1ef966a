"""Registry of every fuzz target: name -> pure function of bytes.

Each area keeps its targets in ``fuzz/targets_<area>.py`` and adds them here. Invariant of
every target: it returns, or raises ``ProtocolError``; anything else is a bug. Each target
needs a seed corpus in ``fuzz/corpus/<name>/`` (``tests/fuzz`` replays it).
"""

from __future__ import annotations

from collections.abc import Callable

from fuzz import targets_chat, targets_collab, targets_exec, targets_files, targets_foundation

TARGETS: dict[str, Callable[[bytes], None]] = {
    "framing": targets_foundation.framing,
    "rooms_command": targets_foundation.rooms_command,
    "chat_line": targets_chat.chat_line,
    "chat_server_line": targets_chat.chat_server_line,
    "rudp_json": targets_files.rudp_json,
    "rudp_binary": targets_files.rudp_binary,
    "rudp_session": targets_files.rudp_session,
    "files_command": targets_files.files_command,
    "files_events": targets_files.files_events,
    "exec_request": targets_exec.exec_request,
    "exec_reply": targets_exec.exec_reply,
    "docker_stream": targets_exec.docker_stream,
    "collab_line": targets_collab.collab_line,
    "collab_frame": targets_collab.collab_frame,
    "collab_update": targets_collab.collab_update,
}
