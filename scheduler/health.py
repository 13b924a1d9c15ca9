"""The scheduler's HTTP endpoint: ``/healthz`` (leader or standby, last run per job) and
``/metrics`` (this process's Prometheus metrics, including the scheduler gauges).

A stdlib threading server: the scheduler has no other HTTP to do, and a probe must answer
even while a job is being sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

HealthFn = Callable[[], tuple[bool, dict[str, Any]]]


class HealthServer:
    """Serves ``health()`` as JSON on /healthz (200 healthy, 503 not) and /metrics."""

    def __init__(self, health: HealthFn, host: str, port: int):
        self.health = health
        self.host = host
        self.port = port
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        """Listen and serve in a daemon thread; raises OSError when the port is taken."""
        health = self.health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok, body = health()
                    self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
                elif path == "/metrics":
                    # This process only: a multiprocess directory shared with the API and the
                    # workers is exposed by the API's /metrics already.
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
                else:
                    self._send(404, "application/json", b'{"message": "Route not found."}')

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would drown the log

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(
            target=self._httpd.serve_forever, name="scheduler-http", daemon=True
        ).start()

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
