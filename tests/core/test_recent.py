"""Recently read answers: loaded once while they are fresh, None included, and forgotten on demand."""

import asyncio

from backend.core.recent import Recent


async def test_an_answer_is_loaded_once_while_fresh_then_again():
    recent: Recent[int, str | None] = Recent(0.05)
    loads: list[int] = []

    async def load(key: int) -> str | None:
        loads.append(key)
        return None if key == 2 else f"row {key}"

    assert await recent.read(1, lambda: load(1)) == "row 1"
    assert await recent.read(1, lambda: load(1)) == "row 1"
    assert await recent.read(2, lambda: load(2)) is None
    assert await recent.read(2, lambda: load(2)) is None  # "there is none" is an answer too
    assert loads == [1, 2]
    recent.forget(1)
    await recent.read(1, lambda: load(1))
    await asyncio.sleep(0.06)
    await recent.read(2, lambda: load(2))
    assert loads == [1, 2, 1, 2]
    Recent.forget_everything()
    await recent.read(1, lambda: load(1))
    assert loads == [1, 2, 1, 2, 1]


async def test_a_read_begun_before_a_forget_is_not_kept():
    recent: Recent[str, int] = Recent(60)
    loading, value = asyncio.Event(), 1

    async def slow_load() -> int:
        answer = value
        await loading.wait()
        return answer

    reader = asyncio.create_task(recent.read("page", slow_load))
    await asyncio.sleep(0)
    value = 2
    recent.forget()  # a change lands while the first read is still loading the old answer
    loading.set()
    assert await reader == 1  # that reader gets what it read
    assert await recent.read("page", slow_load) == 2  # but it was not kept for the next


async def test_reads_of_a_key_being_loaded_wait_for_that_one_load():
    recent: Recent[str, int] = Recent(60, coalesce=True)
    loads, release = [], asyncio.Event()

    async def load() -> int:
        loads.append(1)
        await release.wait()
        return len(loads)

    readers = [asyncio.create_task(recent.read("page", load)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*readers) == [1] * 20 and loads == [1]

    async def broken() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("the database went away")

    failing = [asyncio.create_task(recent.read("other", broken)) for _ in range(3)]
    outcomes = await asyncio.gather(*failing, return_exceptions=True)
    assert [type(o) for o in outcomes] == [RuntimeError] * 3
    assert await recent.read("other", load) == 2  # a failed load is not kept


async def test_a_load_cancelled_with_its_request_leaves_the_others_to_load_for_themselves():
    recent: Recent[str, int] = Recent(60, coalesce=True)
    started, loads = asyncio.Event(), []

    async def load() -> int:
        loads.append(1)
        started.set()
        await asyncio.sleep(0 if len(loads) > 1 else 10)
        return len(loads)

    first = asyncio.create_task(recent.read("page", load))
    await started.wait()
    second = asyncio.create_task(recent.read("page", load))
    await asyncio.sleep(0)
    first.cancel()  # its client went away mid-load
    assert await second == 2 and loads == [1, 1]
    assert first.cancelled()
