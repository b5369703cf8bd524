"""A TCP proxy on 127.0.0.1 for the tests: forwards to a port and, per connection, stops passing on what the
server sends after ``stall_after`` bytes (the connection stays open, silent) or passes it on throttled — a
PACS that stops answering, or a slow one, in the middle of a retrieve. Threads only; stopped by ``close``."""

from __future__ import annotations

import socket
import threading
import time


class StallingProxy:
    def __init__(self, target_port: int, stall_after: int | None = None, bytes_per_s: float | None = None) -> None:
        self.target_port, self.stall_after, self.bytes_per_s = target_port, stall_after, bytes_per_s
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        self.stalled = threading.Event()  # set when a connection has stopped forwarding
        self.forwarded = 0  # bytes from the server passed on (all connections)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        limit = self.stall_after if from_server else None
        throttled = from_server and self.bytes_per_s is not None
        sent = 0
        try:
            while True:
                data = source.recv(1024 if throttled else 65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                if limit is not None and sent + len(data) >= limit:
                    sink.sendall(data[:limit - sent])
                    self.stalled.set()
                    return  # silent from here on, both sockets left open
                sink.sendall(data)
                sent += len(data)
                if from_server:
                    self.forwarded += len(data)
                if throttled:
                    time.sleep(len(data) / self.bytes_per_s)
        except OSError:
            return

    def close(self) -> None:
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass
