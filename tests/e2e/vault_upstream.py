"""A TLS upstream for the credential vault tests: records what each request carried.

    vault_upstream.py CERT KEY SNI_CERT SNI_KEY RECORD PORT_FILE

Serves HTTP/1.1 over TLS on an ephemeral port of every address (written to PORT_FILE), with
CERT to clients that send no server name (an IP address) and SNI_CERT to those that do, and
appends one JSON line per request to RECORD: method, path and headers as received.

  /sse        a server-sent event stream: "data: one", then, once /release was asked for,
              "data: two"; so a client that reads "one" before asking /release proves the
              stream came through as it was sent, not buffered whole.
  /release    lets /sse go on.
  /git/...    401 with a Basic challenge until a request brings credentials, then 404 (what a
              git client needs to send its credentials at all).
  otherwise   200 "ok".
"""

import http.server
import json
import os
import ssl
import sys
import threading

CERT, KEY, SNI_CERT, SNI_KEY, RECORD, PORT_FILE = sys.argv[1:7]
released = threading.Event()
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as production servers do: a head and a body apart go out at once

    def log_message(self, *args):
        pass

    def record(self):
        line = {"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()]}
        with lock, open(RECORD, "a") as f:
            f.write(json.dumps(line) + "\n")

    def reply(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_POST(self):
        self.do_GET()

    def do_GET(self):
        self.body()
        self.record()
        if self.path.startswith("/sse"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"data: one\n\n")
            self.wfile.flush()
            # Without /release in time the stream says so: the client then knows it did not
            # see "one" before the rest was sent.
            self.wfile.write(b"data: two\n\n" if released.wait(30) else b"data: timed-out\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/release"):
            released.set()
            return self.reply(200, "released\n")
        if self.path.startswith("/git/"):
            if not self.headers.get("Authorization"):
                return self.reply(401, "who are you?\n", [("WWW-Authenticate", 'Basic realm="git"')])
            return self.reply(404, "no such repository\n")
        self.reply(200, "ok\n")


server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
named = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
named.load_cert_chain(SNI_CERT, SNI_KEY)


def pick(sock, server_name, _):
    if server_name:
        sock.context = named


context.sni_callback = pick
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
