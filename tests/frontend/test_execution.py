"""The Code Execution page with Streamlit's AppTest, against a real server in a subprocess
whose Docker engine cannot be reached: the service's languages, refusals and an unavailable
sandbox shown as one message each, never an exception (the runs themselves:
``tests/e2e/test_browser_execution.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from streamlit.testing.v1 import AppTest

from syncrox.client.endpoints import Endpoints
from syncrox.client.exec import ExecClient
from syncrox.config import load_config
from tests.e2e.process import running_server

APP = Path(__file__).resolve().parents[2] / "frontend" / "app.py"
APP_TIMEOUT_S = 30
NO_ENGINE = ("--set", "exec.sandbox.docker_host=unix:///nonexistent/docker.sock")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data_dir = tmp_path / "data"
    with running_server(data_dir, extra=("--no-ui", *NO_ENGINE)):
        monkeypatch.setenv("SYNCROX_PORTS_FILE", str(data_dir / "ports.json"))
        yield data_dir / "ports.json"


def on_execution_page(user: str) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
    app.run()
    app.text_input(key="home_user").input(user)
    app.button(key="home_create").click().run()
    app.switch_page("views/execution.py").run()
    assert not app.exception
    return app


def test_the_languages_are_the_services(server: Path) -> None:
    async def langs() -> list[str]:
        where = Endpoints.resolve(load_config(), ports_file=server)
        async with ExecClient.connect(where.host, where.port("exec")) as client:
            return await client.languages()

    app = on_execution_page("alice")
    assert app.selectbox(key="exec_language").options == trio.run(langs)
    assert app.info[0].value == "No runs in this room yet."


def test_refusals_and_an_unavailable_sandbox_are_one_message_each(server: Path) -> None:
    app = on_execution_page("bob")
    code = app.text_area(key="exec_code")
    too_long = "#" * (load_config().exec.max_code_bytes + 1)
    code.input(too_long)
    app.button(key="exec_run").click().run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        f"the code is {len(too_long)} bytes; the limit is {load_config().exec.max_code_bytes}"
    ]

    app.text_area(key="exec_code").input("print(1)\n")
    app.button(key="exec_run").click().run()
    assert not app.exception and not app.error
    assert "The sandbox is unavailable right now" in app.warning[0].value
    # Why, from the sandbox, as a code block; nothing was recorded in the room's history.
    assert any("Docker engine" in block.value for block in app.code)
    assert app.info[0].value == "No runs in this room yet."


def test_drafts_survive_switching_language_and_page(server: Path) -> None:
    app = on_execution_page("carol")
    app.text_area(key="exec_code").input("print('mine')\n")
    app.text_area(key="exec_stdin").input("some input")
    app.run()
    app.selectbox(key="exec_language").select("c").run()
    assert app.text_area(key="exec_code").label == "Code (c)"
    assert app.text_area(key="exec_code").value != "print('mine')\n"
    app.selectbox(key="exec_language").select("python").run()
    assert app.text_area(key="exec_code").value == "print('mine')\n"
    app.switch_page("views/home.py").run()
    app.switch_page("views/execution.py").run()
    assert not app.exception
    assert app.text_area(key="exec_code").value == "print('mine')\n"
    assert app.text_area(key="exec_stdin").value == "some input"
