"""A small HTTP server on loopback for export tests: it records every request
(method, path, query, headers, body) and can be told to fail the first N
requests (with a status, or by closing the connection without an answer), to
answer every request with a given status, or to hang before answering."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Recorded:
    def __init__(self, method, target, headers, body):
        parts = urlsplit(target)
        self.method = method
        self.target = target
        self.path = parts.path
        self.query = parts.query
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def __repr__(self):
        return f"{self.method} {self.target} ({len(self.body)} bytes)"


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads

    def handle_error(self, request, client_address):
        pass  # clients that hang up (timeouts, the supervisor giving up) are expected


class Recorder:
    """`with Recorder(fail_first=2) as srv: ... srv.url ...; srv.requests`"""

    def __init__(self, fail_first=0, fail_status=503, fail_mode="status", status=201, hang=0.0, etag='"e-1"'):
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.fail_mode = fail_mode      # "status" or "close"
        self.status = status
        self.hang = hang
        self.etag = etag
        self.requests: list[Recorded] = []
        self.stopping = threading.Event()
        self.attempts = 0                # every request seen, failed ones included
        self.lock = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # a client that goes quiet cannot hold a handler forever

            def log_message(self, *a):
                pass

            def do_PUT(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with rec.lock:
                    rec.attempts += 1
                    k = rec.attempts
                    rec.requests.append(Recorded("PUT", self.path, dict(self.headers), body))
                if rec.hang:
                    rec.stopping.wait(rec.hang)
                if k <= rec.fail_first:
                    if rec.fail_mode == "close":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self._answer(rec.fail_status)
                    return
                self._answer(rec.status)

            do_POST = do_PUT

            def _answer(self, status):
                self.send_response(status)
                if rec.etag and 200 <= status < 300:
                    self.send_header("ETag", rec.etag)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        # Wake hanging handlers, then wait for every handler thread (and so
        # every connection socket) to be gone: the test's fds must not change.
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    @property
    def ok_requests(self) -> list[Recorded]:
        with self.lock:
            return list(self.requests[self.fail_first:])


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
