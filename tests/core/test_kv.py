"""The KV port's semantics, on the in-process store and on a real redis-server."""

import asyncio
import os

import pytest

from backend.core.kv import GATE_MISSING, GATE_SHORT, MemoryKV, RedisKV


def kinds() -> list:
    params = [pytest.param("memory", id="memory")]
    if os.environ.get("TEST_REDIS_URL"):
        params.append(pytest.param("redis", id="redis"))
    return params


@pytest.fixture(params=kinds())
async def kv(request):
    store = MemoryKV() if request.param == "memory" else RedisKV(os.environ["TEST_REDIS_URL"])
    yield store
    await store.close()


async def test_get_set_delete_and_expiry(kv):
    assert await kv.get("mall:test:a") is None
    await kv.set("mall:test:a", b"1")
    await kv.set("mall:test:b", b"2", expires_in=0.05)
    assert await kv.get("mall:test:a") == b"1"
    assert await kv.get("mall:test:b") == b"2"
    await asyncio.sleep(0.1)
    assert await kv.get("mall:test:b") is None
    await kv.delete("mall:test:a")
    assert await kv.get("mall:test:a") is None


async def test_set_if_absent_admits_one_of_many(kv):
    results = await asyncio.gather(
        *(kv.set_if_absent("mall:test:once", str(i).encode(), expires_in=5) for i in range(50))
    )
    assert results.count(True) == 1


async def test_pop_hands_a_value_to_exactly_one_caller(kv):
    await kv.set("mall:test:code", b"v", expires_in=5)
    results = await asyncio.gather(*(kv.pop("mall:test:code") for _ in range(50)))
    assert [r for r in results if r is not None] == [b"v"]


async def test_incr_counts_every_hit_and_keeps_its_window(kv):
    values = await asyncio.gather(*(kv.incr("mall:test:n", expires_in=0.2) for _ in range(40)))
    assert sorted(values) == list(range(1, 41))
    await asyncio.sleep(0.3)
    assert await kv.incr("mall:test:n", expires_in=0.2) == 1


async def test_decr_if_enough_never_oversells(kv):
    assert await kv.decr_if_enough("mall:test:stock", 1) == GATE_MISSING
    await kv.set("mall:test:stock", b"20")
    results = await asyncio.gather(*(kv.decr_if_enough("mall:test:stock", 1) for _ in range(200)))
    assert sum(r >= 0 for r in results) == 20
    assert results.count(GATE_SHORT) == 180
    assert await kv.get("mall:test:stock") == b"0"
    await kv.set("mall:test:stock", b"3")
    assert await kv.decr_if_enough("mall:test:stock", 5) == GATE_SHORT
    assert await kv.decr_if_enough("mall:test:stock", 3) == 0


async def test_give_back_adds_only_to_a_gate_that_exists(kv):
    assert await kv.give_back("mall:test:gate", 2) == GATE_MISSING
    assert await kv.get("mall:test:gate") is None  # never guessed into being
    await kv.set("mall:test:gate", b"1", expires_in=5)
    assert await kv.decr_if_enough("mall:test:gate", 1) == 0
    assert sorted(await asyncio.gather(*(kv.give_back("mall:test:gate", 1) for _ in range(3)))) == [1, 2, 3]
    assert await kv.get("mall:test:gate") == b"3" and 0 < await kv.ttl("mall:test:gate") <= 5


async def test_ping(kv):
    assert await kv.ping() is True


async def test_ttl_reports_what_is_left(kv):
    assert await kv.ttl("mall:test:none") is None
    await kv.set("mall:test:forever", b"1")
    assert await kv.ttl("mall:test:forever") is None
    await kv.incr("mall:test:window", expires_in=30)
    await kv.incr("mall:test:window", expires_in=30)  # a later hit does not extend the window
    assert 28 < await kv.ttl("mall:test:window") <= 30
