"""The HTTP protocol the server runs: uvicorn's httptools protocol with Nagle off on every connection.

asyncio only sets TCP_NODELAY on sockets whose `proto` is IPPROTO_TCP; with
several workers uvicorn binds the listening socket with proto 0, so every
response would wait for the client's delayed ACK (40 ms a request, measured).
"""

import asyncio
import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class NoDelayHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
