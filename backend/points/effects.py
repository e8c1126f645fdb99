"""The ledger's part in every order's outcome: points earned on a paid order, redeemed points back when an
order closes unpaid, and points taken back in proportion when it is refunded. Registered at import of
`backend.points`.

A group-buy seat earns when its group succeeds (the sale is firm then): the group-buy domain calls
`earn_for_order` itself at that moment.
"""

from datetime import datetime

from backend.members import merges
from backend.membership import standing
from backend.orders.outcomes import ClosedOrder, Effects, PaidOrder, RefundedOrder, on_closed, on_paid, on_refunded
from backend.orders.tables import OrderKind
from backend.points import service as points
from backend.points.errors import PointsNeedMember, PointsNotExact
from backend.stores import service as stores

SOURCE = "order"  # points entries of an order: source ("order", its id), keys "order:{id}:..."


def refund_key(order_id: int, refund_id: int) -> str:
    return f"{SOURCE}:{order_id}:refund:{refund_id}"


async def earn_for_order(
    order_id: int, *, member_id: int, store_id: int, paid_fen: int, now: datetime, enrolled_now: bool = False
) -> Effects:
    """Points for what an order paid, at its store's rate times the member's multiplier (their tier's or paid
    plan's), once per order; answers how many, and the multiplier."""
    store = await stores.recent_store(store_id)
    multiplier = await standing.earn_multiplier(member_id, now)
    earned = paid_fen * store.points_per_yuan * multiplier // 10_000
    if earned:
        await points.earn(
            member_id,
            earned,
            store_id=store_id,
            source_type=SOURCE,
            source_id=str(order_id),
            idempotency_key=f"{SOURCE}:{order_id}:earn",
            now=now,
            enrolled_now=enrolled_now,
        )
    return Effects(points_earned=earned, points_multiplier_percent=multiplier)


def redemption_discount(points_to_redeem: int, *, amount_fen: int, member_id: int | None, per_yuan: int) -> int:
    """The fen `points_to_redeem` take off an order of `amount_fen`: whole fen, and never all of it."""
    if not points_to_redeem:
        return 0
    if member_id is None:
        raise PointsNeedMember()
    discount, remainder = divmod(points_to_redeem * 100, per_yuan)
    if remainder or discount >= amount_fen:
        raise PointsNotExact(details={"pointsPerYuan": per_yuan})
    return discount


async def redeem_for_order(
    order_id: int, *, member_id: int | None, points_to_redeem: int, store_id: int, now: datetime
) -> None:
    """Inside the transaction that places the order: its points are taken now, and come back if it is not paid
    (`release_redeemed`) or in proportion when it is refunded (`reverse_in_proportion`)."""
    if points_to_redeem and member_id is not None:
        await points.redeem(
            member_id,
            points_to_redeem,
            store_id=store_id,
            source_type=SOURCE,
            source_id=str(order_id),
            idempotency_key=f"{SOURCE}:{order_id}:redeem",
            now=now,
        )


@on_paid()
async def earn_on_payment(order: PaidOrder) -> Effects | None:
    if order.member_id is None or order.kind is OrderKind.groupbuy:
        return None
    return await earn_for_order(
        order.id,
        member_id=order.member_id,
        store_id=order.store_id,
        paid_fen=order.paid_fen,
        now=order.paid_at,
        enrolled_now=order.member_enrolled,
    )


@on_closed()
async def release_redeemed(order: ClosedOrder) -> None:
    """The order will not be paid: the points it reserved come back into the lots they were taken from."""
    if order.points_redeemed:
        await points.reverse(
            SOURCE, str(order.id), refunded=1, of=1, idempotency_key=f"{SOURCE}:{order.id}:release", now=order.closed_at
        )


@on_refunded()
async def reverse_in_proportion(order: RefundedOrder) -> None:
    """Earned points are taken back (debt where they are spent) and redeemed ones given back, in proportion
    to what has been refunded so far; over all of an order's refunds each reaches exactly its share."""
    if order.late:
        return  # the order never counted as paid: nothing was earned or kept
    await points.reverse(
        SOURCE,
        str(order.id),
        refunded=order.refunded_fen,
        of=order.paid_fen,
        idempotency_key=refund_key(order.id, order.refund_id),
        now=order.settled_at,
    )


@merges.on_merge(merges.POINTS)
async def move_points(survivor_id: int, merged_id: int, now: datetime) -> merges.Moved:
    moved = await points.merge_accounts(survivor_id, merged_id, now=now)
    return merges.Moved(points=moved["points"], debt=moved["debt"], lots=moved["lots"])
