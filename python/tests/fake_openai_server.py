"""A real local OpenAI-compatible chat-completions server for tests (stdlib ``http.server``).

The behaviour for each request is scripted by directives inside the user message (the judge's
filled eval prompt contains the transcript response, so a test writes them into responses):

- ``@@SCORE=n@@``     reply content ``n`` (default ``3``)
- ``@@REPLY=text@@``  reply content ``text`` verbatim
- ``@@FAIL500xN@@``   the first N requests for this prompt get HTTP 500
- ``@@429xN@@``       the first N requests get HTTP 429 with ``Retry-After: 1``
- ``@@SLOWxN@@``      the first N requests wait ``slow_seconds`` before replying (client timeouts)
- ``@@GARBAGExN@@``   the first N requests get the content ``I'd say 5``
Failures are counted per prompt, in the order listed (500s, then 429s, then slow, then garbage).
With ``api_key`` set, requests without ``Authorization: Bearer <api_key>`` get HTTP 401.

Every request is logged (``server.log``: time, prompt hash, status) and ``GET /log`` returns it.
Run standalone: ``python fake_openai_server.py --port 8000`` (base URL ``http://127.0.0.1:8000/v1``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_DIRECTIVE = re.compile(r"@@([A-Z0-9]+)(?:x(\d+)|=([^@]*))?@@")


class FakeOpenAIServer:
    def __init__(self, port: int = 0, *, api_key: str | None = None, slow_seconds: float = 3.0):
        self.api_key = api_key
        self.slow_seconds = slow_seconds
        self.log: list[dict] = []
        self.bodies: list[dict] = []  # every parsed request body, in arrival order
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/log"):
                    with server.lock:
                        body = json.dumps(server.log).encode()
                    self._send(200, body)
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, b'{"error": {"message": "unknown path"}}')
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    server._record("-", 401)
                    return self._send(401, b'{"error": {"message": "invalid api key"}}')
                try:
                    req = json.loads(raw)
                    prompt = req["messages"][-1]["content"]
                except (ValueError, KeyError, IndexError, TypeError):
                    return self._send(400, b'{"error": {"message": "bad request"}}')
                with server.lock:
                    server.bodies.append(req)
                status, content, headers, delay = server._decide(prompt)
                if delay:
                    time.sleep(delay)
                if status != 200:
                    return self._send(status, json.dumps({"error": {"message": f"scripted {status}"}}).encode(), headers)
                body = {
                    "id": "chatcmpl-test", "object": "chat.completion", "model": req.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                }
                self._send(200, json.dumps(body).encode(), headers)

            def _send(self, status, body, headers=None):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread: threading.Thread | None = None

    def _record(self, key: str, status: int, attempt: int = 0) -> None:
        with self.lock:
            self.log.append({"t": time.monotonic(), "key": key, "status": status, "attempt": attempt})

    @staticmethod
    def prompt_key(prompt: str) -> str:
        return hashlib.sha256(prompt.encode()).hexdigest()[:16]

    def _decide(self, prompt: str):
        key = self.prompt_key(prompt)
        with self.lock:
            attempt = self.counts.get(key, 0) + 1
            self.counts[key] = attempt
        d = {m.group(1): (m.group(2), m.group(3)) for m in _DIRECTIVE.finditer(prompt)}
        content = d["REPLY"][1] if "REPLY" in d else (d["SCORE"][1] if "SCORE" in d else "3")
        budget = 0
        for name, status in (("FAIL500", 500), ("429", 429), ("SLOW", 200), ("GARBAGE", 200)):
            if name not in d:
                continue
            budget += int(d[name][0] or 1)
            if attempt <= budget:
                if name == "FAIL500":
                    self._record(key, 500, attempt)
                    return 500, None, {}, 0.0
                if name == "429":
                    self._record(key, 429, attempt)
                    return 429, None, {"Retry-After": "1"}, 0.0
                if name == "SLOW":
                    self._record(key, 200, attempt)
                    return 200, content, {}, self.slow_seconds
                self._record(key, 200, attempt)
                return 200, "I'd say 5", {}, 0.0
        self._record(key, 200, attempt)
        return 200, content, {}, 0.0

    def entries(self, prompt: str) -> list[dict]:
        """Log entries of one prompt, in arrival order."""
        key = self.prompt_key(prompt)
        with self.lock:
            return [e for e in self.log if e["key"] == key]

    def start(self) -> "FakeOpenAIServer":
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fake-openai", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    p = argparse.ArgumentParser(description="Scripted OpenAI-compatible test server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--api-key", default=None)
    p.add_argument("--slow-seconds", type=float, default=3.0)
    a = p.parse_args()
    s = FakeOpenAIServer(a.port, api_key=a.api_key, slow_seconds=a.slow_seconds)
    print(s.base_url, flush=True)
    s.httpd.serve_forever()


if __name__ == "__main__":
    main()
