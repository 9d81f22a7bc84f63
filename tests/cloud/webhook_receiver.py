"""A real HTTP server receiving signed webhooks, shared by the cloud's delivery tests.

Each path is one webhook channel. Bodies are kept per path only when their HMAC signature verifies
with the receiver's secret; others are counted in ``bad_signatures`` and answered 401. A POST to
``/slow`` waits for ``gate`` (a stuck channel).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloud.notify import verify_webhook


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    secret: str
    got: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bad_signatures: int = 0
    gate: threading.Event = field(default_factory=threading.Event)  # /slow waits for it
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.got.get(path, []))

    def states(self, path: str) -> list[str]:
        return [m["state"] for m in self.bodies(path)]

    def receive(self, path: str, headers: Any, body: bytes) -> bool:
        if path == "/slow":
            self.gate.wait(30)
        ok = verify_webhook(
            self.secret,
            headers.get("X-ShelfSense-Timestamp", ""),
            body,
            headers.get("X-ShelfSense-Signature", ""),
        )
        with self.lock:
            if ok:
                self.got.setdefault(path, []).append(json.loads(body))
            else:
                self.bad_signatures += 1
        return ok


@contextmanager
def webhook_receiver(secret: str) -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204 if holder["r"].receive(self.path, self.headers, body) else 401)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["r"] = receiver = Receiver(server, secret)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver.gate.set()
        server.shutdown()
        server.server_close()
