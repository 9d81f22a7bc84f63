"""A real local HTTP server playing the DingTalk, WeCom and Feishu robots for the cloud's delivery
tests: it records ``(path, query, JSON body)`` of every POST and answers the vendors' success body.
A path under ``/echo`` fails instead (HTTP 400) with an error quoting the whole request URL, as some
servers do: a secret in the URL then reaches the channel's error text."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Received = list[tuple[str, dict[str, list[str]], dict[str, Any]]]


@contextmanager
def robot_server() -> Iterator[tuple[str, Received]]:
    got: Received = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with lock:
                got.append((parts.path, parse_qs(parts.query), body))
            failing = parts.path.startswith("/echo")
            ok = {"errcode": 0, "code": 0, "errmsg": "ok", "msg": "success"}
            answer = json.dumps({"errcode": 300001, "errmsg": f"bad request {self.path}"} if failing else ok)
            self.send_response(400 if failing else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.encode())))
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()
