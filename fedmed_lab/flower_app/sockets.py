"""List the listening sockets of a process tree while it runs.

:class:`SocketWatcher` polls, in a background thread, every descendant of
the given root processes and records each TCP socket in the LISTEN state
and each bound UDP socket, and the remote end of each connected socket.
The capstone uses it to show that Flower, Ray
and the course's processes listen on loopback addresses only. A socket
that opens and closes between two polls is missed, so the poll interval
is short (0.1 s by default).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, order=True)
class ListeningSocket:
    """One listening socket: the owning process's name and pid, the protocol and the local address."""

    process: str
    pid: int
    protocol: str
    ip: str
    port: int

    @property
    def is_loopback(self) -> bool:
        return is_loopback_address(self.ip)


def is_loopback_address(ip: str) -> bool:
    """Return True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.0.0.1); False for wildcards."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _tree(root_pids: Iterable[int]) -> list[psutil.Process]:
    processes = []
    for pid in root_pids:
        try:
            root = psutil.Process(pid)
            processes.append(root)
            processes.extend(root.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return processes


def listening_sockets(root_pids: Iterable[int]) -> set[ListeningSocket]:
    """Return the listening sockets of the processes ``root_pids`` and all their descendants, now."""
    return _scan(root_pids)[0]


def _scan(root_pids: Iterable[int]) -> tuple[set[ListeningSocket], set[ListeningSocket]]:
    """Return (listening sockets, remote ends of connected sockets) of the process trees, now."""
    found, remote = set(), set()
    for process in _tree(root_pids):
        try:
            name = process.name()
            connections = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for connection in connections:
            protocol = "tcp" if connection.type == socket.SOCK_STREAM else "udp"
            if connection.raddr:
                remote.add(ListeningSocket(name, process.pid, protocol, connection.raddr.ip, connection.raddr.port))
                continue
            if not connection.laddr:
                continue
            if connection.type == socket.SOCK_STREAM and connection.status != psutil.CONN_LISTEN:
                continue
            found.add(ListeningSocket(name, process.pid, protocol, connection.laddr.ip, connection.laddr.port))
    return found, remote


class SocketWatcher:
    """Record the listening sockets of process trees until stopped.

    Add roots with :meth:`watch` as processes start; use it as a context
    manager (or call :meth:`start` and :meth:`stop`), then read :attr:`sockets`.
    """

    def __init__(self, root_pids: Iterable[int] = (), *, interval: float = 0.1):
        self._roots: set[int] = set(root_pids)
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sockets: set[ListeningSocket] = set()
        # Remote ends of connected sockets, recorded with the same fields.
        self.peers: set[ListeningSocket] = set()
        self._thread = threading.Thread(target=self._poll, name="socket-watcher", daemon=True)

    def watch(self, pid: int) -> None:
        with self._lock:
            self._roots.add(pid)

    def _poll(self) -> None:
        while True:
            with self._lock:
                roots = set(self._roots)
            found, remote = _scan(roots)
            with self._lock:
                self.sockets |= found
                self.peers |= remote
            if self._stop.wait(self._interval):
                return

    def non_loopback(self) -> list[ListeningSocket]:
        """Return the recorded listening sockets whose address is not a loopback address, sorted."""
        return sorted(s for s in self.sockets if not s.is_loopback)

    def non_loopback_peers(self) -> list[ListeningSocket]:
        """Return the recorded connections whose remote address is not a loopback address, sorted."""
        return sorted(s for s in self.peers if not s.is_loopback)

    def start(self) -> SocketWatcher:
        """Start polling in the background; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Poll once more, so sockets opened just before the stop are kept, and end the thread."""
        self._stop.set()
        self._thread.join()
        found, remote = _scan(self._roots)
        self.sockets |= found
        self.peers |= remote

    def __enter__(self) -> SocketWatcher:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
