"""Which lots a redemption drains, and how far a partial refund reverses: the rules, not only the sums."""

from datetime import UTC, datetime, timedelta

from backend.core.db import insert_row
from backend.members.tables import Member
from backend.points import service as points
from backend.points.tables import EntryKind, PointsLot, PointsLotUse

NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)


async def lot_of(entry_id: int) -> int:
    return (await PointsLot.select(PointsLot.id).where(PointsLot.entry == entry_id).first())["id"]


async def test_a_redemption_drains_the_soonest_expiring_lots_first_ties_by_age(demo):
    member_id = await insert_row(Member, enrolled_via="cashier")
    # Earned in May, in January, and twice in March: they expire in that order of their months of earning.
    earned = {}
    for name, month in (("may", 5), ("january", 1), ("march_a", 3), ("march_b", 3)):
        posted = await points.earn(
            member_id,
            100,
            store_id=demo["S001"],
            source_type="test",
            source_id=name,
            idempotency_key=f"earn-{name}",
            now=datetime(2026, month, 10, tzinfo=UTC),
        )
        earned[name] = await lot_of(posted.entry_id)
    redeemed = await points.redeem(
        member_id, 250, store_id=demo["S001"], source_type="order", source_id="1", idempotency_key="redeem-250", now=NOW
    )
    uses = (
        await PointsLotUse.select(PointsLotUse.lot, PointsLotUse.points)
        .where(PointsLotUse.entry == redeemed.entry_id)
        .order_by(PointsLotUse.id)
    )
    assert [(use["lot"], use["points"]) for use in uses] == [
        (earned["january"], 100),
        (earned["march_a"], 100),
        (earned["march_b"], 50),
    ]
    remaining = {row["id"]: row["remaining"] for row in await PointsLot.select(PointsLot.id, PointsLot.remaining)}
    assert [remaining[earned[name]] for name in ("january", "march_a", "march_b", "may")] == [0, 0, 50, 100]


async def test_partial_refunds_reverse_the_floor_of_their_share_and_all_of_it_at_the_end(demo):
    member_id = await insert_row(Member, enrolled_via="cashier")
    await points.earn(
        member_id,
        100,
        store_id=demo["S001"],
        source_type="order",
        source_id="7",
        idempotency_key="order:7:earn",
        now=NOW,
    )
    taken = []
    for refunded in (1, 2, 3):  # a third, two thirds, all of it
        posted = await points.reverse(
            "order",
            "7",
            refunded=refunded,
            of=3,
            idempotency_key=f"order:7:refund:{refunded}",
            now=NOW + timedelta(days=refunded),
        )
        taken.append(sum(-p.delta + p.debt_delta for p in posted if p.kind is EntryKind.reverse_earn))
    assert taken == [33, 66 - 33, 100 - 66]  # floor(100/3), floor(200/3), then the rest: never rounded up early
    assert await points.balance_of(member_id) == (0, 0)
