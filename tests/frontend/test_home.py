"""The home page with Streamlit's AppTest, against a real server in a subprocess."""

from __future__ import annotations

import json
import socket
import struct
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "frontend" / "app.py"
APP_TIMEOUT_S = 30


def fresh_app() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
    app.run()
    assert not app.exception
    return app


def test_create_a_room_then_a_second_user_joins_it(server: dict[str, int]) -> None:
    alice = fresh_app()
    alice.text_input(key="home_user").input("alice")
    alice.button(key="home_create").click().run()
    assert not alice.exception and not alice.error
    code = alice.session_state["room"]
    assert len(code) == 4 and code.isdigit()
    assert any(code in metric.value for metric in alice.metric)

    bob = fresh_app()
    bob.text_input(key="home_user").input("bob")
    bob.text_input(key="home_code").input(code)
    bob.button(key="home_join").click().run()
    assert not bob.error and bob.session_state["room"] == code


def test_refusals_are_shown_not_raised(server: dict[str, int]) -> None:
    app = fresh_app()
    app.text_input(key="home_user").input("no spaces allowed")
    app.button(key="home_create").click().run()
    assert not app.exception
    assert "user name" in app.error[0].value
    app.text_input(key="home_user").input("carol")
    app.text_input(key="home_code").input("12")
    app.button(key="home_join").click().run()
    assert "room code" in app.error[0].value
    assert app.session_state["room"] == ""


def test_leaving_the_room_returns_home(server: dict[str, int]) -> None:
    app = fresh_app()
    app.text_input(key="home_user").input("dave")
    app.button(key="home_create").click().run()
    app.sidebar.button(key="leave_room").click().run()
    assert not app.exception and app.session_state["token"] == ""


def test_a_server_that_resets_the_connection_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crashed or restarting service resets the connection mid-request.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def reset_every_connection() -> None:
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:
                return  # closed at the end of the test
            peer.recv(100)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()

    threading.Thread(target=reset_every_connection, daemon=True).start()
    ports_file = tmp_path / "ports.json"
    ports_file.write_text(json.dumps({"rooms": listener.getsockname()[1]}))
    monkeypatch.setenv("SYNCROX_PORTS_FILE", str(ports_file))
    try:
        app = fresh_app()
        app.text_input(key="home_user").input("alice")
        app.button(key="home_create").click().run()
        assert not app.exception
        assert any("closed the connection" in error.value for error in app.error)
    finally:
        listener.close()


def test_a_name_typed_in_decomposed_form_is_accepted(server: dict[str, int]) -> None:
    # "José" pasted as J-o-s-e + combining accent: the server wants NFC, the user sees one name.
    app = fresh_app()
    app.text_input(key="home_user").input("Jose\u0301")
    app.button(key="home_create").click().run()
    assert not app.exception and not app.error
    assert app.session_state["user"] == "Jos\u00e9"


def test_in_a_room_home_shows_every_service_up_with_its_latency(server: dict[str, int]) -> None:
    app = fresh_app()
    app.text_input(key="home_user").input("erin")
    app.button(key="home_create").click().run()
    shown = "\n".join(line.value for line in app.markdown)
    labels = ["Room manager (TCP)", "Chat + image CDN (TCP)", "File control (TCP)",
              "File data (UDP)", "Collaborative editor (TCP)", "Code execution (TCP)"]  # fmt: skip
    for label in labels:
        assert f":green-badge[up] {label} · " in shown, shown
    assert " ms" in shown


def test_a_service_that_is_down_is_shown_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind(("127.0.0.1", 0))
        tcp.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        ports = {"files_udp": udp.getsockname()[1], "chat": tcp.getsockname()[1]}
        ports_file = tmp_path / "ports.json"
        ports_file.write_text(json.dumps(ports))
        monkeypatch.setenv("SYNCROX_PORTS_FILE", str(ports_file))
        app = fresh_app()  # the status expander is on Home, in a room or not
    shown = "\n".join(line.value for line in app.markdown)
    assert ":red-badge[down] Chat + image CDN (TCP) · cannot reach" in shown, shown
    assert ":red-badge[down] File data (UDP) · no answer within 1 s" in shown  # silent UDP
    assert not app.exception
