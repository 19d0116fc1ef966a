"""The Trio edge: bounded line streams and the TCP server loop."""
