"""Every test runs under an audit hook that records connections and lookups beyond this machine.

The product promise is that nothing leaves the operator's servers: in the tests, everything
they start listens on loopback (or on this machine's own address, where WebRTC needs one), so
any other destination — a telemetry endpoint, a model download, a federation lookup — is a
defect, and the test during which it happened fails. Native threads bypass Python's socket
module; `test_offline.py` traces those with strace.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

_own_addresses: set[str] = set()
reached: list[str] = []


def _allowed(host: Any) -> bool:
    if host is None:
        return True  # a passive lookup (bind to any address)
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host in ("localhost", "") or host in _own_addresses:
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host.endswith(".localhost")  # a name that would need DNS
    return address.is_loopback or address.is_unspecified


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect":
        address = args[1]
        if not isinstance(address, tuple):
            return  # a Unix socket
        host = address[0]
    else:
        return
    if not _allowed(host):
        reached.append(f"{event} {host!r}")


def install() -> None:
    """Start recording (once per process; audit hooks cannot be removed)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            infos = socket.getaddrinfo(socket.gethostname(), None, family)
        except OSError:
            continue
        _own_addresses.update(str(info[4][0]) for info in infos)
    sys.addaudithook(_hook)
