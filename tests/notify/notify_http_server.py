"""A real local HTTP server that records what the alert channels POST to it (test helper)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# A responder gets the request and returns (status, JSON body); it may block (slow channel).
Responder = Callable[[Received], tuple[int, Any]]


@dataclass
class RecordingServer:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    responders: dict[str, Responder] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def requests(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


def start_recording_server() -> RecordingServer:
    state: dict[str, RecordingServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            parts = urlsplit(self.path)
            request = Received(
                parts.path, parse_qs(parts.query), dict(self.headers.items()), self.rfile.read(length)
            )
            recorder = state["server"]
            with recorder.lock:
                recorder.received.append(request)
            responder = recorder.responders.get(parts.path, lambda _: (200, {"errcode": 0, "errmsg": "ok"}))
            status, payload = responder(request)
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    recorder = RecordingServer(server)
    state["server"] = recorder
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return recorder
