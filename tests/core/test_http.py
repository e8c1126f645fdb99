"""Served connections send small responses at once."""

import asyncio
import socket

import pytest
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from backend.core.http import NoDelayHttpProtocol


@pytest.mark.parametrize(("protocol", "nodelay"), [(NoDelayHttpProtocol, True), (HttpToolsProtocol, False)])
async def test_served_connections_have_nagle_off(protocol, nodelay):
    """As uvicorn binds for several workers (proto 0), asyncio leaves Nagle on; our protocol turns it off."""
    config = Config(app=lambda *args: None, log_level="error")
    config.load()
    state, made = ServerState(), []

    def factory() -> asyncio.Protocol:
        made.append(protocol(config=config, server_state=state, app_state={}))
        return made[-1]

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = await asyncio.get_running_loop().create_server(factory, sock=listener)
    _, writer = await asyncio.open_connection(*listener.getsockname())
    for _ in range(100):
        if made and made[0].transport is not None:
            break
        await asyncio.sleep(0.01)
    accepted = made[0].transport.get_extra_info("socket")
    assert bool(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay
    writer.close()
    await writer.wait_closed()
    made[0].transport.close()
    await asyncio.sleep(0.01)  # the transport closes its socket on the next loop turn
    server.close()
    await server.wait_closed()
