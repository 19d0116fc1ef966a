"""The web UI's liveness, measured in a real browser: chat latency from one person's browser
to another's, and how long a congestion event takes to reach the File Transfer page's live
chart, against the live fragments' polling interval measured in the same run.

Streamlit has no server push: live parts of a page are fragments that rerun on a browser
timer (``state.LIVE_INTERVAL_S``). A message can therefore not appear faster than the next
rerun of the reader's fragment; the baseline is that interval as the browser runs it: the
rerun requests bob's page sends on its websocket, grouped by the fragment they name, median
gap.

- **chat**: alice types a unique line in her browser and presses Enter; the time runs from
  the key press (``Date.now()`` in her page) until a ``MutationObserver`` in bob's page sees
  the line (``Date.now()`` there: both pages live in one browser process, one clock). A
  plain chat client in the room notes when the server relayed each line, which splits the
  time into *to the server* (alice's page runs its script, the UI sends MSG) and *to bob's
  screen* (bob's link has it; his next fragment rerun draws it).
- **chart**: while alice uploads under 5 % loss, the page shows the wall-clock time of the
  newest congestion event it has drawn; an observer notes when each new time appears. The lag
  is appearance minus event time (the client records the event on the same machine).

Targets: chat p50 ≤ 1.5 x the polling interval, p99 ≤ 3 x.

    python -m bench.ui [--quick]
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio
from playwright.sync_api import Page, WebSocket, expect

from bench.common import parser, percentile, result_line
from syncrox.client.chat import ChatClient
from syncrox.protocol.chat import ChatMessage
from tests.e2e.browser import create_room, go_to, join_room, launched_browser, running_ui

UPLOAD_BYTES = 4_000_000  # lasts several seconds at 2 % loss and a 40 ms round trip
HEX_ID = re.compile(rb"[0-9a-f]{32}")
MIN_RERUNS = 3
# Arms an observer and returns at once (a function returning the promise itself would make
# Playwright wait for it); the arrival time is read from ``window.__seen`` afterwards.
OBSERVER = """
(token) => { window.__seen = new Promise((resolve) => {
  const seen = () => document.body.innerText.includes(token);
  if (seen()) { resolve(Date.now()); return; }
  const observer = new MutationObserver(() => {
    if (seen()) { observer.disconnect(); resolve(Date.now()); }
  });
  observer.observe(document.body, {childList: true, subtree: true, characterData: true});
}); }
"""


CHART_OBSERVER = """
() => {
  window.__chartLags = [];
  let last = null;
  const pattern = /events, newest at (\\d\\d):(\\d\\d):(\\d\\d)\\.(\\d{3})/;
  const check = () => {
    const match = document.body.innerText.match(pattern);
    if (!match || match[0] === last) return;
    last = match[0];
    const now = new Date();
    const shown = new Date(now);
    shown.setHours(+match[1], +match[2], +match[3], +match[4]);
    window.__chartLags.push(now.getTime() - shown.getTime());
  };
  new MutationObserver(check).observe(
    document.body, {childList: true, subtree: true, characterData: true});
}
"""


def record_reruns(page: Page) -> list[tuple[float, bytes]]:
    """(time in ms, payload) of every message the page sends on its websocket: each live
    fragment's timer sends a rerun request naming that fragment."""
    sent: list[tuple[float, bytes]] = []

    def on_socket(socket: WebSocket) -> None:
        def on_frame(payload: str | bytes) -> None:
            data = payload if isinstance(payload, bytes) else payload.encode()
            sent.append((time.monotonic() * 1000, data))

        socket.on("framesent", on_frame)

    page.on("websocket", on_socket)
    return sent


def polling_interval_ms(sent: list[tuple[float, bytes]]) -> float:
    """The live fragments' rerun period as the browser runs it: requests grouped by the
    fragment id they carry (the last 32-hex-digit word), the median gap of each group, and
    the median of those."""
    by_fragment: dict[bytes, list[float]] = collections.defaultdict(list)
    for at_ms, payload in sent:
        ids = HEX_ID.findall(payload)
        if ids:
            by_fragment[ids[-1]].append(at_ms)
    periods = [
        statistics.median(b - a for a, b in itertools.pairwise(times))
        for times in by_fragment.values()
        if len(times) >= MIN_RERUNS
    ]
    if not periods:
        raise RuntimeError("no live fragment reruns seen on the websocket")
    return statistics.median(periods)


class RelayClock:
    """A plain chat client in the room, in its own thread: when each line was relayed."""

    def __init__(self, port: int, room: str) -> None:
        self.port, self.room = port, room
        self.relayed_ms: dict[str, float] = {}
        self.ready = threading.Event()
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self.thread.start()
        self.ready.wait(30)

    async def _main(self) -> None:
        async with ChatClient.connect("127.0.0.1", self.port) as chat:
            await chat.hello("clock", self.room)
            self.ready.set()
            async for event in chat.events:
                if isinstance(event, ChatMessage):
                    self.relayed_ms[event.content] = time.time() * 1000


def chat_latencies(
    alice: Page, bob: Page, samples: int, clock: RelayClock
) -> tuple[list[float], list[float]]:
    """End-to-end latencies, and of each the part until the server relayed the line."""
    box = alice.get_by_test_id("stChatInputTextArea")
    latencies, to_server = [], []
    for index in range(samples):
        token = f"bench-{os.getpid()}-{index}-{time.monotonic_ns()}"
        bob.evaluate(OBSERVER, token)  # armed before the line is sent
        box.fill(token)
        sent_at = alice.evaluate("() => Date.now()")
        box.press("Enter")
        arrived_at = bob.evaluate("() => window.__seen")
        latencies.append(float(arrived_at) - float(sent_at))
        to_server.append(clock.relayed_ms.get(token, float("nan")) - float(sent_at))
        time.sleep(0.3)  # people do not type every millisecond; neither do we
    return latencies, to_server


def chart_lags(alice: Page, source: Path) -> list[float]:
    """Upload ``source`` from alice's File Transfer page through emulated loss and delay (so
    it lasts seconds); every change of the live chart's newest-event time is a sample."""
    go_to(alice, "File Transfer")
    alice.evaluate(CHART_OBSERVER)
    alice.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(source)
    alice.get_by_role("combobox", name="Network").click()
    alice.get_by_role("option", name="custom", exact=True).click()
    for label, value in (("Loss %", "2"), ("Delay ms (one way)", "20")):
        field = alice.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Enter")
    start = alice.get_by_role("button", name="Start upload", exact=True)
    expect(start).to_be_enabled()
    start.click()
    expect(alice.get_by_text("Stored: verified by SHA-256 on the server.")).to_be_visible()
    return [float(lag) for lag in alice.evaluate("() => window.__chartLags")]


def measure_idle_interval(bob: Page, sent: list[tuple[float, bytes]], seconds: float) -> float:
    sent.clear()
    bob.wait_for_timeout(seconds * 1000)
    return polling_interval_ms(list(sent))


def main() -> int:
    options = parser(__doc__ or "").parse_args()
    samples = 10 if options.quick else 40
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_ui(Path(scratch) / "data") as (url, ports),
        launched_browser() as browser,
    ):
        alice = browser.new_context().new_page()
        alice.goto(url)
        code = create_room(alice, "alice")
        bob = browser.new_context().new_page()
        sent = record_reruns(bob)
        bob.goto(url)
        join_room(bob, "bob", code)
        go_to(alice, "Chat")
        go_to(bob, "Chat")
        expect(alice.get_by_test_id("stChatInputTextArea")).to_be_visible()
        interval = measure_idle_interval(bob, sent, 3 if options.quick else 6)
        clock = RelayClock(ports["chat"], code)
        latencies, to_server = chat_latencies(alice, bob, samples, clock)
        source = Path(scratch) / "bench.bin"
        source.write_bytes(os.urandom(UPLOAD_BYTES // (4 if options.quick else 1)))
        lags = chart_lags(alice, source)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    lag_p50 = percentile(lags, 0.5) if lags else float("nan")
    lag_p99 = percentile(lags, 0.99) if lags else float("nan")
    print(f"fragment polling interval (seen by the browser): {interval:.0f} ms")
    print(f"chat browser to browser, {samples} lines: p50 {p50:.0f} ms  p99 {p99:.0f} ms")
    server_p50 = statistics.median(to_server)
    print(f"  of which until the server relayed it: p50 {server_p50:.0f} ms")
    print(f"live cwnd chart, {len(lags)} updates: lag p50 {lag_p50:.0f} ms  p99 {lag_p99:.0f} ms")
    met = p50 <= 1.5 * interval and p99 <= 3 * interval
    print(
        result_line(
            "ui", interval_ms=interval, chat_p50_ms=p50, chat_p99_ms=p99,
            chat_p50_x_interval=p50 / interval, chat_p99_x_interval=p99 / interval,
            chat_to_server_p50_ms=server_p50,
            chart_lag_p50_ms=lag_p50, chart_lag_p99_ms=lag_p99,
            chart_lag_p50_x_interval=lag_p50 / interval, target_met=met,
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
