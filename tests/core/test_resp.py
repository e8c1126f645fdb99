"""The one pipelined Redis connection: every request's commands on it, each answered its own reply, and every
wait bounded when the real redis-server is paused or gone."""

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from backend.core.errors import KVUnavailable
from backend.core.kv import RedisKV
from backend.core.resp import CommandError, RedisConnection

pytestmark = pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="a real redis-server")


@pytest.fixture
async def connection(redis_process):
    connection = RedisConnection(redis_process.url, timeout=2)
    yield connection
    await connection.close()


async def test_concurrent_commands_share_one_connection_and_each_gets_its_own_reply(connection):
    await asyncio.gather(*(connection.execute("SET", f"k{n}", f"v{n}") for n in range(500)))
    replies = await asyncio.gather(*(connection.execute("GET", f"k{n}") for n in range(500)))
    assert replies == [f"v{n}".encode() for n in range(500)]
    clients = await connection.execute("CLIENT", "LIST")
    assert clients.count(b"cmd=") == 1  # every one of those commands went over one connection


async def test_a_request_that_gave_up_leaves_the_order_of_replies_intact(connection):
    await connection.execute("SET", "a", "1")
    await connection.execute("SET", "b", "2")
    slow = asyncio.ensure_future(connection.execute("GET", "a"))
    after = asyncio.ensure_future(connection.execute("GET", "b"))
    await asyncio.sleep(0)
    slow.cancel()
    assert await after == b"2"  # not the reply owed to the request that was cancelled
    assert await connection.execute("GET", "a") == b"1"


async def test_an_error_reply_is_the_commands_own_and_the_connection_goes_on(connection):
    await connection.execute("SET", "s", "text")
    wrong, right = await asyncio.gather(
        connection.execute("INCR", "s"), connection.execute("GET", "s"), return_exceptions=True
    )
    assert isinstance(wrong, CommandError) and "not an integer" in str(wrong)
    assert right == b"text"


async def test_the_url_selects_the_database(redis_process):
    kv = RedisKV(redis_process.url.removesuffix("/0") + "/3")
    inspect, other = Redis(port=redis_process.port, db=3), Redis(port=redis_process.port, db=0)
    try:
        await kv.set("mall:test:db", b"three")
        assert await inspect.get("mall:test:db") == b"three"
        assert await other.get("mall:test:db") is None
    finally:
        await kv.close()
        await inspect.aclose()
        await other.aclose()


async def test_scripts_are_sent_again_to_a_server_that_lost_them(redis_process):
    kv = RedisKV(redis_process.url)
    inspect = Redis(port=redis_process.port)
    try:
        assert await kv.incr("mall:test:window", expires_in=60) == 1
        await inspect.script_flush()  # as a restarted server has no scripts
        assert await kv.incr("mall:test:window", expires_in=60) == 2
    finally:
        await kv.close()
        await inspect.aclose()


async def test_a_paused_redis_fails_every_waiting_command_in_time_and_the_connection_recovers(redis_process):
    kv = RedisKV(redis_process.url, timeout=0.5)
    pid = int(Path(redis_process.pidfile).read_text())
    try:
        await kv.set("mall:test:p", b"1")
        os.kill(pid, signal.SIGSTOP)
        began = time.monotonic()
        try:
            answers = await asyncio.gather(*(kv.get("mall:test:p") for _ in range(20)), return_exceptions=True)
        finally:
            os.kill(pid, signal.SIGCONT)
        waited = time.monotonic() - began
        assert all(isinstance(answer, KVUnavailable) for answer in answers)
        assert 0.5 <= waited < 1.5  # the timeout and the watchdog's quarter of it, not a hang
        assert await kv.get("mall:test:p") == b"1"  # a new connection, once Redis answers again
    finally:
        await kv.close()


async def test_a_redis_that_is_gone_answers_at_once_and_one_started_again_is_used(redis_process):
    kv = RedisKV(redis_process.url, timeout=2)
    try:
        await kv.set("mall:test:g", b"1")
        redis_process.kill()
        began = time.monotonic()
        with pytest.raises(KVUnavailable):
            await kv.get("mall:test:g")
        with pytest.raises(KVUnavailable):
            await kv.get("mall:test:g")  # refused on connecting: no waiting
        assert time.monotonic() - began < 1
        redis_process.start()
        assert await kv.get("mall:test:g") is None  # started empty, and answering
    finally:
        await kv.close()


async def test_a_password_in_the_url_signs_the_connection_in(redis_process):
    admin = Redis(port=redis_process.port)
    await admin.config_set("requirepass", "s3cret-pass")
    right = RedisKV(f"redis://:s3cret-pass@127.0.0.1:{redis_process.port}/0")
    wrong = RedisKV(f"redis://:not-it@127.0.0.1:{redis_process.port}/0")
    try:
        await right.set("mall:test:auth", b"1")
        assert await right.get("mall:test:auth") == b"1"
        with pytest.raises(KVUnavailable):  # refused on connecting: a wrong password is Redis not serving us
            await wrong.get("mall:test:auth")
    finally:
        await right.close()
        await wrong.close()
        await admin.execute_command("AUTH", "s3cret-pass")
        await admin.config_set("requirepass", "")
        await admin.aclose()
