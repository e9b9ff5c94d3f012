"""Local stand-ins for the clouds, spoken to over real HTTP on loopback ports.

* DynamoDB: moto's server application, one request at a time (see ``MotoDynamoDB``).
* Google Cloud Storage: ``gcp-storage-emulator``, in memory. Known limit: it accepts
  ``if_generation_match`` but does not enforce it, so no test (and no code) relies on GCS
  preconditions; the gallery's compare-and-set lives in the records store.

Both run as threads of the test process; workers started by the tests reach them through the
environment in ``Emulators.env`` (STORAGE_EMULATOR_HOST, AWS credentials) and the URLs.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from dataclasses import dataclass, field

REGION = "us-east-1"
# Credentials moto accepts (it checks none); set so boto3 never looks further (e.g. IMDS).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}
GCP_PROJECT = "attendance-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dead_endpoint() -> str:
    """An http:// address on which nothing listens (an emulator that is down)."""
    return f"http://127.0.0.1:{free_port()}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class MotoDynamoDB:
    """moto's DynamoDB over HTTP, answering one request at a time.

    DynamoDB applies the writes to an item one after another, each atomically. moto does not:
    a TransactWriteItems that fails a condition puts back a copy of every table it names, taken
    when it began, which undoes whatever other requests wrote in between (moto 5,
    ``transact_write_items``). Taking requests one at a time restores DynamoDB's guarantee;
    concurrency between the callers is what the tests exercise, not inside the emulator."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        # Its request log (werkzeug) would fill every captured output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def one_at_a_time(environ, start_response):
            with lock:
                # The whole answer is built inside the lock: moto's bodies are made eagerly.
                return list(app(environ, start_response))

        self.server = make_server(
            "127.0.0.1", 0, one_at_a_time, threaded=True, request_handler=MotoRequestHandler
        )
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="moto-dynamodb", daemon=True
        )
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


class GcsEmulator:
    def __init__(self) -> None:
        from gcp_storage_emulator.server import create_server

        logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
        last: OSError | None = None
        for _ in range(5):  # the free port can be taken between asking and binding
            port = free_port()
            try:
                self.server = create_server("127.0.0.1", port, in_memory=True)
                self.server.start()
                break
            except OSError as exc:
                last = exc
        else:
            raise RuntimeError(f"gcp-storage-emulator could not bind a port: {last}")
        self.host = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Emulators:
    dynamodb: MotoDynamoDB
    gcs: GcsEmulator
    env: dict = field(default_factory=dict)

    def records_url(self, prefix: str, endpoint: str | None = None, **options) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        url = (
            f"dynamodb://{prefix}?region={REGION}&endpoint_url={endpoint or self.dynamodb.endpoint}"
        )
        return f"{url}&{query}" if query else url

    @staticmethod
    def blob_url(bucket: str, prefix: str = "") -> str:
        return f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"


def start_emulators() -> Emulators:
    dynamodb = MotoDynamoDB()
    try:
        gcs = GcsEmulator()
    except BaseException:
        dynamodb.stop()
        raise
    env = {**AWS_ENV, "STORAGE_EMULATOR_HOST": gcs.host, "GOOGLE_CLOUD_PROJECT": GCP_PROJECT}
    return Emulators(dynamodb=dynamodb, gcs=gcs, env=env)


class FlakyProxy:
    """An HTTP proxy in front of an emulator that answers the first ``failures`` requests
    itself with ``status``/``body`` (throttling, a 5xx) and forwards everything else: what a
    cloud service does on a bad minute, seen by the client over real HTTP."""

    def __init__(
        self,
        target: str,
        failures: int,
        status: int = 503,
        body: bytes = b"",
        headers: dict | None = None,
        fail_if=None,
    ):
        """``fail_if(method, path)``, when given, picks the requests that may fail."""
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        self.failures = failures
        self.requests = 0
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request
        self.failed = 0
        lock = threading.Lock()
        upstream = urlsplit(target)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body_in = self.rfile.read(length) if length else b""
                with lock:
                    proxy.requests += 1
                    proxy.seen.append((self.command, self.path))
                    fail = proxy.failed < proxy.failures and (
                        fail_if is None or fail_if(self.command, self.path)
                    )
                    if fail:
                        proxy.failed += 1
                if fail:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
                try:
                    forward = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("connection", "keep-alive")
                    }
                    conn.request(self.command, self.path, body=body_in, headers=forward)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for name, value in resp.getheaders():
                        if name.lower() not in (
                            "transfer-encoding",
                            "connection",
                            "content-length",
                        ):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
