"""Trio clients of every service, used by the CLI, the web UI and the tests."""
