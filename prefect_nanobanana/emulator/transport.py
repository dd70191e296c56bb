"""Closing a client's connection from inside the ASGI app, without uvicorn answering 500.

ASGI gives an app no way to drop a connection: if it raises or returns before responding, uvicorn
sends a 500, which is exactly what a "response lost in transit" test must not see. The emulator's
uvicorn protocol classes therefore remember each connection's transport, keyed by the same
(client, server) address pair that uvicorn puts in the ASGI scope, so a handler can close the socket
itself and then wait until uvicorn has noticed (after which uvicorn writes nothing more).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ConnectionDropped", "EmulatorH11Protocol", "close_connection", "protocol_class"]

_Address = tuple[str, int]
_transports: dict[tuple[_Address, _Address], asyncio.Transport] = {}


class ConnectionDropped(Exception):
    """Raised when the app runs outside the emulator's uvicorn protocol and cannot drop a connection."""


def _key(client: Any, server: Any) -> tuple[_Address, _Address] | None:
    if not client or not server:
        return None
    return (str(client[0]), int(client[1])), (str(server[0]), int(server[1]))


class _RegistryMixin:
    """Records the transport of every open connection under its (client, server) addresses."""

    transport: asyncio.Transport
    client: Any
    server: Any

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio only sets TCP_NODELAY when the listening socket was created with
            # proto=IPPROTO_TCP; without it every small response waits ~40 ms for a delayed ACK.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = _key(self.client, self.server)
        if key is not None:
            _transports[key] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        key = _key(self.client, self.server)
        if key is not None and _transports.get(key) is self.transport:
            del _transports[key]
        super().connection_lost(exc)  # type: ignore[misc]


class EmulatorH11Protocol(_RegistryMixin, H11Protocol):  # type: ignore[misc]
    """uvicorn's h11 protocol, plus the transport registry."""


def protocol_class() -> type[asyncio.Protocol]:
    """Return the HTTP protocol class uvicorn should use: httptools when installed, else h11."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return EmulatorH11Protocol

    class EmulatorHttpToolsProtocol(_RegistryMixin, HttpToolsProtocol):  # type: ignore[misc]
        """uvicorn's httptools protocol, plus the transport registry."""

    return EmulatorHttpToolsProtocol


async def close_connection(scope: Any, receive: Any, *, wait: float = 5.0) -> None:
    """Close the connection of `scope` after flushing anything already sent, and wait until it is gone.

    After this returns, the handler must not send anything (uvicorn drops it anyway, because it has
    seen the disconnect). Raises ConnectionDropped when not running under the emulator's protocol.
    """
    key = _key(scope.get("client"), scope.get("server"))
    transport = _transports.get(key) if key is not None else None
    if transport is None:
        raise ConnectionDropped("connection dropped by fault injection")
    # close(), not abort(): bytes already written (a truncated body) still reach the client first.
    transport.close()

    async def _until_disconnect() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(_until_disconnect(), wait)
