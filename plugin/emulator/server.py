"""HTTP/1.1 over TLS on loopback: the plumbing under the emulator.

A ThreadingHTTPServer whose worker threads do the TLS handshake (so one stalled client
cannot block `accept`), keep-alive with exact Content-Length, and a record of open
connections so `stop()` really closes them (a kept-alive connection would otherwise keep
being served by a daemon thread after the listener is gone).

Transport faults (`Response.fault`): "reset" aborts the connection (SO_LINGER 0, so the
kernel sends an RST) instead of answering; "reset_mid_body" sends the status line, the
headers with the full body's Content-Length and the first half of the body, then aborts.
Delays wait on the server's `stopping` event, so `close_all()` ends every stall at once.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from plugin.emulator.responses import Response

logger = logging.getLogger("plugin.emulator")

_HANDSHAKE_TIMEOUT = 10.0
_MAX_BODY = 1 << 20  # token requests are a few KB; refuse anything silly


@dataclass(frozen=True)
class Incoming:
    """One parsed request: the raw path (never decoded), the raw query string, headers, body."""

    method: str
    path: str
    query: str
    headers: Message
    body: bytes
    received: float = 0.0  # time.time() when the request line and headers had arrived


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "defender-ip-emulator"
    sys_version = ""
    timeout = 30  # idle keep-alive connections end after this many seconds
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle + delayed ACK cost 40 ms
    server: TlsServer

    def _handle(self) -> None:
        received = time.time()
        length = self.headers.get("Content-Length", "0").strip() or "0"
        if not length.isdigit() or int(length) > _MAX_BODY:
            self.close_connection = True
            self._write(Response(400, b'{"error":"invalid_request"}', {"Content-Type": "application/json"}))
            return
        body = self.rfile.read(int(length)) if int(length) else b""
        path, _, query = self.path.partition("?")
        try:
            response = self.server.app(Incoming(self.command, path, query, self.headers, body, received))
        except Exception:  # a bug in the emulator must still answer, not hang the client
            logger.debug("emulator error", exc_info=True)
            response = Response(500, b'{"error":{"code":"InternalServerError","message":"emulator error"}}',
                                {"Content-Type": "application/json"})
        self._write(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _write(self, response: Response) -> None:
        if response.delay > 0 and self.server.stopping.wait(response.delay):
            self.close_connection = True  # stopped while delaying: drop the connection
            return
        if response.fault == "reset":
            self._abort()
            return
        body, length = response.body, len(response.body)
        if response.fault == "reset_mid_body":
            body = response.body[: length // 2]
            length = max(length, len(body) + 1)  # always more announced than sent
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if response.fault == "reset_mid_body":
            self.wfile.flush()
            self._abort()

    def _abort(self) -> None:
        """End the connection with an RST: no TLS close_notify, no FIN, nothing more read."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The socket is closed (and the RST sent) by finish_request once the handler returns.

    def log_request(self, code="-", size="-") -> None:
        # Method, path and status only: never the query's neighbours, headers or bodies.
        logger.debug("%s %s -> %s", self.command, self.path.partition("?")[0], code)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        logger.debug("http: " + format, *args)


class TlsServer(ThreadingHTTPServer):
    """Threaded HTTPS server; `app(Incoming) -> Response` answers every request."""

    daemon_threads = True

    def __init__(self, host: str, port: int, context: ssl.SSLContext, app: Callable[[Incoming], Response]):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.context = context
        self.app = app
        self.stopping = threading.Event()
        self._open: set[ssl.SSLSocket] = set()
        self._open_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (getfqdn), which can take seconds."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address) -> None:
        """Handshake in the worker thread, then serve the connection until it closes."""
        request.settimeout(_HANDSHAKE_TIMEOUT)
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS handshake failed: %s", type(exc).__name__)
            return
        with self._open_lock:
            self._open.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            pass  # the client went away mid-response (e.g. its timeout fired during a delay)
        finally:
            with self._open_lock:
                self._open.discard(conn)
            conn.close()

    def handle_error(self, request, client_address) -> None:
        """Log unexpected handler errors at debug level instead of printing to stderr."""
        logger.debug("emulator handler error", exc_info=True)

    def close_all(self) -> None:
        """Stop serving, then cut every open connection."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
