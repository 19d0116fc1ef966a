"""Code Execution: run code in the room's sandbox; this tab's last result; the room's history.

The result shown under Run is this browser session's own last run (the original showed a
shared ``latest.json``: one person's output replaced everyone's); everyone's runs are in the
room's history, which the server lists for the caller's room only. A run's detail there
(code, stdin, outputs, times) comes from the server too, so every tab and room-mate sees the
same (the stdin as the history keeps it: its first ``exec.history_stdin_bytes``). The
languages are the service's (``LANGS``, asked once per session); the limits come from the
config. Program output, code, stdin and user names are peer text: shown with
``st.code``/``st.dataframe``, never as markdown.
"""

from __future__ import annotations

import collections

import streamlit as st

import backend
import state
from backend import execution
from backend.execution import Detail, Outcome, Refused, Row
from plain import plain

state.require_room()

# Starters only: the language list is the service's, a language without one starts empty.
STARTERS = {
    "python": 'name = input()\nprint(f"hello {name}")\n',
    "c": '#include <stdio.h>\n\nint main(void) {\n    printf("hello\\n");\n    return 0;\n}\n',
    "cpp": '#include <iostream>\n\nint main() {\n    std::cout << "hello\\n";\n}\n',
    "java": "public class Main {\n    public static void main(String[] args) {\n"
    '        System.out.println("hello");\n    }\n}\n',
}
VERDICT_NOTES = {
    "OK": "the program ran and exited with status 0",
    "COMPILE_ERROR": "the compiler refused the code (its message is under Diagnostics)",
    "RUNTIME_ERROR": "the program exited with a non-zero status",
    "TIMEOUT": "the program ran out of time and was stopped",
    "MEMORY_LIMIT": "the program ran out of memory and was stopped",
    "OUTPUT_LIMIT": "the program wrote more than the output cap and was stopped",
}
KNOWN_DETAILS = 20  # past runs fetched with SHOW, kept per session (a run never changes)


def languages() -> list[str]:
    """The service's languages, asked once per browser session (a failure is not kept)."""
    if "exec_languages" not in st.session_state:
        st.session_state.exec_languages = execution.languages()
    names: list[str] = st.session_state.exec_languages
    return names


def editor(names: list[str]) -> None:
    language = st.selectbox("Language", names, key="exec_language", on_change=_switch_language)
    _restore_drafts(language)
    # The label names the language: a person (and a test) sees the switch has happened.
    code = st.text_area(f"Code ({language})", key="exec_code", height=280,
                        on_change=_keep_drafts)  # fmt: skip
    stdin = st.text_area("Input (stdin)", key="exec_stdin", height=100, on_change=_keep_drafts,
                         help="Given to the program's standard input, then EOF.")  # fmt: skip
    if st.button("Run", key="exec_run", type="primary", icon=":material/play_arrow:"):
        run(language, code, stdin)


# Streamlit drops a widget's state when its page is left: drafts (one per language, so a
# switch loses nothing) live under plain keys and are put back into the widgets.
def _drafts() -> dict[str, str]:
    drafts: dict[str, str] = st.session_state.setdefault("exec_drafts", {})
    return drafts


def _restore_drafts(language: str) -> None:
    if "exec_code" not in st.session_state:
        st.session_state.exec_code = _drafts().get(language, STARTERS.get(language, ""))
        st.session_state.exec_code_language = language
    if "exec_stdin" not in st.session_state:
        st.session_state.exec_stdin = st.session_state.get("exec_stdin_draft", "")


def _keep_drafts() -> None:
    _drafts()[st.session_state.exec_code_language] = st.session_state.exec_code
    st.session_state.exec_stdin_draft = st.session_state.exec_stdin


def _switch_language() -> None:
    """Keep the draft of the language left; bring back (or start) the chosen one's."""
    _drafts()[st.session_state.exec_code_language] = st.session_state.exec_code
    language = st.session_state.exec_language
    st.session_state.exec_code = _drafts().get(language, STARTERS.get(language, ""))
    st.session_state.exec_code_language = language


def run(language: str, code: str, stdin: str) -> None:
    try:
        with st.spinner("Running in the sandbox…"):
            result = execution.run(st.session_state.token, language, code, stdin)
    except backend.BackendError as exc:
        st.session_state.exec_last = (st.session_state.room, str(exc))
        return
    st.session_state.exec_last = (st.session_state.room, result)


def last_result() -> None:
    """This session's own last run in this room (a refusal or error included)."""
    st.subheader("Your last run")
    room, result = st.session_state.get("exec_last", (None, None))
    if room != st.session_state.room or result is None:
        st.caption("Nothing run from this tab yet.")
    elif isinstance(result, str):
        st.error(result)
    elif isinstance(result, Refused):
        st.info(f"Not run: the sandbox is busy ({plain(result.message)}). Try again in a moment.")
    else:
        outcome(result)


def outcome(result: Outcome) -> None:
    if result.verdict == execution.SANDBOX_UNAVAILABLE:
        st.warning("The sandbox is unavailable right now, so nothing ran. Try again later.")
        _block("Why", result.diag, wrap=True)
        return
    line = f"{result.verdict}: {VERDICT_NOTES.get(result.verdict, 'see below')}"
    (st.success if result.ok else st.error)(line)
    exit_col, compile_col, run_col = st.columns(3)
    exit_col.metric("Exit code", _shown(result.exit_code))
    compile_col.metric("Compile time", _ms(result.compile_ms))
    run_col.metric("Run time", _ms(result.run_ms))
    streams(result)


def streams(result: Outcome) -> None:
    named = (("stdout", "stdout", result.stdout), ("stderr", "stderr", result.stderr),
             ("Diagnostics", "diag", result.diag))  # fmt: skip
    for label, stream, text in named:
        cut = " (cut at the output cap)" if stream in result.truncated else ""
        _block(f"{label}{cut}", text, wrap=stream != "stdout")


def room_history() -> None:
    st.subheader(f"Room {st.session_state.room}: history")
    if st.button("Refresh", key="exec_refresh", icon=":material/refresh:"):
        pass  # the click reruns the page, which asks for the history again
    try:
        rows = execution.history(st.session_state.token, execution.limits().history_rows)
    except backend.BackendError as exc:
        st.error(f"The history is unavailable: {plain(str(exc))}")
        return
    if not rows:
        st.info("No runs in this room yet.")
        return
    shown = filtered(rows)
    st.caption(f"{len(shown)} of the room's latest {len(rows)} runs")
    st.dataframe(table(shown), key="exec_table", hide_index=True, width="stretch")
    if shown:
        detail(shown)


def filtered(rows: list[Row]) -> list[Row]:
    user_col, lang_col, verdict_col = st.columns(3)
    users = user_col.multiselect("User", sorted({r.user for r in rows}), key="exec_f_user")
    langs = lang_col.multiselect("Language", sorted({r.language for r in rows}),
                                 key="exec_f_lang")  # fmt: skip
    verdicts = verdict_col.multiselect("Verdict", sorted({r.verdict for r in rows}),
                                       key="exec_f_verdict")  # fmt: skip
    return [
        row
        for row in rows
        if (not users or row.user in users)
        and (not langs or row.language in langs)
        and (not verdicts or row.verdict in verdicts)
    ]


def table(rows: list[Row]) -> dict[str, list[object]]:
    return {
        "Run": [row.run_id for row in rows],
        "Time": [row.at for row in rows],
        "User": [row.user for row in rows],
        "Language": [row.language for row in rows],
        "Verdict": [row.verdict for row in rows],
        "Exit": [_shown(row.exit_code) for row in rows],
        "Compile": [_ms(row.compile_ms) for row in rows],
        "Run time": [_ms(row.run_ms) for row in rows],
    }


def detail(rows: list[Row]) -> None:
    by_id = {row.run_id: row for row in rows}
    chosen = st.selectbox("Details of run", list(by_id), key="exec_detail",
                          format_func=lambda run_id: _label(by_id[run_id]))  # fmt: skip
    try:
        shown = _detail(chosen)
    except backend.BackendError as exc:
        st.error(f"Run {chosen} is unavailable: {plain(str(exc))}")
        return
    with st.container(border=True, key="exec_run_detail"):
        st.caption(plain(f"Code ({shown.row.language}, by {shown.row.user}, {shown.row.at})"))
        st.code(shown.code, language=shown.row.language)
        cut = " (the history kept only its start)" if shown.stdin_cut else ""
        _block(f"stdin{cut}", shown.stdin, wrap=False)
        outcome(shown.outcome)


def _detail(run_id: int) -> Detail:
    cache: collections.OrderedDict[tuple[str, int], Detail]
    cache = st.session_state.setdefault("exec_details", collections.OrderedDict())
    key = (st.session_state.room, run_id)
    if key not in cache:
        cache[key] = execution.show(st.session_state.token, run_id)
        while len(cache) > KNOWN_DETAILS:
            cache.popitem(last=False)
    return cache[key]


def _label(row: Row) -> str:
    return f"#{row.run_id} · {row.user} · {row.language} · {row.verdict} · {row.at}"


def _block(label: str, text: str, *, wrap: bool) -> None:
    """Peer text under a caption, in a code block (never markdown); a caption if empty."""
    if not text:
        st.caption(f"{label}: empty")
        return
    st.caption(label)
    # Compiler messages are long lines: wrapped; program output keeps its own layout.
    st.code(text, language=None, wrap_lines=wrap)


def _shown(value: int | None) -> str:
    return "—" if value is None else str(value)


def _ms(value: int | None) -> str:
    return "—" if value is None else f"{value} ms"


st.title("Code Execution")
try:
    names = languages()
except backend.BackendError as exc:
    st.error(f"The code-execution service is unavailable: {plain(str(exc))}")
    names = []
left, right = st.columns([3, 2])
with left:
    if names:
        editor(names)
with right, st.container(key="exec_last_run"):
    last_result()
room_history()
