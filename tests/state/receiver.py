"""A webhook receiver on loopback for the served tests: it records every delivery, and answers by
its path:

* ``/ok``: 200;
* ``/flaky``: 503 to the first two attempts of each event (by ``webhook-id``), then 200;
* ``/hang``: holds the first attempt of each event unanswered for a minute, then answers 200 to
  the next.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentship.testing.processes import free_port


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def at(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, webhook_id: str) -> tuple[int, float]:
        """(the status, seconds to hold it first) for this attempt."""
        with self._lock:
            self._attempts[path, webhook_id] += 1
            attempt = self._attempts[path, webhook_id]
        if path == "/flaky" and attempt <= 2:
            return 503, 0.0
        if path == "/hang" and attempt == 1:
            return 200, 60.0
        return 200, 0.0

    def _handler(self) -> Any:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.deliveries.append(Delivery(self.path, headers, body, time.time()))
                status, hold = receiver._answer(self.path, headers.get("webhook-id", ""))
                time.sleep(hold)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        return Handler
