"""A TCP relay in front of a real nats-server that plays a lossy or slow moment
of the network for chosen client messages: no real server can be made to lose
one request, or to answer one ack late, on demand.

Every client PUB/HPUB (parsed far enough to find its subject, payload and all)
is passed to `decide(subject, payload)`, which returns None (pass it on now),
"drop" (lose it), or a number of seconds to hold it before passing it on (later
messages are not held behind it). Everything else, both ways, passes as is."""
from __future__ import annotations

import socket
import threading


class NatsRelay:
    def __init__(self, upstream_port: int, decide):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.upstream = upstream_port
        self.decide = decide
        self.seen: list[str] = []     # the subjects of the client's messages, in order
        self.dropped: list[str] = []
        self.held: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()
            threading.Thread(target=self._client, args=(c, u), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while (b := src.recv(65536)):
                dst.sendall(b)
        except OSError:
            pass
        for x in (src, dst):
            x.close()

    def _client(self, c, u):
        lock = threading.Lock()  # a held message and the stream after it, never interleaved

        def send(data: bytes):
            with lock:
                try:
                    u.sendall(data)
                except OSError:
                    pass

        buf = b""
        try:
            while (b := c.recv(65536)):
                buf += b
                while b"\r\n" in buf:
                    line, rest = buf.split(b"\r\n", 1)
                    words = line.split()
                    n = 0
                    if words and words[0].upper() in (b"PUB", b"HPUB"):
                        n = int(words[-1]) + 2  # the payload and its CRLF
                    if len(rest) < n:
                        break  # the payload is still on its way
                    buf = rest[n:]
                    msg = line + b"\r\n" + rest[:n]
                    if n:
                        subject = words[1].decode()
                        self.seen.append(subject)
                        what = self.decide(subject, rest[:n - 2])
                        if what == "drop":
                            self.dropped.append(subject)
                            continue
                        if what:
                            self.held.append(subject)
                            threading.Timer(what, send, args=(msg,)).start()
                            continue
                    send(msg)
        except OSError:
            pass
        for x in (c, u):
            x.close()

    def close(self):
        self.lsock.close()
