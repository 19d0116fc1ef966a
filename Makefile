# SyncroX-trio. Two commands matter: `make run` (everything) and `make test` (every test).
# Both bootstrap what they need: a pinned uv in .tools/, then the locked environment in .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
FUZZ_SECONDS ?= 60
ARGS ?=

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: install run test browser check lint typecheck fuzz fuzz-ci bench screenshots clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

install: $(VENV)/.synced

# Code execution needs a Docker engine and the sandbox image. As root on a machine without
# one, sandbox/engine.sh installs docker.io + debootstrap, starts a private daemon, builds or
# reuses the cached image, runs the command with DOCKER_HOST pointing there and stops the
# daemon when the command ends (also on failure or Ctrl-C). Without root it uses the engine
# DOCKER_HOST names, if any. SYNCROX_ENGINE=system uses an existing engine as it is.
ENGINE := SYNCROX_PYTHON=$(PY) bash sandbox/engine.sh

run: install
	$(ENGINE) run -- $(VENV)/bin/syncrox-trio run $(ARGS)

test: install browser
	$(ENGINE) run --require -- $(PY) -m pytest $(ARGS)

# UI tests drive Debian's Chromium (never a browser Playwright downloads): installed with
# apt-get when missing and running as root. Otherwise those tests skip (they fail instead
# under SYNCROX_REQUIRE_BROWSER=1, as in CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "browser: installing chromium (apt-get)" >&2; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update -qq >&2 && \
			apt-get install -y -qq --no-install-recommends chromium >&2; \
		else \
			echo "browser: no chromium and not root: browser tests will skip" >&2; \
		fi; }

check: lint typecheck

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy --strict syncrox

fuzz: install
	$(PY) -m fuzz.campaign --seconds-per-target $(FUZZ_SECONDS)

# The bounded campaign CI runs on every submission (about a minute in all).
fuzz-ci: install
	$(PY) -m fuzz.campaign --total-seconds 60

# Every benchmark in bench/ (each ends with a RESULT line). `make bench ARGS=--quick`.
bench: install
	@set -e; for script in bench/[a-z]*.py; do \
		case $$script in bench/common.py) continue;; esac; \
		echo "== $$script"; $(PY) -m bench.$$(basename $$script .py) $(ARGS); \
	done

# The README's pictures: Chromium drives a live run (with the sandbox engine, as `make run`)
# and writes docs/screenshots/*.png.
screenshots: install browser
	$(ENGINE) run -- $(PY) -m tests.e2e.screenshots $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .hypothesis
