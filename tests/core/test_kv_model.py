"""Property: any sequence of KV operations answers as a plain model of the port does, on every implementation."""

import asyncio
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.core.kv import GATE_MISSING, GATE_SHORT, MemoryKV, RedisKV

KEYS = st.sampled_from(["mall:test:a", "mall:test:b", "mall:test:c"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("get"), KEYS),
        st.tuples(st.just("set"), KEYS, st.integers(0, 50)),
        st.tuples(st.just("set_if_absent"), KEYS, st.integers(0, 50)),
        st.tuples(st.just("pop"), KEYS),
        st.tuples(st.just("pop_if_equal"), KEYS, st.integers(0, 3)),
        st.tuples(st.just("delete"), KEYS),
        st.tuples(st.just("incr"), KEYS),
        st.tuples(st.just("decr_if_enough"), KEYS, st.integers(1, 20)),
    ),
    max_size=40,
)


@dataclass
class Model:
    """What the port promises, with every key long-lived (expiry is tested with real time elsewhere)."""

    data: dict[str, int] = field(default_factory=dict)

    def apply(self, operation: tuple):
        name, key, *rest = operation
        if name == "get":
            return None if key not in self.data else str(self.data[key]).encode()
        if name == "set":
            self.data[key] = rest[0]
            return None
        if name == "set_if_absent":
            if key in self.data:
                return False
            self.data[key] = rest[0]
            return True
        if name == "pop":
            value = self.data.pop(key, None)
            return None if value is None else str(value).encode()
        if name == "pop_if_equal":
            if self.data.get(key) != rest[0]:
                return False
            del self.data[key]
            return True
        if name == "delete":
            self.data.pop(key, None)
            return None
        if name == "incr":
            self.data[key] = self.data.get(key, 0) + 1
            return self.data[key]
        if key not in self.data:
            return GATE_MISSING
        if self.data[key] < rest[0]:
            return GATE_SHORT
        self.data[key] -= rest[0]
        return self.data[key]


async def run(kv, operations: list[tuple]) -> list:
    results = []
    for name, key, *rest in operations:
        if name == "pop_if_equal":
            results.append(await kv.pop_if_equal(key, str(rest[0]).encode()))
        elif name in ("set", "set_if_absent"):
            kwargs = {"expires_in": 600} if name == "set_if_absent" else {}
            results.append(await getattr(kv, name)(key, str(rest[0]).encode(), **kwargs))
        elif name == "incr":
            results.append(await kv.incr(key, expires_in=600))
        elif name == "decr_if_enough":
            results.append(await kv.decr_if_enough(key, rest[0]))
        else:
            results.append(await getattr(kv, name)(key))
    return results


def implementations() -> list:
    found = [lambda: MemoryKV()]
    if os.environ.get("TEST_REDIS_URL"):
        found.append(lambda: RedisKV(os.environ["TEST_REDIS_URL"]))
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_every_kv_answers_like_the_model(operations):
    model = Model()
    expected = [model.apply(operation) for operation in operations]
    for make in implementations():

        async def check(make=make) -> list:
            kv = make()
            try:
                for key in ("mall:test:a", "mall:test:b", "mall:test:c"):
                    await kv.delete(key)
                return await run(kv, operations)
            finally:
                await kv.close()

        assert asyncio.run(check()) == expected
