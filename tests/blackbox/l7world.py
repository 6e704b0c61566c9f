"""TCP servers of the test world on one address: TLS on 443 (a self-signed
certificate made here with openssl; TLS is terminated by this server, never by
the product), HTTP on 80 and 8080.

Usage: l7world.py ADDR WORKDIR READY
TLS: after the handshake, answers "tls <server_name>\\n" to any line.
HTTP: GET /bulk?n=N answers N zero bytes; any other GET "http <Host>\\n"; POST
"<length> <sha256>\\n" of the body read.
"""
import hashlib
import http.server
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

addr, workdir, ready = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
key, cert = workdir / f"tls-{addr}.key", workdir / f"tls-{addr}.crt"
if not cert.exists():
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=world.example", "-addext",
                    "subjectAltName=DNS:a.example,DNS:b.example,DNS:*.wild.example"],
                   check=True, capture_output=True)

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)


class TLSHandler(socketserver.StreamRequestHandler):
    def handle(self):
        seen = {}
        ctx2 = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx2.load_cert_chain(cert, key)
        ctx2.sni_callback = lambda s, name, c: seen.update(sni=name)  # None: go on
        try:
            with ctx2.wrap_socket(self.request, server_side=True) as t:
                t.recv(100)
                t.sendall(f"tls {seen.get('sni')}\n".encode())
        except (ssl.SSLError, OSError):
            pass


class HTTPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/bulk":
            # N zero bytes from a sparse file, with sendfile(2): the server is
            # never what limits a throughput measurement.
            n = int(parse_qs(u.query)["n"][0])
            path = workdir / f"bulk-{n}"
            if not path.exists():
                with open(path, "wb") as f:
                    f.truncate(n)
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.flush()
            with open(path, "rb") as f:
                self.connection.sendfile(f)
            return
        body = f"http {self.headers.get('Host')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        # Answers "<length> <sha256>" of the body it read (Content-Length).
        n, h = int(self.headers["Content-Length"]), hashlib.sha256()
        left = n
        while left:
            b = self.rfile.read(min(left, 1 << 20))
            if not b:
                break
            h.update(b)
            left -= len(b)
        body = f"{n - left} {h.hexdigest()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TS(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class HS(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


servers = [TS((addr, 443), TLSHandler), HS((addr, 80), HTTPHandler), HS((addr, 8080), HTTPHandler)]
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
open(ready, "w").close()
threading.Event().wait()
