"""A TCP proxy on 127.0.0.1 that a test can cut, to make a real server vanish mid-request."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Proxy:
    """Forward 127.0.0.1:<port> to `target`; `cut()` drops every connection and refuses new
    ones (as a crashed or restarting server does), `heal()` accepts them again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.up = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.open |= {client, server}
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass  # the other side was cut
        finally:
            for sock in (src, dst):
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self.lock:
            self.open.discard(sock)
        with contextlib.suppress(OSError):  # already gone
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self.up = False
        with self.lock:
            victims = list(self.open)
        for sock in victims:
            self._drop(sock)

    def heal(self) -> None:
        """Accept connections again."""
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@contextmanager
def proxy_to(host: str, port: int) -> Iterator[Proxy]:
    """Run a Proxy to host:port for the block."""
    proxy = Proxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()
