"""Mini-program mall orders: placed against a store's stock, paid by JSAPI, prepared, picked up or delivered.

A mall order is an order of kind `mall`: its money moves through `payments/` like every order's, and what
happens to the mall order when its order is paid, closed or refunded is registered in `mall.effects`. What
stays here is its own: taking the stock of every line with the order (all or nothing), giving it back
once, the store's work on it (ready, a pickup code, picked up or delivered), and refunds by line.

    pending_payment -> paid -> ready -> picked_up | delivered
    pending_payment -> cancelled (closed unpaid: expired or cancelled by the shopper; stock back)
    paid | ready -> cancelled (every unit asked back before hand-over) -> refunded (the money back, stock back)
    any paid state -> refunded (every fen back) | partially_refunded (some, after it was handed over)
"""

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from backend.catalogue.tables import ProductStatus, StoreInventory
from backend.core.clock import utcnow
from backend.core.db import Prepared, insert_row, is_unique_violation, write_transaction
from backend.core.idempotency import request_hash
from backend.core.pickup import new_pickup_code, normalise
from backend.coupons import service as coupons
from backend.coupons.errors import CouponNotUsable
from backend.mall.errors import (
    AddressRequired,
    IdempotencyConflict,
    LinesInvalid,
    MallOrderNotFound,
    NoDelivery,
    NothingToPay,
    NothingToRefund,
    OutOfStock,
    OutsideDeliveryArea,
    RefundLinesInvalid,
    SkusNotSold,
    StoreNotFound,
    WrongStatus,
)
from backend.mall.schemas import AddressIn, LineIn, MallOrderCreate, RefundLineIn
from backend.mall.tables import HANDED_OVER, Fulfilment, MallOrder, MallRefundLine, MallStatus
from backend.members import service as members
from backend.membership import standing
from backend.orders import service as orders
from backend.orders.outcomes import NO_MULTIPLIER
from backend.orders.service import ChannelFields, LineItem, LineRecord, OrderRecord
from backend.orders.tables import OrderKind, OrderLine, OrderStatus
from backend.payments import refunds
from backend.payments import service as payments
from backend.payments.errors import AlreadyPaid, RefundConflict, RefundExceedsPaid, RefundRejected
from backend.payments.numbers import new_out_trade_no
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import PaymentProvider
from backend.payments.refunds import SHOPPER_CANCEL_KEY, RefundRecord
from backend.payments.tables import RefundStatus, TradeMethod
from backend.points.effects import redeem_for_order, redemption_discount
from backend.stores import service as stores
from backend.stores.service import StoreRecord

logger = logging.getLogger(__name__)

CANCELLED_BY_SHOPPER = "CANCELLED"  # the closed order's failure reason when its shopper cancelled it unpaid
EARTH_RADIUS_M = 6_371_000


@dataclass(frozen=True, slots=True)
class Placed:
    order: OrderRecord
    pay_params: dict[str, str] | None
    created: bool  # False: a replay of an earlier request with the same key
    channel: ChannelFields | None = None  # a new order's own fields, as they were just written
    store_name: str = ""


@dataclass(frozen=True, slots=True)
class MallOrderRecord:
    order: int
    store: int
    fulfilment: Fulfilment
    status: MallStatus


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> int:
    """Metres along the earth's surface between two points (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return round(2 * EARTH_RADIUS_M * math.asin(math.sqrt(a)))


def _order_key(member_id: int, key: str) -> str:
    """The order's idempotency key: the member's own, unique per member (the order's is unique per store)."""
    return "mall-" + hashlib.sha256(f"{member_id}:{key}".encode()).hexdigest()[:40]


def _check_delivery(store: StoreRecord, data: MallOrderCreate) -> int | None:
    """The distance of a delivery's address from the store, within its radius; None for a pickup."""
    if data.fulfilment is Fulfilment.pickup:
        return None
    if data.address is None:
        raise AddressRequired()
    if not store.delivery_radius_m or store.latitude is None or store.longitude is None:
        raise NoDelivery(store_id=store.id)
    distance = distance_m(store.latitude, store.longitude, data.address.latitude, data.address.longitude)
    if distance > store.delivery_radius_m:
        raise OutsideDeliveryArea(details={"distanceM": distance, "deliveryRadiusM": store.delivery_radius_m})
    return distance


# Placing --------------------------------------------------------------------------------------------

_SOLD_HERE = Prepared(
    lambda store_id, sku_id: (
        StoreInventory.select(
            StoreInventory.price_fen,
            StoreInventory.sku.price_fen.as_alias("hq_price_fen"),
            StoreInventory.sku.member_price_fen.as_alias("member_price_fen"),
            StoreInventory.sku.spec.as_alias("spec"),
            StoreInventory.sku.product.title.as_alias("title"),
        )
        .where(
            (StoreInventory.store == store_id)
            & (StoreInventory.sku == sku_id)
            & StoreInventory.available.eq(True)
            & (StoreInventory.sku.product.status == ProductStatus.on_sale)
        )
        .first()
    )
)
_TAKE_STOCK = Prepared(
    lambda quantity, store_id, sku_id, enough: (
        StoreInventory.update({StoreInventory.on_hand: StoreInventory.on_hand - quantity})
        .where(
            (StoreInventory.store == store_id)
            & (StoreInventory.sku == sku_id)
            & (StoreInventory.on_hand >= enough)
            & StoreInventory.available.eq(True)
        )
        .returning(StoreInventory.id)
    )
)


async def _priced_lines(store_id: int, lines: list[LineIn], *, member_prices: bool) -> tuple[tuple[LineItem, ...], int]:
    """Each line at the store's price now (its own, else HQ's), or at the member price where the member has member
    prices and the SKU one (never above the store's); a SKU it does not sell now is 422, named. Answers the lines and
    what member prices saved on them."""
    sku_ids = [line.sku_id for line in lines]
    if len(set(sku_ids)) != len(sku_ids):
        raise LinesInvalid(details={"skuIds": "each SKU once"})
    sold = {}
    for sku_id in sku_ids:  # one indexed read each (an order has a few lines): prepared, unlike an IN list
        if (row := await _SOLD_HERE.run(store_id, sku_id)) is not None:
            sold[sku_id] = row
    if missing := [sku_id for sku_id in sku_ids if sku_id not in sold]:
        raise SkusNotSold(details={"skuIds": missing}, store_id=store_id)
    priced, saved = [], 0
    for line in lines:
        row = sold[line.sku_id]
        price = row["price_fen"] if row["price_fen"] is not None else row["hq_price_fen"]
        if member_prices and row["member_price_fen"] is not None and row["member_price_fen"] < price:
            saved += (price - row["member_price_fen"]) * line.quantity
            price = row["member_price_fen"]
        priced.append(
            LineItem(
                title=f"{row['title']} {row['spec']}"[:100],
                quantity=line.quantity,
                unit_price_fen=price,
                sku_id=line.sku_id,
            )
        )
    return tuple(priced), saved


def _digest(data: MallOrderCreate) -> str:
    address = data.address
    return request_hash(
        store_id=data.store_id,
        lines=sorted((line.sku_id, line.quantity) for line in data.lines),
        fulfilment=data.fulfilment.value,
        address=None
        if address is None
        else [address.name, address.phone, address.text, address.latitude, address.longitude],
        points=data.points_to_redeem,
        coupon=data.coupon_id,
    )


async def place(
    member_id: int,
    data: MallOrderCreate,
    *,
    pay_within: float,
    redeem_points_per_yuan: int,
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> Placed:
    """Place the member's order at a store and ask WeChat Pay for its money: the order, its trade, the stock
    of every line and the points it redeems in one transaction, or nothing. The same key again answers the
    order it made (a different request under it is 409)."""
    store = await stores.recent_store(data.store_id)
    if store is None or not store.active:
        raise StoreNotFound(store_id=data.store_id)
    key, digest = _order_key(member_id, data.idempotency_key), _digest(data)
    replayed = await _replay(member_id, data.store_id, key, digest, store=store, provider=provider, policy=policy)
    if replayed is not None:
        return replayed
    distance = _check_delivery(store, data)
    now = utcnow()
    lines, saved = await _priced_lines(store.id, data.lines, member_prices=await standing.member_prices(member_id, now))
    amount_fen = sum(line.amount_fen for line in lines)
    if amount_fen < 1:
        raise NothingToPay(store_id=store.id)
    try:
        coupon = await coupons.apply(
            data.coupon_id,
            member_id=member_id,
            channel=OrderKind.mall,
            store_id=store.id,
            amount_fen=amount_fen,
            lines=lines,
            now=now,
        )
    except CouponNotUsable:
        # The same order sent twice at once: the first one took the coupon a moment ago
        raced = await _replay(member_id, data.store_id, key, digest, store=store, provider=provider, policy=policy)
        if raced is None:
            raise
        return raced
    discount = coupon.discount_fen + redemption_discount(
        data.points_to_redeem,
        amount_fen=amount_fen - coupon.discount_fen,
        member_id=member_id,
        per_yuan=redeem_points_per_yuan,
    )
    openid = await members.payer_openid(member_id, policy.app_id)
    out_trade_no = new_out_trade_no(now)
    pay_by = now + timedelta(seconds=pay_within)
    address = data.address if distance is not None else None
    try:
        async with write_transaction():
            order_id = await orders.place_order(
                kind=OrderKind.mall,
                store_id=store.id,
                member_id=member_id,
                amount_fen=amount_fen,
                discount_fen=discount,
                points_redeemed=data.points_to_redeem,
                coupon_id=coupon.coupon_id,
                coupon_discount_fen=coupon.discount_fen,
                member_price_saved_fen=saved,
                out_trade_no=out_trade_no,
                pay_by=pay_by,
                idempotency_key=key,
                request_hash=digest,
                now=now,
                lines=lines,
            )
            trade_id = await payments.open_trade(
                order_id,
                method=TradeMethod.jsapi,
                out_trade_no=out_trade_no,
                amount_fen=amount_fen - discount,
                expires_at=pay_by,
                now=now,
                policy=policy,
            )
            # SKU by SKU in one order, so that two orders of the same SKUs on PostgreSQL never wait for each other
            for line in sorted(lines, key=lambda line: line.sku_id or 0):
                if not await _TAKE_STOCK.run(line.quantity, store.id, line.sku_id, line.quantity):
                    raise OutOfStock(details={"skuId": line.sku_id}, store_id=store.id)
            await insert_row(
                MallOrder,
                order=order_id,
                store=store.id,
                fulfilment=data.fulfilment,
                status=MallStatus.pending_payment,
                **_address_columns(address, distance),
                created_at=now,
            )
            await redeem_for_order(
                order_id, member_id=member_id, points_to_redeem=data.points_to_redeem, store_id=store.id, now=now
            )
            await coupons.use(coupon, member_id=member_id, order_id=order_id, now=now)
    except Exception as error:
        if not is_unique_violation(error):
            raise
        raced = await _replay(member_id, data.store_id, key, digest, store=store, provider=provider, policy=policy)
        assert raced is not None
        return raced
    # WeChat Pay not taking the order ends it failed at once: its stock and points go back with it.
    pay_params = await payments.create_jsapi(
        trade_id,
        out_trade_no=out_trade_no,
        amount_fen=amount_fen - discount,
        payer_openid=openid,
        description=f"{store.name} {lines[0].title}",
        expires_at=pay_by,
        provider=provider,
    )
    # As written (the order is counted in the metrics as placed): no read back, no log line, on the hot path.
    order = OrderRecord(
        id=order_id,
        kind=OrderKind.mall,
        store=store.id,
        staff=None,
        member=member_id,
        status=OrderStatus.paying,
        amount_fen=amount_fen,
        discount_fen=discount,
        payable_fen=amount_fen - discount,
        paid_fen=0,
        refunded_fen=0,
        points_redeemed=data.points_to_redeem,
        points_earned=0,
        coupon_id=coupon.coupon_id,
        coupon_discount_fen=coupon.discount_fen,
        member_enrolled=False,
        tier_discount_fen=0,
        member_price_saved_fen=saved,
        points_multiplier_percent=NO_MULTIPLIER,
        scene="",
        out_trade_no=out_trade_no,
        pay_by=pay_by,
        idempotency_key=key,
        request_hash=digest,
        failure_reason="",
        created_at=now,
        paid_at=None,
    )
    channel = ChannelFields(
        status=MallStatus.pending_payment.value,
        pickup_store_id=store.id,
        fulfilment=data.fulfilment.value,
        address_name=address.name if address else "",
        address_phone=address.phone if address else "",
        address_text=address.text if address else "",
    )
    return Placed(order, pay_params, created=True, channel=channel, store_name=store.name)


def _address_columns(address: AddressIn | None, distance: int | None) -> dict:
    if address is None:
        return {}
    return {
        "address_name": address.name,
        "address_phone": address.phone,
        "address_text": address.text,
        "address_latitude": address.latitude,
        "address_longitude": address.longitude,
        "distance_m": distance,
    }


async def _replay(
    member_id: int,
    store_id: int,
    key: str,
    digest: str,
    *,
    store: StoreRecord,
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> Placed | None:
    existing = await orders.find_by_key(store_id, key)
    if existing is None:
        return None
    if existing.request_hash != digest or existing.member != member_id:
        raise IdempotencyConflict(order_id=existing.id)
    pay_params = await payments.pay_params_while_paying(
        existing, description=store.name, provider=provider, policy=policy
    )
    return Placed(existing, pay_params, created=False)


# Reading ------------------------------------------------------------------------------------------

_MALL_ORDER = Prepared(
    lambda order_id: (
        MallOrder.select(
            MallOrder.order,
            MallOrder.store,
            MallOrder.fulfilment,
            MallOrder.status,
        )
        .where(MallOrder.order == order_id)
        .first()
    )
)


async def get_mall_order(order_id: int) -> MallOrderRecord | None:
    row = await _MALL_ORDER.run(order_id)
    if row is None:
        return None
    return MallOrderRecord(**{**row, "fulfilment": Fulfilment(row["fulfilment"]), "status": MallStatus(row["status"])})


async def for_staff(order_id: int, acts_for: Callable[[int], bool]) -> MallOrderRecord:
    """The mall order, for staff of its store or HQ; any other does not exist."""
    found = await get_mall_order(order_id)
    if found is None or not acts_for(found.store):
        raise MallOrderNotFound(order_id=order_id)
    return found


async def _of_member(order_id: int, member_id: int) -> OrderRecord:
    order = await orders.find_order(order_id)
    if order is None or order.kind is not OrderKind.mall or order.member != member_id:
        raise MallOrderNotFound(order_id=order_id)
    return order


TO_PREPARE = (MallStatus.paid, MallStatus.ready)


async def store_orders(
    store_id: int, *, statuses: tuple[MallStatus, ...], limit: int, before_id: int | None
) -> list[int]:
    """The store's mall orders in those statuses, oldest first (the order they are prepared in); their ids."""
    query = MallOrder.select(MallOrder.order).where(
        (MallOrder.store == store_id) & MallOrder.status.is_in(list(statuses))
    )
    if before_id is not None:  # the cursor: the last order of the page before
        query = query.where(MallOrder.order > before_id)
    return [row["order"] for row in await query.order_by(MallOrder.order).limit(limit)]


# The store's work ---------------------------------------------------------------------------------


async def mark_ready(order_id: int, *, acts_for: Callable[[int], bool], staff_id: int) -> None:
    """The store has prepared a paid order: a pickup order gets its code (single-use, this store's only). The
    same again is the same."""
    found = await for_staff(order_id, acts_for)
    code = new_pickup_code() if found.fulfilment is Fulfilment.pickup else None
    async with write_transaction():
        done = (
            await MallOrder.update(
                {MallOrder.status: MallStatus.ready, MallOrder.pickup_code: code, MallOrder.ready_at: utcnow()}
            )
            .where((MallOrder.order == order_id) & (MallOrder.status == MallStatus.paid))
            .returning(MallOrder.id)
        )
    if done:
        logger.info("mall order ready", extra={"order_id": order_id, "staff_id": staff_id})
    elif (current := await for_staff(order_id, acts_for)).status is not MallStatus.ready:
        raise WrongStatus(details={"status": current.status.value}, order_id=order_id)


async def mark_delivered(order_id: int, *, acts_for: Callable[[int], bool], staff_id: int) -> None:
    """A delivery order has reached the shopper (prepared or not). The same again is the same."""
    found = await for_staff(order_id, acts_for)
    if found.fulfilment is not Fulfilment.delivery:
        raise WrongStatus("A pickup order is handed over with its pickup code.", order_id=order_id)
    async with write_transaction():
        done = (
            await MallOrder.update(
                {
                    MallOrder.status: MallStatus.delivered,
                    MallOrder.handed_over_at: utcnow(),
                    MallOrder.handed_over_by: staff_id,
                }
            )
            .where((MallOrder.order == order_id) & MallOrder.status.is_in(list(TO_PREPARE)))
            .returning(MallOrder.id)
        )
    if done:
        logger.info("mall order delivered", extra={"order_id": order_id, "staff_id": staff_id})
    elif (current := await for_staff(order_id, acts_for)).status is not MallStatus.delivered:
        raise WrongStatus(details={"status": current.status.value}, order_id=order_id)


async def pick_up(*, store_id: int, pickup_code: str, staff_id: int) -> int | None:
    """Hand a ready pickup order over at its own store, once; answers its order id, or None when no mall order
    of this store has that code (a handed-over one raises)."""
    code = normalise(pickup_code)
    now = utcnow()
    async with write_transaction():
        done = (
            await MallOrder.update(
                {
                    MallOrder.status: MallStatus.picked_up,
                    MallOrder.handed_over_at: now,
                    MallOrder.handed_over_by: staff_id,
                }
            )
            .where(
                (MallOrder.pickup_code == code) & (MallOrder.store == store_id) & (MallOrder.status == MallStatus.ready)
            )
            .returning(MallOrder.order)
        )
    if done:
        logger.info("mall order picked up", extra={"order_id": done[0]["order"], "staff_id": staff_id})
        return done[0]["order"]
    found = (
        await MallOrder.select(MallOrder.order, MallOrder.status)
        .where((MallOrder.pickup_code == code) & (MallOrder.store == store_id))
        .first()
    )
    if found is None:
        return None
    raise WrongStatus(details={"status": found["status"]}, order_id=found["order"])


# The shopper cancels -------------------------------------------------------------------------------


async def cancel(order_id: int, *, member_id: int, provider: PaymentProvider, policy: PaymentPolicy) -> OrderRecord:
    """Unpaid: closed at WeChat Pay first (no money can land on it then), its stock and points back. Paid and
    not prepared yet: refunded in full, its stock back when the money is. The same again is the same (a cancel
    whose refund WeChat Pay refused asks again); once the store has prepared it, 409."""
    await _of_member(order_id, member_id)
    found = await get_mall_order(order_id)
    assert found is not None
    if found.status is MallStatus.pending_payment:
        trade = await payments.trade_of(order_id)
        assert trade is not None
        try:
            await payments.give_back(trade.id, reason=CANCELLED_BY_SHOPPER, provider=provider, policy=policy)
        except AlreadyPaid:
            pass  # the money arrived meanwhile: the order is paid, and is refunded below
        found = await get_mall_order(order_id)
        assert found is not None
    if found.status in (MallStatus.paid, MallStatus.cancelled):
        order = await orders.find_order(order_id)
        assert order is not None
        if order.status in orders.REFUNDABLE and order.refunded_fen < order.paid_fen:
            # A cancel refund WeChat Pay refused leaves the money here: the next cancel asks under a new key.
            failed = await refunds.failed_refunds(order_id, key_prefix=SHOPPER_CANCEL_KEY)
            refund, _ = await _refund_lines(
                order_id,
                lines=None,
                idempotency_key=f"{SHOPPER_CANCEL_KEY}:{failed + 1}",
                reason="用户取消订单",
                staff_id=None,
                for_shopper=True,
                provider=provider,
                policy=policy,
            )
            if refund.status is RefundStatus.failed:
                raise RefundRejected(order_id=order_id, refund_id=refund.id, failure=refund.failure)
    elif found.status is not MallStatus.cancelled:
        raise WrongStatus(
            "Only an order not prepared yet can be cancelled; ask the store.", details={"status": found.status.value}
        )
    order = await orders.find_order(order_id)
    assert order is not None
    return order


# Refunds, by line ----------------------------------------------------------------------------------


async def refund(
    order_id: int,
    *,
    lines: list[RefundLineIn] | None,
    idempotency_key: str,
    reason: str,
    staff_id: int,
    acts_for: Callable[[int], bool],
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> tuple[RefundRecord, bool]:
    """Staff refund some lines of a paid order, or every unit left; answers (refund, created)."""
    await for_staff(order_id, acts_for)
    return await _refund_lines(
        order_id,
        lines=lines,
        idempotency_key=idempotency_key,
        reason=reason or "商城订单退款",
        staff_id=staff_id,
        for_shopper=False,
        provider=provider,
        policy=policy,
    )


async def refund_lines(refund_id: int) -> list[tuple[int, int]]:
    """(line id, quantity) of a refund."""
    rows = (
        await MallRefundLine.select(MallRefundLine.line, MallRefundLine.quantity)
        .where(MallRefundLine.refund == refund_id)
        .order_by(MallRefundLine.line)
    )
    return [(row["line"], row["quantity"]) for row in rows]


async def _left_to_refund(order_id: int) -> dict[int, tuple[LineRecord, int]]:
    """Each line with the units no refund (under way or done) has taken yet."""
    taken: dict[int, int] = {}
    for row in await MallRefundLine.select(MallRefundLine.line, MallRefundLine.quantity).where(
        (MallRefundLine.line.order == order_id) & (MallRefundLine.refund.status != RefundStatus.failed)
    ):
        taken[row["line"]] = taken.get(row["line"], 0) + row["quantity"]
    return {line.id: (line, line.quantity - taken.get(line.id, 0)) for line in await orders.order_lines(order_id)}


def _units(lines: list[RefundLineIn] | None, left: dict[int, tuple[LineRecord, int]]) -> dict[int, int]:
    if lines is None:
        return {line_id: units for line_id, (_, units) in left.items() if units}
    asked: dict[int, int] = {}
    for line in lines:
        if line.line_id in asked or line.line_id not in left or line.quantity > left[line.line_id][1]:
            raise RefundLinesInvalid(
                details={"lines": [{"lineId": i, "left": units} for i, (_, units) in left.items()]}
            )
        asked[line.line_id] = line.quantity
    return asked


def _amount(order: OrderRecord, units: dict[int, int], left: dict[int, tuple[LineRecord, int]]) -> int:
    """The fen these units paid: their share of what the order paid (its discounts spread over its lines);
    the refund that takes the last units takes what is left, so every fen comes back exactly once."""
    if _takes_the_rest(units, left):
        return order.paid_fen - order.refunded_fen
    gross = sum(left[line_id][0].unit_price_fen * quantity for line_id, quantity in units.items())
    return gross * order.paid_fen // order.amount_fen


def _takes_the_rest(units: dict[int, int], left: dict[int, tuple[LineRecord, int]]) -> bool:
    return all(units.get(line_id, 0) == left_units for line_id, (_, left_units) in left.items())


# Takes the mall order's row (PostgreSQL's lock; SQLite writes one at a time) and reads it: a pickup or a
# delivery at this moment goes first, or finds the order taken back.
_HOLD = Prepared(
    lambda order_id: (
        MallOrder.update({MallOrder.status: MallOrder.status})
        .where(MallOrder.order == order_id)
        .returning(MallOrder.status, MallOrder.handed_over_at)
    )
)
_TAKEN_BACK = Prepared(
    lambda order_id: MallOrder.update({MallOrder.status: MallStatus.cancelled}).where(
        (MallOrder.order == order_id) & MallOrder.status.is_in(list(TO_PREPARE))
    )
)


async def _refund_lines(
    order_id: int,
    *,
    lines: list[RefundLineIn] | None,
    idempotency_key: str,
    reason: str,
    staff_id: int | None,
    for_shopper: bool,
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> tuple[RefundRecord, bool]:
    """A refund of some units (or all left), asked for in one transaction with its lines: whether they go back
    to stock is decided now (the goods have not left the store), and a refund of every unit left of an order not
    handed over takes the order back from the store at once (`cancelled`: not prepared or handed over since)."""
    created = False
    existing = await refunds.refund_by_key(order_id, idempotency_key)
    if existing is None:
        try:
            async with write_transaction():
                await orders.hold(order_id)  # refunds of one order count their units in turn
                order = await orders.find_order(order_id)
                assert order is not None
                (mall,) = await _HOLD.run(order_id)
                if for_shopper and mall["status"] not in (MallStatus.paid, MallStatus.cancelled):
                    raise WrongStatus("The store has prepared it meanwhile; ask the store.", order_id=order_id)
                left = await _left_to_refund(order_id)
                units = _units(lines, left)
                amount = _amount(order, units, left) if units else 0
                if amount < 1:  # nothing left, or units that paid nothing (a free gift)
                    raise NothingToRefund(details={"refundableFen": order.paid_fen - order.refunded_fen})
                restock = mall["handed_over_at"] is None
                refund_id = await refunds.create_refund(
                    order,
                    amount_fen=amount,
                    idempotency_key=idempotency_key,
                    reason=reason,
                    staff_id=staff_id,
                    policy=policy,
                    now=utcnow(),
                )
                for line_id, quantity in sorted(units.items()):
                    await insert_row(MallRefundLine, refund=refund_id, line=line_id, quantity=quantity, restock=restock)
                if restock and _takes_the_rest(units, left):
                    await _TAKEN_BACK.run(order_id)
            created = True
            logger.info("mall order refund asked", extra={"order_id": order_id, "refund_id": refund_id})
        except RefundExceedsPaid:
            raise NothingToRefund(order_id=order_id) from None
        except Exception as error:
            if not is_unique_violation(error):
                raise  # else: the same refund, asked for a moment ago
        existing = await refunds.refund_by_key(order_id, idempotency_key)
        assert existing is not None
    elif existing.reason != reason[:80] or (
        lines is not None and sorted((line.line_id, line.quantity) for line in lines) != await refund_lines(existing.id)
    ):
        raise RefundConflict(refund_id=existing.id)
    if existing.status is RefundStatus.processing:
        await refunds.submit(existing.id, provider=provider, policy=policy)
        existing = await refunds.find_refund(existing.id)
        assert existing is not None
    return existing, created


# What the order's outcomes do to the mall order (registered in mall.effects) ---------------------------

_PAID = Prepared(
    lambda order_id: MallOrder.update({MallOrder.status: MallStatus.paid}).where(
        (MallOrder.order == order_id) & (MallOrder.status == MallStatus.pending_payment)
    )
)
_GIVE_BACK = Prepared(
    lambda quantity, store_id, sku_id: StoreInventory.update(
        {StoreInventory.on_hand: StoreInventory.on_hand + quantity}
    ).where((StoreInventory.store == store_id) & (StoreInventory.sku == sku_id))
)


async def order_paid(order_id: int) -> None:
    await _PAID.run(order_id)


async def _give_back(store_id: int, units: list[tuple[int, int]]) -> None:
    for sku_id, quantity in sorted(units):
        await _GIVE_BACK.run(quantity, store_id, sku_id)


async def order_closed(order_id: int) -> None:
    """Inside the transaction that closed the order unpaid: the mall order is cancelled and its stock goes
    back, once: the guarded update out of `pending_payment` (a second sweeper, or a payment, finds it moved on)."""
    released = (
        await MallOrder.update({MallOrder.status: MallStatus.cancelled})
        .where((MallOrder.order == order_id) & (MallOrder.status == MallStatus.pending_payment))
        .returning(MallOrder.store)
    )
    if not released:
        return
    lines = await OrderLine.select(OrderLine.sku_id, OrderLine.quantity).where(OrderLine.order == order_id)
    await _give_back(released[0]["store"], [(line["sku_id"], line["quantity"]) for line in lines])
    logger.info("mall order closed unpaid, stock back", extra={"order_id": order_id})


async def order_refunded(order_id: int, *, refund_id: int, fully: bool) -> None:
    """Inside the transaction that recorded a refund done: its units go back to stock if the goods had not left
    the store when it was asked for; the mall order reads refunded when every fen is back, partially refunded
    when some are and the rest was handed over."""
    found = await get_mall_order(order_id)
    if found is None:
        return
    restocked = await MallRefundLine.select(
        MallRefundLine.line.sku_id.as_alias("sku_id"), MallRefundLine.quantity
    ).where((MallRefundLine.refund == refund_id) & MallRefundLine.restock.eq(True))
    if restocked:
        await _give_back(found.store, [(row["sku_id"], row["quantity"]) for row in restocked])
    if fully:
        status = MallStatus.refunded
    elif found.status in HANDED_OVER:
        status = MallStatus.partially_refunded
    else:
        return  # the rest is still to be prepared or collected
    await MallOrder.update({MallOrder.status: status}).where(MallOrder.order == order_id)


async def refund_for_staff(order_id: int, refund_id: int, *, acts_for: Callable[[int], bool]) -> RefundRecord:
    await for_staff(order_id, acts_for)
    return await refunds.refund_of(order_id, refund_id)
