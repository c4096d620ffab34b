#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for S3 end-to-end tests.

Sits between IceDB and an S3-compatible server (moto) on 127.0.0.1 and
misbehaves the way real object stores and networks do, deterministically for
a given seed:

* commit-log PUTs (`/_icedb/log/`): with --commit-drop probability, held for
  --hold seconds, forwarded (so the object is written), then the connection
  is dropped without an answer: the client cannot know the outcome;
* any request: with --slowdown probability, answered `503 SlowDown` without
  being forwarded (the client's retries must handle it);
* data-file PUTs (`/data/`): with --data-drop probability, forwarded and then
  the connection is dropped.

It prints `listening on PORT` once bound; `GET /__faults` answers the counts
of injected faults as JSON. Standard library only.
"""

import argparse
import http.client
import http.server
import json
import random
import socket
import sys
import threading
import time
import urllib.parse

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}


class Faults:
    def __init__(self, seed, commit_drop, hold, slowdown, data_drop):
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.commit_drop = commit_drop
        self.hold = hold
        self.slowdown = slowdown
        self.data_drop = data_drop
        self.counts = {"requests": 0, "commit_put_dropped": 0, "slowdown_503": 0, "data_put_dropped": 0}

    def roll(self, probability):
        with self.lock:
            return self.random.random() < probability

    def count(self, key):
        with self.lock:
            self.counts[key] += 1


def make_handler(upstream, faults):
    parsed = urllib.parse.urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(length) if length else b""

        def _drop(self):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _forward(self, body):
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            connection.close()
            return response, payload

        def _reply(self, response, payload):
            self.send_response_only(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() in HOP_HEADERS or key.lower() == "content-length":
                    continue
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _handle(self):
            if self.path == "/__faults":
                body = json.dumps(faults.counts).encode()
                self.send_response_only(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            body = self._body()
            faults.count("requests")
            key = urllib.parse.urlsplit(self.path).path
            if faults.roll(faults.slowdown):
                faults.count("slowdown_503")
                message = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                self.send_response_only(503, "Slow Down")
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)
                return
            if self.command == "PUT" and "/_icedb/log/" in key and faults.roll(faults.commit_drop):
                faults.count("commit_put_dropped")
                time.sleep(faults.hold)
                self._forward(body)
                self._drop()
                return
            if self.command == "PUT" and "/data/" in key and faults.roll(faults.data_drop):
                faults.count("data_put_dropped")
                self._forward(body)
                self._drop()
                return
            response, payload = self._forward(body)
            self._reply(response, payload)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--commit-drop", type=float, default=0.3)
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--slowdown", type=float, default=0.05)
    parser.add_argument("--data-drop", type=float, default=0.05)
    args = parser.parse_args()
    faults = Faults(args.seed, args.commit_drop, args.hold, args.slowdown, args.data_drop)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.upstream, faults))
    server.daemon_threads = True
    # A client that gave up (time-out) closes its side: not worth a trace.
    server.handle_error = lambda request, address: None
    print(f"listening on {server.server_address[1]}", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
