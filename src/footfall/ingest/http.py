"""What every ingest contract shares: errors, client IP, body limits, JSON field errors."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import re
import socket
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from footfall.config import IPNetwork

_ERROR_ENCODER = msgspec.json.Encoder()


class IngestError(Exception):
    """An ingest request refused with a status code, a message and the field at fault."""

    def __init__(
        self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> bytes:
        return _ERROR_ENCODER.encode({"error": self.message, "field": self.field})


class Accepted(NamedTuple):
    """What a contract's work returns for a request it accepts: the spool's future for its
    events (None when nothing is stored, e.g. DNT), the success body, status and media type."""

    durable: asyncio.Future[None] | None
    body: bytes
    status: int = 202
    content_type: str | None = None  # None: application/json


def refuse_if_limited(wait: float) -> None:
    """429 with Retry-After when a rate limiter says to wait `wait` seconds (0: go ahead)."""
    if wait > 0:
        raise IngestError(429, "rate limit exceeded; slow down", headers={"Retry-After": str(math.ceil(wait))})


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> str:
    """The visitor's IP: the peer, unless the peer is a trusted proxy that says otherwise.

    X-Forwarded-For is read right to left, skipping trusted proxies, so a client cannot
    forge its address by sending its own header through the proxy.
    """
    peer = peer or ""
    if not forwarded_for or not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop if canonical_ip(hop) is not None else peer
    return hops[0] if hops and canonical_ip(hops[0]) is not None else peer


def from_trusted_proxy(peer: str | None, trusted: tuple[IPNetwork, ...]) -> bool:
    """Whether the peer is one of the proxies whose forwarding headers are believed."""
    return bool(peer and trusted) and _in(peer or "", trusted)


def canonical_ip(text: str) -> str | None:
    """The address in canonical text form (so one visitor hashes one way), or None.

    An IPv4 client that a dual-stack socket or proxy reports as ::ffff:a.b.c.d becomes
    a.b.c.d, so it is one visitor, and IPv4 exclusions and proxy ranges apply to it.
    inet_pton/inet_ntop do in C what `ipaddress` does in Python, on the hot ingest path.
    """
    text = text.strip()
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        packed = socket.inet_pton(family, text)
    except (OSError, ValueError):
        return None
    if family == socket.AF_INET6 and packed[:12] == _V4_MAPPED_PREFIX:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(family, packed)


_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
ANONYMOUS_ADDRESS = "0.0.0.0"


def visitor_address(*candidates: str | None) -> str:
    """The first candidate that is an IP address, canonical. With none (a unix-socket peer, a
    backend that did not pass one), the visitor is one anonymous address."""
    for candidate in candidates:
        ip = canonical_ip(candidate) if candidate else None
        if ip is not None:
            return ip
    return ANONYMOUS_ADDRESS


def _in(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return any(ip in net or ip.ipv4_mapped in net for net in networks)
    return any(ip in net for net in networks)


def require_json(headers: Mapping[str, str]) -> None:
    content_type = headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise IngestError(415, "Content-Type must be application/json")


def body_too_large(limit: int) -> IngestError:
    return IngestError(413, f"request body is larger than {limit} bytes")


def check_declared_length(headers: Mapping[str, str], limit: int) -> None:
    declared = headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)


_MISSING = re.compile(r"missing required field `([^`]+)`")
_AT = re.compile(r" - at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]]*\])*)`")
# msgspec writes a dict value's key as `[...]`; the dict itself is then the field to name.
_DICT_KEY = re.compile(r"\[\.\.\.\]")


def validation_field(error: msgspec.ValidationError, prefix: str = "") -> str | None:
    """The field a msgspec validation error is about, as a dotted path."""
    text = str(error)
    path = ""
    at = _AT.search(text)
    if at:
        path = _DICT_KEY.sub("", at.group(1))
        path = re.sub(r"\[['\"]?([^'\"\]]*)['\"]?\]", r".\1", path).lstrip(".")
    missing = _MISSING.search(text)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    if prefix and path:
        path = f"{prefix}.{path}"
    return path or prefix or None


def validation_message(error: msgspec.ValidationError) -> str:
    text = str(error)
    return _AT.sub("", text)


def decode_json(body: bytes, type_: Any) -> Any:
    """Decode a request body: 400 for broken JSON, 422 naming the field for a wrong shape."""
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        # msgspec checks types while it parses, so a truncated or trailing-garbage body can
        # fail on a field first; broken JSON is still a 400, so check the syntax on this path.
        _check_syntax(body)
        raise IngestError(422, validation_message(exc), validation_field(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise malformed(exc) from None


def malformed(exc: msgspec.DecodeError | UnicodeDecodeError) -> IngestError:
    """The 400 for bytes that are not JSON. Bad bytes in a string raise UnicodeDecodeError in
    msgspec before 0.23 and a DecodeError ("Invalid UTF-8 encoded string") from 0.23 on."""
    if isinstance(exc, UnicodeDecodeError):
        return not_utf8()
    return IngestError(400, f"malformed JSON: {exc}")


def not_utf8() -> IngestError:
    return IngestError(400, "malformed JSON: a string is not valid UTF-8")


def _check_syntax(body: bytes) -> None:
    # Decoding to Raw checks the structure without judging values (1e400 is valid JSON).
    try:
        msgspec.json.decode(body, type=msgspec.Raw)
    except msgspec.DecodeError as exc:
        raise IngestError(400, f"malformed JSON: {exc}") from None
