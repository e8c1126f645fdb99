"""Prepared queries and insert_row answer exactly what the same inline Piccolo queries answer, on either engine."""

import pytest

from backend.core.clock import utcnow
from backend.core.db import Prepared, insert_row, write_transaction
from backend.members.tables import EnrolmentChannel, Member, MemberStatus
from backend.stores.tables import Store


async def test_insert_row_matches_piccolo_insert_with_defaults():
    async with write_transaction():
        fast_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier)
        plain = await Member.insert(Member(enrolled_via=EnrolmentChannel.cashier))
    fast = await Member.select().where(Member.id == fast_id).first()
    slow = await Member.select().where(Member.id == plain[0]["id"]).first()
    assert fast_id != plain[0]["id"]
    for row in (fast, slow):
        assert row["status"] == MemberStatus.active and row["enrolled_via"] == "cashier"
        assert row["nickname"] == "" and row["enrolled_store"] is None
        assert row["created_at"].tzinfo is not None
    assert abs((fast["created_at"] - slow["created_at"]).total_seconds()) < 60


async def test_insert_row_refuses_unknown_columns_and_obeys_constraints():
    with pytest.raises(TypeError, match="no columns"):
        await insert_row(Store, code="X1", name="x", owner="nobody")
    with pytest.raises(Exception, match="points_rate_in_range"):
        async with write_transaction():
            await insert_row(Store, code="X2", name="x", points_per_yuan=-5)
    assert await Store.count() == 0


async def test_prepared_queries_answer_what_the_inline_queries_answer():
    ids = [await insert_row(Store, code=f"P{i}", name=f"prepared {i}", points_per_yuan=i) for i in range(3)]
    one = Prepared(lambda store_id: Store.select().where(Store.id == store_id).first())
    for store_id in ids + [10**9]:
        assert await one.run(store_id) == await Store.select().where(Store.id == store_id).first()
    some = Prepared(
        lambda least, active: (
            Store.select(Store.id, Store.code)
            .where((Store.points_per_yuan >= least) & (Store.active == active))
            .order_by(Store.id, ascending=False)
        )
    )
    assert await some.run(1, True) == await Store.select(Store.id, Store.code).where(
        (Store.points_per_yuan >= 1) & (Store.active == True)  # noqa: E712
    ).order_by(Store.id, ascending=False)
    assert [row["id"] for row in await some.run(1, True)] == [ids[2], ids[1]]

    member_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier)
    at = utcnow()
    touch = Prepared(
        lambda member_id, status, when: (
            Member.update({Member.status: status, Member.created_at: when})
            .where((Member.id == member_id) & Member.merged_into.is_null())
            .returning(*Member.all_columns())
        )
    )
    async with write_transaction():
        updated = await touch.run(member_id, MemberStatus.active, at)
    assert updated == [await Member.select().where(Member.id == member_id).first()]
    assert updated[0]["created_at"] == at and updated[0]["status"] == "active"
    assert await touch.run(10**9, MemberStatus.active, at) == []


async def test_prepared_queries_that_ask_for_processing_get_it():
    store_id = await insert_row(Store, code="N1", name="nested")
    member_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier, enrolled_store=store_id)
    nested = Prepared(
        lambda member_id: (
            Member.select(Member.id, Member.enrolled_store.name)
            .where(Member.id == member_id)
            .output(nested=True)
            .first()
        )
    )
    inline = (
        await Member.select(Member.id, Member.enrolled_store.name)
        .where(Member.id == member_id)
        .output(nested=True)
        .first()
    )
    assert await nested.run(member_id) == inline == {"id": member_id, "enrolled_store": {"name": "nested"}}


async def test_prepared_queries_refuse_what_they_cannot_bind():
    one = Prepared(lambda store_id: Store.select().where(Store.id == store_id).first())
    with pytest.raises(TypeError, match="None"):
        await one.run(None)
    unbound = Prepared(lambda store_id: Store.select().where(Store.id == 1).first())
    with pytest.raises(TypeError, match="bound"):
        await unbound.run(1)
