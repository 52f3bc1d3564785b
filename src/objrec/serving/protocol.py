"""uvicorn's httptools HTTP protocol, with a deadline for slow clients.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for a
client that opens a connection and sends its request slowly, or not at all: a few hundred
such connections hold the server's sockets (slowloris). :class:`TimeoutHttpToolsProtocol`
gives every request ``request_timeout`` seconds for its request line and headers, counted
from the connection (or from the first byte of a request on a kept-alive connection), and
the same again for every gap between two pieces of its body. A client that misses it gets
``408`` (JSON, like every error of the server) and the connection is closed.

The timeout comes from the environment variable ``OBJREC_SERVE_REQUEST_TIMEOUT`` (seconds;
``objrec serve --request-timeout`` sets it, so every worker process reads the same), or the
class attribute ``request_timeout`` of a subclass.
"""

from __future__ import annotations

import asyncio
import json
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ENV_REQUEST_TIMEOUT = "OBJREC_SERVE_REQUEST_TIMEOUT"
DEFAULT_REQUEST_TIMEOUT = 30.0  # seconds for the headers, and between two body chunks


def request_timeout_from_env() -> float:
    """``OBJREC_SERVE_REQUEST_TIMEOUT`` as a positive number of seconds, else the default."""
    raw = os.environ.get(ENV_REQUEST_TIMEOUT, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_REQUEST_TIMEOUT
    return value if value > 0 else DEFAULT_REQUEST_TIMEOUT


class TimeoutHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` closing connections whose client sends too slowly.

    One timer per connection, not one per request or read: every event of a request (its
    first byte, the end of its headers, a piece of its body) only moves the deadline, a
    number (``loop.time()`` seconds); the timer, when it fires early, sleeps on until the
    deadline it finds. On a kept-alive connection busy with short requests it fires about
    once per ``request_timeout``, however many requests pass.
    """

    request_timeout: float | None = None  # None: from the environment

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline_seconds = self.request_timeout or request_timeout_from_env()
        self._deadline = 0.0  # loop.time() by which the next piece of the request is due
        self._timer: asyncio.TimerHandle | None = None
        self._receiving = False  # the deadline applies: before a request's last byte

    def _watch(self) -> None:
        """Start the deadline: ``request_timeout`` from now, the timer set if it is not."""
        self._receiving = True
        self._deadline = self.loop.time() + self._deadline_seconds
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check)

    def _stop(self) -> None:
        self._receiving = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._watch()  # the first request must arrive in time

    def connection_lost(self, exc) -> None:
        self._stop()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._receiving:  # a request on a kept-alive connection
            self._watch()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # now: until the first body chunk (or the end of the request)
        self._deadline = self.loop.time() + self._deadline_seconds

    def handle_websocket_upgrade(self) -> None:
        self._stop()  # the connection is the WebSocket protocol's from here on
        super().handle_websocket_upgrade()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._deadline = self.loop.time() + self._deadline_seconds

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # idle from here: uvicorn's keep-alive timeout takes over; the timer, if still
        # set, finds nothing to watch when it fires and is not set again
        self._receiving = False

    def _check(self) -> None:
        self._timer = None
        if not self._receiving:
            return
        if self.loop.time() < self._deadline:  # the request moved on since the timer was set
            self._timer = self.loop.call_at(self._deadline, self._check)
            return
        self._too_slow()

    def _too_slow(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.flow is not None and self.flow.read_paused:
            self._watch()  # the server is not reading (its buffer is full): not the client's fault
            return
        if self.cycle is None or not self.cycle.response_started:
            body = json.dumps(
                {
                    "error": f"request not received within {self._deadline_seconds:g} s; "
                    "send the whole request without pauses",
                    "status": 408,
                }
            ).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app sees http.disconnect, sends nothing more
            self.cycle.message_event.set()
        self.transport.close()
