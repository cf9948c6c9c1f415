"""The ingest routes answered by the HTTP protocol itself, below ASGI.

uvicorn's ASGI machinery (a scope, a task, an event, receive and send coroutines per request)
costs ~13 of the ~22 us of CPU a bare ASGI endpoint takes per request here; answering from
the protocol takes ~9.5 (benchmarks/README.md). For a single-record ingest request, whose own
work is ~25 us, that was the largest cost left. So the common case of an ingest request, a
keep-alive HTTP/1.1 POST to an ingest path on an idle connection, is parsed and answered here:
the same `IngestRoute` work, checks and answers as `asgi.FastIngest`, which serves every other
case (a query string, `Expect: 100-continue`, HTTP/1.0, a request pipelined behind another, a
concurrency limit), and Litestar everything else.

The protocol extends uvicorn's httptools protocol: parsing, keep-alive, flow control, graceful
shutdown and pipelining stay uvicorn's. While an ingest request waits for its records to be
durable, an `_Exchange` stands where uvicorn keeps its request-response cycle, so a request
pipelined behind it waits its turn in uvicorn's queue.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from footfall.ingest.asgi import (
    INTERNAL_ERROR,
    Answer,
    FastIngest,
    IngestRoute,
    accepted_answer,
    admit,
    failure_answer,
    refused_answer,
    response_headers,
)
from footfall.ingest.http import Accepted, body_too_large


class _NoEvent:
    """uvicorn sets its cycle's message event when the connection is lost; nothing waits on
    an exchange's."""

    @staticmethod
    def set() -> None:
        pass


class _Exchange:
    """An ingest request answered by the protocol, in the place of uvicorn's cycle."""

    __slots__ = ("disconnected", "keep_alive", "response_complete")
    message_event = _NoEvent

    def __init__(self) -> None:
        self.response_complete = False
        self.keep_alive = True  # uvicorn's shutdown clears it: close once answered
        self.disconnected = False


class _Request:
    """The ingest request being parsed: its route, headers and IP, and its body so far."""

    __slots__ = ("chunks", "exchange", "headers", "ip", "route", "size")

    def __init__(self, route: IngestRoute, headers: dict[str, str], ip: str, exchange: _Exchange) -> None:
        self.route = route
        self.headers = headers
        self.ip = ip
        self.chunks: list[bytes] = []
        self.size = 0
        self.exchange = exchange


def ingest_protocol(fast: FastIngest) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, answering `fast`'s routes itself where it can."""
    routes = {path.encode(): route for path, route in fast.routes.items()}
    rt = fast.rt

    class IngestProtocol(HttpToolsProtocol):
        _ingest: _Request | None = None

        def on_message_begin(self) -> None:
            # uvicorn's scope waits for on_headers_complete, and is built only for the
            # requests that go the ASGI way.
            self.url = b""
            self.expect_100_continue = False
            self.headers = []
            self._ingest = None

        def on_headers_complete(self) -> None:
            route = routes.get(self.url)
            parser = self.parser
            if (
                route is None
                or parser.get_method() != b"POST"
                or self.expect_100_continue
                or not parser.should_keep_alive()
                or parser.get_http_version() != "1.1"
                or parser.should_upgrade()
                or not (self.cycle is None or self.cycle.response_complete)
                or self.limit_concurrency is not None
            ):
                url, headers, expect = self.url, self.headers, self.expect_100_continue
                super().on_message_begin()
                self.url, self.headers, self.expect_100_continue = url, headers, expect
                self.scope["headers"] = headers
                super().on_headers_complete()
                return
            fields = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.headers}
            exchange = _Exchange()
            self.cycle = exchange  # type: ignore[assignment]  # see the module's docstring
            client = self.client
            try:
                ip = admit(rt, route, client[0] if client else None, fields)
            except Exception as exc:
                # Answered before the body, which is then read and dropped, as uvicorn does
                # when an ASGI app answers early. (Raising here would reach the client as
                # uvicorn's 400 for a malformed request, and close the connection.)
                self._ingest = _Request(route, fields, "", exchange)
                self._answer(exchange, failure_answer(route, exc))
                return
            self._ingest = _Request(route, fields, ip, exchange)

        def on_body(self, body: bytes) -> None:
            request = self._ingest
            if request is None:
                super().on_body(body)
                return
            if request.exchange.response_complete:
                return  # answered already: the rest of the body is dropped
            request.size += len(body)
            if request.size > request.route.max_body:
                request.chunks = []
                self._answer(request.exchange, refused_answer(request.route, body_too_large(request.route.max_body)))
                return
            request.chunks.append(body)

        def on_message_complete(self) -> None:
            request = self._ingest
            if request is None:
                super().on_message_complete()
                return
            self._ingest = None
            exchange = request.exchange
            if exchange.response_complete:
                return
            route = request.route
            chunks = request.chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            try:
                accepted = route.work(request.ip, request.headers, body)
            except Exception as exc:
                self._answer(exchange, failure_answer(route, exc))
                return
            durable = accepted.durable
            if durable is None:
                self._answer(exchange, accepted_answer(route, accepted))
            else:
                durable.add_done_callback(lambda future: self._answer_durable(exchange, route, accepted, future))

        def _answer_durable(self, exchange: _Exchange, route: IngestRoute, accepted: Accepted, future: Any) -> None:
            if future.cancelled():
                self._answer(exchange, INTERNAL_ERROR)
            elif (error := future.exception()) is not None:
                self._answer(exchange, failure_answer(route, error))
            else:
                self._answer(exchange, accepted_answer(route, accepted))

        def _answer(self, exchange: _Exchange, answer: Answer) -> None:
            """Write the response, then let uvicorn go on with the connection: the next
            pipelined request, the keep-alive timer, or the close that shutdown asked for."""
            if exchange.response_complete:
                return
            exchange.response_complete = True
            transport = self.transport
            if transport.is_closing():  # the client went away while its records were synced
                return
            status, body, extra = answer
            content = [STATUS_LINE[status]]
            for name, value in (*self.server_state.default_headers, *response_headers(body, extra)):
                content += (name, b": ", value, b"\r\n")
            if not exchange.keep_alive:
                content.append(b"connection: close\r\n")
            content += (b"\r\n", body)
            transport.write(b"".join(content))
            if not exchange.keep_alive:
                transport.close()
            self.on_response_complete()

    return IngestProtocol
