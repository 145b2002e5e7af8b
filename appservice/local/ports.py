"""Free ports on this machine, for the throwaway servers of the demo, the tests and the bench."""

from __future__ import annotations

import socket


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port the kernel says is free on every address now (TCP or UDP).

    Free on all addresses, not only 127.0.0.1: livekit-server binds its media ports on all of
    them (only its candidates are limited to loopback). The port is released before the server
    binds it, so another process could take it in between; acceptable for throwaway servers.
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])
