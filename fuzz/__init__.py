"""Fuzz targets for SyncroX: pure functions of bytes whose invariant is "parse, or raise
ProtocolError". ``targets.TARGETS`` lists them; ``main`` is the thin atheris entry point;
``campaign`` runs them all for a bounded time; ``tests/fuzz`` replays every corpus."""
