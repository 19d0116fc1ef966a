"""Reliable UDP for file transfer, sans-IO: packets and codecs, RTT estimation, congestion
control, the sender, the receiver and the connection state machine that joins them.

Nothing in this package touches a socket, a clock or a file: cores are fed datagrams and
``now`` (seconds, any monotonic origin) and return datagrams, events and their next deadline.
The wire format is specified byte for byte in docs/PROTOCOL.md.
"""
