"""moto's S3 server on 127.0.0.1, one request at a time, with injectable throttling.

moto checks a conditional PUT's precondition and then writes (check-then-act), so two
racing conditional PUTs could both succeed; one lock around every request makes each
request atomic, as S3 guarantees. ``throttle(n)`` answers the next ``n`` requests with
503 SlowDown, as S3 does under load; ``refuse_conditional(n)`` answers the next ``n``
conditional PUTs with 412, as a storm of competing writers would.
"""

from __future__ import annotations

import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

_PRECONDITION_FAILED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
    b"<Message>At least one of the pre-conditions you specified did not hold</Message></Error>"
)
_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def finish(self) -> None:
        # werkzeug answers "Connection: close" and closes at once; the side that closes
        # first keeps the TIME_WAIT, and a server side full of them refuses or resets new
        # connections reusing a client port (seen as ECONNRESET under load). Waiting for
        # the client to close first puts TIME_WAIT on the client, which picks its ports
        # around it.
        try:
            self.connection.settimeout(2.0)
            while self.connection.recv(65536):
                pass
        except OSError:
            pass
        super().finish()


class _Server(ThreadedWSGIServer):
    # Four processes opening a connection per request outrun werkzeug's 128 pending connections
    # while one request at a time is served.
    request_queue_size = 4096
    daemon_threads = True


class Serialized:
    """WSGI middleware: one request at a time through ``app`` (its whole response included)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._throttled = 0
        self._refused = 0
        self.requests = 0

    def throttle(self, count: int) -> None:
        with self._lock:
            self._throttled = count

    def refuse_conditional(self, count: int) -> None:
        with self._lock:
            self._refused = count

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            self.requests += 1
            if self._throttled > 0:
                self._throttled -= 1
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response("503 Slow Down", [("Content-Type", "application/xml")])
                return [_SLOW_DOWN]
            conditional = "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ
            if self._refused > 0 and environ["REQUEST_METHOD"] == "PUT" and conditional:
                self._refused -= 1
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response("412 Precondition Failed", [("Content-Type", "application/xml")])
                return [_PRECONDITION_FAILED]
            return list(self._app(environ, start_response))


class S3Server:
    """A running server: ``endpoint``, ``throttle()``, ``stop()``."""

    def __init__(self) -> None:
        self.app = Serialized(DomainDispatcherApplication(create_backend_app))
        self._server = _Server("127.0.0.1", 0, self.app, handler=_Quiet)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-s3", daemon=True)
        self._thread.start()

    def throttle(self, count: int) -> None:
        self.app.throttle(count)

    def refuse_conditional(self, count: int) -> None:
        self.app.refuse_conditional(count)

    def create_bucket(self) -> str:
        """A new bucket with a unique name (moto checks no signature, so a bare PUT does)."""
        name = f"t-{uuid.uuid4().hex[:16]}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
        return name

    def options(self) -> dict[str, str]:
        """S3Storage's storage_options for this server."""
        return {
            "endpoint": self.endpoint,
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "region": "us-east-1",
            "allow_http": "true",
        }

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def check_conditional_writes(server: S3Server) -> list[str]:
    """What the server gets wrong about If-None-Match and If-Match on PUT (empty: nothing).

    The S3 tests rely on both (compare-and-swap, leases); moto serialised by ``Serialized``
    honours them, and this canary says so before any test runs.
    """
    import obstore
    from obstore.exceptions import AlreadyExistsError, PreconditionError
    from obstore.store import S3Store

    bucket = server.create_bucket()
    config = {key: value for key, value in server.options().items() if key != "allow_http"}
    store = S3Store(bucket, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]
    first = obstore.put(store, "canary", b"1", mode="create")
    problems = []
    try:
        obstore.put(store, "canary", b"2", mode="create")
        problems.append("If-None-Match: * did not refuse an existing object")
    except AlreadyExistsError:
        pass
    try:
        obstore.put(store, "canary", b"3", mode={"e_tag": '"0123456789abcdef0123456789abcdef"'})
        problems.append("If-Match with a stale ETag did not refuse")
    except PreconditionError:
        pass
    obstore.put(store, "canary", b"4", mode={"e_tag": first["e_tag"]})
    if bytes(obstore.get(store, "canary").bytes()) != b"4":
        problems.append("the conditional PUT did not write")
    return problems
