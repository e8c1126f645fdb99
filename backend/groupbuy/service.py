"""Group-buy presales: campaigns HQ runs, groups members fill, seats they pay for, pickups at the store.

A seat is an order of kind `groupbuy`: its money moves through `payments/` like every order's, and what
happens to the seat when its order is paid, closed or refunded is registered in `groupbuy.effects`.
What stays here is the seat's own: taking one (the seat, the member's units and the stock, together or
not at all), its group succeeding or failing, pickup codes, and the demand report.
"""

import csv
import io
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from piccolo.columns.combination import Combinable
from piccolo.query.functions.aggregate import Count, Sum
from piccolo.query.methods.select import Select

from backend.audit import service as audit
from backend.catalogue.tables import Sku
from backend.core.clock import utcnow
from backend.core.db import Prepared, heavy_reads, insert_row, is_unique_violation, write_transaction
from backend.core.errors import KVUnavailable
from backend.core.kv import GATE_SHORT, KV
from backend.core.pickup import new_pickup_code, normalise
from backend.core.schema import given
from backend.core.spreadsheet import BOM, text_cell
from backend.coupons import service as coupons
from backend.groupbuy.errors import (
    AlreadyInGroup,
    AlreadyPickedUp,
    CampaignClosed,
    CampaignInvalid,
    CampaignNotFound,
    GroupClosed,
    GroupFull,
    GroupNotFound,
    NotRefundable,
    OrderRefunded,
    PickupNotFound,
    PickupStoreInvalid,
    QuantityOverLimit,
    SeatNotCancellable,
    SeatNotFound,
    SoldOut,
)
from backend.groupbuy.schemas import CampaignCreate, CampaignPatch
from backend.groupbuy.tables import Campaign, CampaignStore, Group, GroupStatus, MemberUnits, Seat, SeatStatus
from backend.members import service as members
from backend.orders import service as orders
from backend.orders.service import LineItem
from backend.orders.tables import OrderKind, OrderStatus
from backend.payments import refunds
from backend.payments import service as payments
from backend.payments.errors import OrderNotRefundable, RefundExceedsPaid
from backend.payments.numbers import new_out_trade_no
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import PaymentProvider
from backend.payments.refunds import RefundRecord
from backend.payments.tables import RefundKind, RefundStatus, TradeMethod
from backend.points.effects import earn_for_order
from backend.stores.service import StoreRecord
from backend.stores.tables import Store

logger = logging.getLogger(__name__)

# The reasons a seat's order is given back, as its refund's idempotency key says them.
GROUP_FAILED_KEY, AFTER_SUCCESS_KEY = "groupbuy:group_failed", "groupbuy:after_success"
REFUND_REASONS = {
    GROUP_FAILED_KEY: "拼团未成团退款",
    AFTER_SUCCESS_KEY: "拼团订单退款",
}
GIVEN_BACK = "GIVEN_BACK"  # the closed order's failure reason when its member gave the seat back unpaid


# Typed rows ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: int
    title: str
    product_name: str
    product_image: str
    sku: int | None
    price_fen: int
    original_price_fen: int
    group_size: int
    group_ttl_minutes: int
    payment_window_minutes: int
    stock: int
    stock_left: int
    per_member_limit: int
    starts_at: datetime
    ends_at: datetime
    pickup_date: date
    virtual_fill: bool
    virtual_fill_percent: int
    closed_at: datetime | None
    created_by: int | None
    created_at: datetime
    pickup_stores: tuple[StoreRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupMember:
    nickname: str
    avatar_url: str
    virtual: bool = False  # an empty seat of a group that succeeded by virtual fill: nobody, nothing sold


@dataclass(frozen=True, slots=True)
class GroupView:
    id: int
    campaign: int
    leader: int
    status: GroupStatus
    group_size: int
    seats_taken: int
    seats_paid: int
    virtual_seats: int
    expires_at: datetime
    settled_at: datetime | None
    created_at: datetime
    members: tuple[GroupMember, ...]

    @property
    def seats_left(self) -> int:
        return self.group_size - self.seats_taken


@dataclass(frozen=True, slots=True)
class SeatView:
    """A seat as its member and the till see it: the seat's own fields, its order's money, its group's state."""

    order_id: int
    group_id: int
    campaign_id: int
    pickup_store_id: int
    quantity: int
    status: SeatStatus
    amount_fen: int
    paid_fen: int
    refunded_fen: int
    out_trade_no: str
    pay_by: datetime
    order_status: OrderStatus  # the money's side: paying, paid, (partially_) refunded once refunds are done
    created_at: datetime
    group_status: GroupStatus
    group_virtual_seats: int
    pickup_code: str | None
    picked_up_at: datetime | None


@dataclass(frozen=True, slots=True)
class DemandRow:
    store_id: int
    store_code: str
    store_name: str
    pickup_date: date
    firm_units: int
    tentative_units: int
    picked_up_units: int
    virtual_seats: int


@dataclass(frozen=True, slots=True)
class Demand:
    campaign_id: int
    product_name: str
    pickup_date: date
    rows: tuple[DemandRow, ...]
    totals: DemandRow  # every count summed; the store fields empty


# Campaigns ----------------------------------------------------------------------------------------


def _check_campaign(data: CampaignCreate, now: datetime) -> None:
    """What one field cannot say alone; each problem names its field."""
    problems = {}
    for name in ("starts_at", "ends_at"):
        if getattr(data, name).tzinfo is None:
            problems[name] = "give the time zone, for example 2026-12-01T10:00:00+08:00"
    if not problems:
        if data.ends_at <= data.starts_at:
            problems["endsAt"] = "must be after startsAt"
        elif data.ends_at <= now:
            problems["endsAt"] = "must be in the future"
        if data.pickup_date < data.starts_at.astimezone(UTC).date():
            problems["pickupDate"] = "must not be before the campaign starts"
    if data.price_fen > data.original_price_fen:
        problems["priceFen"] = "must not be above originalPriceFen"
    if not data.pickup_store_ids:
        problems["pickupStoreIds"] = "name at least one pickup store"
    if data.stock < data.group_size:
        problems["stock"] = "must be enough to fill at least one group"
    if data.product_name is None and data.sku_id is None:
        problems["product_name"] = "name the product, or the catalogue's SKU (skuId)"
    if problems:
        raise CampaignInvalid(details={_camel(k): v for k, v in problems.items()})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def create_campaign(data: CampaignCreate, *, staff_id: int) -> CampaignRecord:
    now = utcnow()
    _check_campaign(data, now)
    store_ids = sorted(set(data.pickup_store_ids))
    found = await Store.select(Store.id).where(Store.id.is_in(store_ids) & Store.active.eq(True))
    missing = sorted(set(store_ids) - {row["id"] for row in found})
    if missing:
        raise CampaignInvalid("Some pickup stores do not exist or are closed.", details={"pickupStoreIds": missing})
    product_name = data.product_name
    if data.sku_id is not None:
        sku = await Sku.select(Sku.spec, Sku.product.title).where(Sku.id == data.sku_id).first()
        if sku is None:
            raise CampaignInvalid("No such SKU in the catalogue.", details={"skuId": data.sku_id})
        product_name = product_name or f"{sku['product.title']} {sku['spec']}"[:100]
    async with write_transaction():
        campaign_id = await insert_row(
            Campaign,
            title=data.title,
            product_name=product_name,
            product_image=data.product_image,
            sku=data.sku_id,
            price_fen=data.price_fen,
            original_price_fen=data.original_price_fen,
            group_size=data.group_size,
            group_ttl_minutes=data.group_ttl_minutes,
            payment_window_minutes=data.payment_window_minutes,
            stock=data.stock,
            stock_left=data.stock,
            per_member_limit=data.per_member_limit,
            starts_at=data.starts_at.astimezone(UTC),
            ends_at=data.ends_at.astimezone(UTC),
            pickup_date=data.pickup_date,
            virtual_fill=data.virtual_fill,
            virtual_fill_percent=data.virtual_fill_percent,
            created_by=staff_id,
            created_at=now,
        )
        for store_id in store_ids:
            await insert_row(CampaignStore, campaign=campaign_id, store=store_id)
        await audit.record("groupbuy_campaign.create", "groupbuy_campaign", campaign_id, after=given(data))
    logger.info("group-buy campaign created", extra={"campaign_id": campaign_id, "staff_id": staff_id})
    return await get_campaign(campaign_id)


async def _with_stores(campaigns: list[dict]) -> list[CampaignRecord]:
    if not campaigns:
        return []
    rows = (
        await CampaignStore.select(CampaignStore.campaign, *CampaignStore.store.all_columns())
        .where(CampaignStore.campaign.is_in([c["id"] for c in campaigns]))
        .order_by(CampaignStore.store.code)
    )
    stores: dict[int, list[StoreRecord]] = {c["id"]: [] for c in campaigns}
    for row in rows:
        campaign_id = row.pop("campaign")
        stores[campaign_id].append(StoreRecord(**{key.removeprefix("store."): value for key, value in row.items()}))
    return [CampaignRecord(**c, pickup_stores=tuple(stores[c["id"]])) for c in campaigns]


_CAMPAIGN = Prepared(lambda campaign_id: Campaign.select().where(Campaign.id == campaign_id).first())


async def get_campaign(campaign_id: int) -> CampaignRecord:
    campaign = await _CAMPAIGN.run(campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id=campaign_id)
    return (await _with_stores([campaign]))[0]


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    groups_forming: int = 0
    groups_succeeded: int = 0
    groups_failed: int = 0
    seats_paid: int = 0  # seats paid for and not refunded (succeeded and picked up among them)
    units_sold: int = 0


_SOLD = (SeatStatus.paid, SeatStatus.succeeded, SeatStatus.picked_up)


async def campaign_counts(campaign_ids: list[int]) -> dict[int, CampaignCounts]:
    """Each campaign's groups by status and its seats and units sold, in two grouped reads."""
    if not campaign_ids:
        return {}
    with heavy_reads():
        groups = (
            await Group.select(Group.campaign, Group.status, Count().as_alias("n"))
            .where(Group.campaign.is_in(campaign_ids))
            .group_by(Group.campaign, Group.status)
        )
        seats = (
            await Seat.select(Seat.campaign, Count().as_alias("n"), Sum(Seat.quantity).as_alias("units"))
            .where(Seat.campaign.is_in(campaign_ids) & Seat.status.is_in(list(_SOLD)))
            .group_by(Seat.campaign)
        )
    by_status: dict[int, dict[str, int]] = {}
    for row in groups:
        by_status.setdefault(row["campaign"], {})[row["status"]] = int(row["n"])
    sold = {row["campaign"]: (int(row["n"]), int(row["units"] or 0)) for row in seats}
    return {
        campaign_id: CampaignCounts(
            groups_forming=by_status.get(campaign_id, {}).get(GroupStatus.forming.value, 0),
            groups_succeeded=by_status.get(campaign_id, {}).get(GroupStatus.succeeded.value, 0),
            groups_failed=by_status.get(campaign_id, {}).get(GroupStatus.failed.value, 0),
            seats_paid=sold.get(campaign_id, (0, 0))[0],
            units_sold=sold.get(campaign_id, (0, 0))[1],
        )
        for campaign_id in campaign_ids
    }


async def list_campaigns(*, before_id: int | None, limit: int) -> list[CampaignRecord]:
    """Every campaign, running, ended or closed, newest first."""
    query = Campaign.select().order_by(Campaign.id, ascending=False).limit(limit)
    if before_id is not None:
        query = query.where(Campaign.id < before_id)
    return await _with_stores(await query)


async def update_campaign(campaign_id: int, data: CampaignPatch, *, now: datetime | None = None) -> CampaignRecord:
    """HQ renames a campaign, moves its end later, or closes it early (`closed`: no new groups from now; the groups
    forming run to their deadlines) or opens it again."""
    now = now or utcnow()
    values = given(data)
    closed = values.pop("closed", None)
    async with write_transaction():
        campaign = await _CAMPAIGN.run(campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id=campaign_id)
        if "ends_at" in values:
            if values["ends_at"].tzinfo is None:
                raise CampaignInvalid("endsAt needs its time zone (for example +08:00).")
            ends_at = values["ends_at"].astimezone(UTC)
            if ends_at < campaign["ends_at"] or ends_at <= now:
                raise CampaignInvalid(
                    "A campaign's end moves later only (close it to stop it early).",
                    details={"endsAt": campaign["ends_at"].isoformat()},
                )
            values["ends_at"] = ends_at
        if closed is not None and closed != (campaign["closed_at"] is not None):
            values["closed_at"] = now if closed else None
        action = "groupbuy_campaign.close" if closed and "closed_at" in values else "groupbuy_campaign.update"
        await audit.update_row(Campaign, campaign_id, values, action=action, entity="groupbuy_campaign")
    logger.info("group-buy campaign updated", extra={"campaign_id": campaign_id, "fields": sorted(values)})
    return await get_campaign(campaign_id)


async def open_campaigns(*, now: datetime | None = None) -> list[CampaignRecord]:
    """Campaigns taking groups now, ending soonest first."""
    now = now or utcnow()
    rows = (
        await Campaign.select()
        .where((Campaign.starts_at <= now) & (Campaign.ends_at > now) & Campaign.closed_at.is_null())
        .order_by(Campaign.ends_at)
        .order_by(Campaign.id)
        .limit(200)
    )
    return await _with_stores(rows)


# Seats: taking one reserves the seat, the member's units and the stock in one transaction -------------


# The queries of taking and paying for a seat, prepared once (see `Prepared`): the busiest group-buy paths.
_UNITS_ROW = Prepared(
    lambda campaign_id, member_id: MemberUnits.insert(
        MemberUnits(campaign=campaign_id, member=member_id, units=0)
    ).on_conflict(target=(MemberUnits.campaign, MemberUnits.member), action="DO NOTHING")
)
_HOLD_UNITS = Prepared(
    lambda quantity, campaign_id, member_id, at_most: (
        MemberUnits.update({MemberUnits.units: MemberUnits.units + quantity})
        .where(
            (MemberUnits.campaign == campaign_id) & (MemberUnits.member == member_id) & (MemberUnits.units <= at_most)
        )
        .returning(MemberUnits.id)
    )
)
_TAKE_STOCK = Prepared(
    lambda quantity, campaign_id, enough, now, also_now: (
        Campaign.update({Campaign.stock_left: Campaign.stock_left - quantity})
        .where(
            (Campaign.id == campaign_id)
            & (Campaign.stock_left >= enough)
            & (Campaign.starts_at <= now)
            & (Campaign.ends_at > also_now)
        )
        .returning(Campaign.stock_left)
    )
)


async def _reserve(campaign: CampaignRecord, *, member_id: int, quantity: int, now: datetime) -> None:
    """Inside the seat's transaction: the member's units within the limit, then the stock, both guarded."""
    if quantity > campaign.per_member_limit:
        raise QuantityOverLimit(details={"perMemberLimit": campaign.per_member_limit})
    await _UNITS_ROW.run(campaign.id, member_id)
    if not await _HOLD_UNITS.run(quantity, campaign.id, member_id, campaign.per_member_limit - quantity):
        raise QuantityOverLimit(details={"perMemberLimit": campaign.per_member_limit})
    if not await _TAKE_STOCK.run(quantity, campaign.id, quantity, now, now):
        raise SoldOut(details={"campaignId": campaign.id})


_PICKUP_STORE = Prepared(
    lambda campaign_id, store_id: (
        CampaignStore.select(CampaignStore.id)
        .where((CampaignStore.campaign == campaign_id) & (CampaignStore.store == store_id))
        .first()
    )
)


async def _open_campaign(campaign_id: int, pickup_store_id: int, now: datetime, *, new_group: bool) -> CampaignRecord:
    row = await _CAMPAIGN.run(campaign_id)
    if row is None:
        raise CampaignNotFound(campaign_id=campaign_id)
    campaign = CampaignRecord(**row)
    if not (campaign.starts_at <= now < campaign.ends_at):
        raise CampaignClosed(campaign_id=campaign_id)
    if new_group and campaign.closed_at is not None:  # closed early: the groups forming still fill
        raise CampaignClosed("HQ has closed this campaign: it opens no new groups.", campaign_id=campaign_id)
    if await _PICKUP_STORE.run(campaign_id, pickup_store_id) is None:
        raise PickupStoreInvalid(details={"pickupStoreId": pickup_store_id})
    return campaign


# The stock gate: sold-out requests in a flash sale are answered from the KV, before the database.
# The database still decides every seat; the gate only turns away what cannot succeed, is rebuilt
# from the database when missing, and expires soon, so stock given back shows again within seconds.
GATE_TTL_SECONDS = 10.0
_STOCK_LEFT = Prepared(
    lambda campaign_id: Campaign.select(Campaign.stock_left).where(Campaign.id == campaign_id).first()
)
_GROUP_CAMPAIGN = Prepared(lambda group_id: Group.select(Group.campaign).where(Group.id == group_id).first())
_GROUP = Prepared(lambda group_id: Group.select().where(Group.id == group_id).first())
_JOIN = Prepared(
    lambda group_id, now: (
        Group.update({Group.seats_taken: Group.seats_taken + 1})
        .where(
            (Group.id == group_id)
            & (Group.status == GroupStatus.forming)
            & (Group.expires_at > now)
            & (Group.seats_taken < Group.group_size)
        )
        .returning(Group.id)
    )
)


def _gate_key(campaign_id: int) -> str:
    return f"mall:groupbuy:stock:{campaign_id}"


async def _pass_gate(kv: KV, campaign_id: int, quantity: int) -> bool:
    """Take `quantity` units at the gate; False means sold out, answered without asking the database.

    The gate fails open: with the KV down, every request goes on to the database, whose guarded update on
    the campaign's stock decides alone (slower, never oversold); a KV back up empty rebuilds it from there."""
    try:
        return await _gate(kv, campaign_id, quantity)
    except KVUnavailable:
        return True


async def _gate(kv: KV, campaign_id: int, quantity: int) -> bool:
    key = _gate_key(campaign_id)
    for _ in range(3):
        left = await kv.decr_if_enough(key, quantity)
        if left >= 0:
            return True
        if left == GATE_SHORT:
            return False
        row = await _STOCK_LEFT.run(campaign_id)  # the gate is missing: rebuilt from the database
        if row is None:
            raise CampaignNotFound(campaign_id=campaign_id)
        await kv.set_if_absent(key, str(row["stock_left"]).encode(), expires_in=GATE_TTL_SECONDS)
    return True  # the gate keeps vanishing: the database decides alone


async def _campaign_for(kv: KV, group_id: int) -> int:
    """A group's campaign, which never changes: kept in the KV, so a sold-out join needs no database."""
    key = f"mall:groupbuy:group_campaign:{group_id}"
    with suppress(KVUnavailable):  # fails open: the database answers
        if (cached := await kv.get(key)) is not None:
            return int(cached)
    row = await _GROUP_CAMPAIGN.run(group_id)
    if row is None:
        raise GroupNotFound(group_id=group_id)
    with suppress(KVUnavailable):
        await kv.set(key, str(row["campaign"]).encode(), expires_in=24 * 3600)
    return row["campaign"]


async def take_seat(
    *,
    member_id: int,
    pickup_store_id: int,
    quantity: int,
    campaign_id: int | None = None,
    group_id: int | None = None,
    coupon_id: int | None = None,
    provider: PaymentProvider,
    policy: PaymentPolicy,
    kv: KV,
    ensure_active: Callable[[int], Awaitable[None]] | None = None,
) -> tuple[GroupView, SeatView, dict[str, str]]:
    """Open a group as its leader (campaign_id) or join one (group_id); answers (group, seat, payParams).

    The seat, its order, the member's units and the stock are taken together or not at all; the order
    then waits for its payment until its `pay_by`. A sold-out answer comes first, from the stock gate;
    only a request that passes it has its member's account checked (`ensure_active`) and reaches the
    database.
    """
    if group_id is not None:
        campaign_id = await _campaign_for(kv, group_id)
    assert campaign_id is not None
    if not await _pass_gate(kv, campaign_id, quantity):
        raise SoldOut(details={"campaignId": campaign_id})
    try:
        if ensure_active is not None:
            await ensure_active(member_id)
        return await _take_seat(
            member_id=member_id,
            pickup_store_id=pickup_store_id,
            quantity=quantity,
            campaign_id=campaign_id,
            group_id=group_id,
            coupon_id=coupon_id,
            provider=provider,
            policy=policy,
        )
    except SoldOut:
        with suppress(KVUnavailable):  # a gate the KV still holds lapses within GATE_TTL_SECONDS
            await kv.delete(_gate_key(campaign_id))  # the gate let through what the database had not: rebuild it
        raise
    except BaseException:
        with suppress(KVUnavailable):
            await kv.give_back(_gate_key(campaign_id), quantity)
        raise


async def _take_seat(
    *,
    member_id: int,
    pickup_store_id: int,
    quantity: int,
    campaign_id: int,
    group_id: int | None,
    coupon_id: int | None,
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> tuple[GroupView, SeatView, dict[str, str]]:
    now = utcnow()
    campaign = await _open_campaign(campaign_id, pickup_store_id, now, new_group=group_id is None)
    if group_id is None:  # a group lives its campaign's time limit, and never past the campaign's end
        group_ends = min(now + timedelta(minutes=campaign.group_ttl_minutes), campaign.ends_at)
    else:
        group_ends = (await _GROUP.run(group_id))["expires_at"]
    # A seat is paid within its window, and never after its group's deadline.
    pay_by = min(now + timedelta(minutes=campaign.payment_window_minutes), group_ends)
    openid = await members.payer_openid(member_id, policy.app_id)
    out_trade_no = new_out_trade_no(now)
    amount_fen = campaign.price_fen * quantity
    line = LineItem(
        title=campaign.product_name, quantity=quantity, unit_price_fen=campaign.price_fen, sku_id=campaign.sku
    )
    coupon = await coupons.apply(
        coupon_id,
        member_id=member_id,
        channel=OrderKind.groupbuy,
        store_id=pickup_store_id,
        amount_fen=amount_fen,
        lines=(line,),
        now=now,
    )
    payable_fen = amount_fen - coupon.discount_fen
    try:
        async with write_transaction():
            if group_id is None:
                group_id = await insert_row(
                    Group,
                    campaign=campaign_id,
                    leader=member_id,
                    status=GroupStatus.forming,
                    group_size=campaign.group_size,
                    seats_taken=1,
                    expires_at=group_ends,
                    created_at=now,
                )
            else:
                if not await _JOIN.run(group_id, now):
                    current = await Group.select(Group.status, Group.expires_at).where(Group.id == group_id).first()
                    if current["status"] != GroupStatus.forming or current["expires_at"] <= now:
                        raise GroupClosed(group_id=group_id)
                    raise GroupFull(group_id=group_id)
            order_id = await orders.place_order(
                kind=OrderKind.groupbuy,
                store_id=pickup_store_id,
                member_id=member_id,
                amount_fen=amount_fen,
                discount_fen=coupon.discount_fen,
                coupon_id=coupon.coupon_id,
                coupon_discount_fen=coupon.discount_fen,
                out_trade_no=out_trade_no,
                pay_by=pay_by,
                idempotency_key=out_trade_no,
                now=now,
                lines=(line,),
            )
            trade_id = await payments.open_trade(
                order_id,
                method=TradeMethod.jsapi,
                out_trade_no=out_trade_no,
                amount_fen=payable_fen,
                expires_at=pay_by,
                now=now,
                policy=policy,
            )
            await insert_row(
                Seat,
                order=order_id,
                group=group_id,
                campaign=campaign_id,
                member=member_id,
                holder=member_id,
                pickup_store=pickup_store_id,
                quantity=quantity,
                status=SeatStatus.pending_payment,
                created_at=now,
            )
            await _reserve(campaign, member_id=member_id, quantity=quantity, now=now)
            await coupons.use(coupon, member_id=member_id, order_id=order_id, now=now)
    except Exception as error:
        if not is_unique_violation(error):
            raise
        raise AlreadyInGroup(group_id=group_id) from None
    # WeChat Pay not taking the order ends it failed at once: the seat, units and stock go back with it.
    pay_params = await payments.create_jsapi(
        trade_id,
        out_trade_no=out_trade_no,
        amount_fen=payable_fen,
        payer_openid=openid,
        description=campaign.product_name,
        expires_at=pay_by,
        provider=provider,
    )
    logger.info("group-buy seat taken", extra={"order_id": order_id, "group_id": group_id, "member_id": member_id})
    return await get_group(group_id), await get_seat(order_id), pay_params


async def give_back_seat(
    order_id: int, *, member_id: int, provider: PaymentProvider, policy: PaymentPolicy
) -> SeatView:
    """The member gives an unpaid seat back at once: its order is closed at WeChat Pay first (so no money can
    land on it), then the seat, units and stock go back. Giving back a seat given back already is the same."""
    seat = await Seat.select(Seat.status).where((Seat.order == order_id) & (Seat.member == member_id)).first()
    if seat is None:
        raise SeatNotFound(order_id=order_id)
    if seat["status"] == SeatStatus.pending_payment:
        trade = await payments.trade_of(order_id)
        assert trade is not None
        await payments.give_back(trade.id, reason=GIVEN_BACK, provider=provider, policy=policy)
    elif seat["status"] != SeatStatus.cancelled:
        raise SeatNotCancellable(order_id=order_id)
    return await get_seat(order_id)


# Reading ------------------------------------------------------------------------------------------


async def _members_of(group_ids: Iterable[int]) -> dict[int, list[GroupMember]]:
    """Each group's members in the order they took their seats, each person once (a merge may have left
    one person two seats)."""
    ids = list(group_ids)
    if not ids:
        return {}
    return _members(await _members_where(Seat.group.is_in(ids)), ids)


def _members_where(groups: Combinable) -> Select:
    """The members' rows of the groups `groups` picks: seats not expired or given back, in the order taken."""
    return (
        Seat.select(Seat.group, Seat.member, Seat.member.nickname, Seat.member.avatar_url)
        .where(groups & Seat.status.not_in([SeatStatus.expired, SeatStatus.cancelled]))
        .order_by(Seat.id)
    )


def _members(rows: list[dict], group_ids: list[int]) -> dict[int, list[GroupMember]]:
    members_by_group: dict[int, list[GroupMember]] = {group_id: [] for group_id in group_ids}
    seen: set[tuple[int, int]] = set()
    for row in rows:
        if (row["group"], row["member"]) not in seen:
            seen.add((row["group"], row["member"]))
            members_by_group[row["group"]].append(GroupMember(row["member.nickname"], row["member.avatar_url"]))
    return members_by_group


def _group_view(row: dict, members_of_group: list[GroupMember]) -> GroupView:
    virtual = [GroupMember("", "", virtual=True)] * row["virtual_seats"]
    return GroupView(**row, members=tuple(members_of_group + virtual))


_MEMBERS_OF_GROUP = Prepared(lambda group_id: _members_where(Seat.group == group_id))


async def get_group(group_id: int) -> GroupView:
    group = await _GROUP.run(group_id)
    if group is None:
        raise GroupNotFound(group_id=group_id)
    return _group_view(group, _members(await _MEMBERS_OF_GROUP.run(group_id), [group_id])[group_id])


async def forming_groups(campaign_id: int, *, limit: int, after: tuple[datetime, int] | None = None) -> list[GroupView]:
    """Groups of the campaign a shopper may still join (forming, before their deadline, a seat left),
    soonest deadline first; `after` is the (deadline, id) of the last group of the page before."""
    now = utcnow()
    query = Group.select().where(
        (Group.campaign == campaign_id)
        & (Group.status == GroupStatus.forming)
        & (Group.expires_at > now)
        & (Group.seats_taken < Group.group_size)
    )
    if after is not None:
        query = query.where((Group.expires_at > after[0]) | ((Group.expires_at == after[0]) & (Group.id > after[1])))
    rows = await query.order_by(Group.expires_at).order_by(Group.id).limit(limit)
    members_by_group = await _members_of(row["id"] for row in rows)
    return [_group_view(row, members_by_group[row["id"]]) for row in rows]


_SEAT_COLUMNS = (
    Seat.order.as_alias("order_id"),
    Seat.group.as_alias("group_id"),
    Seat.campaign.as_alias("campaign_id"),
    Seat.pickup_store.as_alias("pickup_store_id"),
    Seat.quantity,
    Seat.status,
    Seat.order.payable_fen.as_alias("amount_fen"),
    Seat.order.paid_fen.as_alias("paid_fen"),
    Seat.order.refunded_fen.as_alias("refunded_fen"),
    Seat.order.out_trade_no.as_alias("out_trade_no"),
    Seat.order.pay_by.as_alias("pay_by"),
    Seat.order.status.as_alias("order_status"),
    Seat.created_at,
    Seat.group.status.as_alias("group_status"),
    Seat.group.virtual_seats.as_alias("group_virtual_seats"),
    Seat.pickup_code,
    Seat.picked_up_at,
)


def _seat_view(row: dict) -> SeatView:
    return SeatView(
        **{
            **row,
            "status": SeatStatus(row["status"]),
            "order_status": OrderStatus(row["order_status"]),
            "group_status": GroupStatus(row["group_status"]),
        }
    )


_SEAT = Prepared(lambda order_id: Seat.select(*_SEAT_COLUMNS).where(Seat.order == order_id).first())


async def get_seat(order_id: int) -> SeatView:
    row = await _SEAT.run(order_id)
    if row is None:
        raise SeatNotFound(order_id=order_id)
    return _seat_view(row)


async def member_seats(member_id: int, *, limit: int, before_order: int | None) -> list[SeatView]:
    query = Seat.select(*_SEAT_COLUMNS).where(Seat.member == member_id)
    if before_order is not None:
        query = query.where(Seat.order < before_order)
    return [_seat_view(row) for row in await query.order_by(Seat.order, ascending=False).limit(limit)]


# Success: every seat paid before the deadline (or enough of them, with virtual fill) ------------------

_SEAT_PAID = Prepared(
    lambda order_id: (
        Seat.update({Seat.status: SeatStatus.paid})
        .where((Seat.order == order_id) & (Seat.status == SeatStatus.pending_payment))
        .returning(Seat.group)
    )
)
_GROUP_PAID = Prepared(
    lambda group_id: (
        Group.update({Group.seats_paid: Group.seats_paid + 1})
        .where(Group.id == group_id)
        .returning(Group.seats_paid, Group.group_size)
    )
)
_GROUP_SUCCEEDED = Prepared(
    lambda now, group_id, also_now: (
        Group.update({Group.status: GroupStatus.succeeded, Group.settled_at: now})
        .where((Group.id == group_id) & (Group.status == GroupStatus.forming) & (Group.expires_at > also_now))
        .returning(Group.id)
    )
)
# A paid seat's order received what it asked for (its payable): the seat whose payment is being recorded
# right now is paid, and its order is marked paid once the handlers are done.
# By member: concurrent successes of groups with the same members take their points accounts in one order
# (on PostgreSQL each earn locks the account), so that none waits for another that waits for it.
_PAID_SEATS = Prepared(
    lambda group_id: (
        Seat.select(Seat.id, Seat.order, Seat.order.member, Seat.order.store, Seat.order.payable_fen)
        .where((Seat.group == group_id) & (Seat.status == SeatStatus.paid))
        .order_by(Seat.order.member, Seat.id)
    )
)
_SEAT_SUCCEEDED = Prepared(
    lambda pickup_code, seat_id: Seat.update({Seat.status: SeatStatus.succeeded, Seat.pickup_code: pickup_code}).where(
        Seat.id == seat_id
    )
)


async def seat_paid(order_id: int, *, now: datetime) -> None:
    """Inside the payment's transaction: the seat is paid; the payment that fills its group before the
    deadline makes the group succeed."""
    claimed = await _SEAT_PAID.run(order_id)
    if not claimed:
        return
    group_id = claimed[0]["group"]
    group = await _GROUP_PAID.run(group_id)
    logger.info("group-buy seat paid", extra={"order_id": order_id, "group_id": group_id})
    if group[0]["seats_paid"] == group[0]["group_size"]:
        if await _GROUP_SUCCEEDED.run(now, group_id, now):  # else the deadline passed first: the group fails
            await _succeeded(group_id, now=now)


async def _succeeded(group_id: int, *, now: datetime) -> None:
    """The sale is firm: each paid seat gets its pickup code, and its order earns its points now."""
    for seat in await _PAID_SEATS.run(group_id):
        await _SEAT_SUCCEEDED.run(new_pickup_code(), seat["id"])
        effects = await earn_for_order(
            seat["order"],
            member_id=seat["order.member"],
            store_id=seat["order.store"],
            paid_fen=seat["order.payable_fen"],
            now=now,
        )
        if effects.points_earned:
            await orders.note_points_earned(
                seat["order"], effects.points_earned, multiplier_percent=effects.points_multiplier_percent
            )
    logger.info("group-buy group succeeded", extra={"group_id": group_id})


def virtual_fill_threshold(group_size: int, percent: int) -> int:
    """Paid seats a group needs at its deadline to succeed by virtual fill."""
    return max(1, math.ceil(group_size * percent / 100))


async def _pending_seats_concluded(group_id: int, *, provider: PaymentProvider, policy: PaymentPolicy) -> bool:
    """At a group's deadline: each seat still waiting for its money is asked about once more and ended
    (a payment that happened meanwhile wins). Answers whether every one of them has ended."""
    pending = await Seat.select(Seat.order).where(
        (Seat.group == group_id) & (Seat.status == SeatStatus.pending_payment)
    )
    ended = True
    for seat in pending:
        trade = await payments.trade_of(seat["order"])
        if trade is not None and not await payments.conclude(trade.id, provider=provider, policy=policy):
            ended = False  # WeChat Pay did not answer about this seat: the next sweep asks again
    return ended


async def _fill_virtually(group_id: int, *, provider: PaymentProvider, policy: PaymentPolicy, now: datetime) -> bool:
    """At the deadline of a virtual-fill campaign's group: its unpaid seats are ended first, so only money
    that arrived counts; with enough paid seats the group succeeds, the empty ones virtual. Answers whether
    the group is settled that way (or must wait for WeChat Pay to answer about a seat)."""
    if not await _pending_seats_concluded(group_id, provider=provider, policy=policy):
        return True
    group = (
        await Group.select(Group.group_size, Group.seats_paid, Group.campaign.virtual_fill_percent)
        .where(Group.id == group_id)
        .first()
    )
    if group["seats_paid"] < virtual_fill_threshold(group["group_size"], group["campaign.virtual_fill_percent"]):
        return False
    async with write_transaction():
        done = (
            await Group.update(
                {
                    Group.status: GroupStatus.succeeded,
                    Group.settled_at: now,
                    Group.virtual_seats: Group.group_size - Group.seats_paid,
                }
            )
            .where((Group.id == group_id) & (Group.status == GroupStatus.forming) & (Group.expires_at <= now))
            .returning(Group.virtual_seats)
        )
        if done:
            await _succeeded(group_id, now=now)
    if done:
        logger.info(
            "group-buy group filled virtually", extra={"group_id": group_id, "virtual_seats": done[0]["virtual_seats"]}
        )
    return True


# Failure at the deadline: every paid seat refunded once, unpaid ones ended, stock released ----------


async def fail_due_groups(*, provider: PaymentProvider, policy: PaymentPolicy, now: datetime | None = None) -> int:
    """The sweeper's part: groups past their deadline without every seat paid fail, and a failed group's
    settlement interrupted earlier (a crash, a restart) is finished; answers how many were looked at."""
    now = now or utcnow()
    due = (
        await Group.select(Group.id)
        .where(
            ((Group.status == GroupStatus.forming) & (Group.expires_at <= now))
            | ((Group.status == GroupStatus.failed) & Group.settled_at.is_null())
        )
        .limit(100)
    )
    for group in due:
        await settle_failed_group(group["id"], provider=provider, policy=policy, now=now)
    return len(due)


async def settle_failed_group(
    group_id: int, *, provider: PaymentProvider, policy: PaymentPolicy, now: datetime
) -> None:
    """Idempotent, so any number of sweepers may run it at once or again after a failure halfway."""
    group = await Group.select(Group.status, Group.campaign.virtual_fill).where(Group.id == group_id).first()
    if group["status"] == GroupStatus.forming and group["campaign.virtual_fill"]:
        if await _fill_virtually(group_id, provider=provider, policy=policy, now=now):
            return
    failed = (
        await Group.update({Group.status: GroupStatus.failed})
        .where((Group.id == group_id) & (Group.status == GroupStatus.forming) & (Group.expires_at <= now))
        .returning(Group.id)
    )
    if failed:
        logger.info("group-buy group failed", extra={"group_id": group_id})
    elif not await Group.exists().where((Group.id == group_id) & (Group.status == GroupStatus.failed)):
        return  # it succeeded, by its last payment or by virtual fill
    await _pending_seats_concluded(group_id, provider=provider, policy=policy)
    for seat in await Seat.select(Seat.order).where((Seat.group == group_id) & (Seat.status == SeatStatus.paid)):
        await refund_failed_seat(seat["order"], provider=provider, policy=policy)
    unfinished = await Seat.count().where((Seat.group == group_id) & (Seat.status == SeatStatus.pending_payment))
    # A paid seat's refund lets go of its holding in the refund's transaction: a paid seat still held is unrefunded.
    unrefunded = await Seat.count().where(
        (Seat.group == group_id) & (Seat.status == SeatStatus.paid) & Seat.held.eq(True)
    )
    if unfinished == 0 and unrefunded == 0:
        await Group.update({Group.settled_at: now}).where(
            (Group.id == group_id) & (Group.status == GroupStatus.failed) & Group.settled_at.is_null()
        )


async def _release_holding(order_id: int, *, statuses: tuple[SeatStatus, ...] | None = None, stock: bool) -> bool:
    """Inside the caller's transaction: the seat lets go of its member's units (and, with `stock`, of the
    campaign's stock), once. Answers False when the seat was not in one of `statuses` (when given) or had let go
    already."""
    which: Combinable = Seat.order == order_id
    if statuses is not None:
        which = which & Seat.status.is_in(list(statuses))
    released = (
        await Seat.update({Seat.held: False})
        .where(which & Seat.held.eq(True))
        .returning(Seat.campaign, Seat.member, Seat.quantity)
    )
    if not released:
        return False
    seat = released[0]
    await MemberUnits.update({MemberUnits.units: MemberUnits.units - seat["quantity"]}).where(
        (MemberUnits.campaign == seat["campaign"]) & (MemberUnits.member == seat["member"])
    )
    if stock:
        await Campaign.update({Campaign.stock_left: Campaign.stock_left + seat["quantity"]}).where(
            Campaign.id == seat["campaign"]
        )
    return True


async def seat_ended(order_id: int, *, status: SeatStatus) -> None:
    """Inside the transaction that closed the seat's order unpaid: the seat ends, and gives back its place
    in the group, its member's units and the stock."""
    ended = (
        await Seat.update({Seat.status: status, Seat.holder: None})
        .where((Seat.order == order_id) & (Seat.status == SeatStatus.pending_payment))
        .returning(Seat.group)
    )
    if not ended:
        return
    await Group.update({Group.seats_taken: Group.seats_taken - 1}).where(Group.id == ended[0]["group"])
    await _release_holding(order_id, statuses=(status,), stock=True)
    logger.info("group-buy seat ended", extra={"order_id": order_id, "status": status.value})


async def seat_refunded(order_id: int) -> None:
    """Inside the transaction that recorded the last of the order's money going back: the seat is refunded,
    and gives back its member's units if it still held them."""
    await _release_holding(order_id, stock=False)
    await Seat.update({Seat.status: SeatStatus.refunded}).where(Seat.order == order_id)


async def refund_failed_seat(order_id: int, *, provider: PaymentProvider, policy: PaymentPolicy) -> None:
    """Refund a paid seat of a failed group in full, once: the refund, and the units and stock the seat gives
    back, are one transaction, and its out_refund_no is fixed, so a second run asks for the same refund."""
    now = utcnow()
    try:
        async with write_transaction():
            seat = await Seat.select(Seat.status, Seat.group.status).where(Seat.order == order_id).first()
            if seat["status"] != SeatStatus.paid or seat["group.status"] != GroupStatus.failed:
                return
            if await _release_holding(order_id, statuses=(SeatStatus.paid,), stock=True):
                order = await orders.find_order(order_id)
                assert order is not None
                await refunds.create_refund(
                    order,
                    amount_fen=order.paid_fen,
                    idempotency_key=GROUP_FAILED_KEY,
                    reason=REFUND_REASONS[GROUP_FAILED_KEY],
                    staff_id=None,
                    policy=policy,
                    now=now,
                )
    except Exception as error:
        if not is_unique_violation(error):
            raise  # else: another sweeper made this refund a moment ago; it is asked for below all the same
    await _submit_pending(order_id, GROUP_FAILED_KEY, provider=provider, policy=policy)


async def _seat_for_staff(order_id: int, acts_for: Callable[[int], bool]) -> None:
    """The seat's order is one that staff of its pickup store or HQ may act on; any other does not exist."""
    seat = await Seat.select(Seat.pickup_store).where(Seat.order == order_id).first()
    if seat is None or not acts_for(seat["pickup_store"]):
        raise SeatNotFound(order_id=order_id)


async def seat_refund(order_id: int, refund_id: int, *, acts_for: Callable[[int], bool]) -> RefundRecord:
    """A refund of a seat's order, for staff of its pickup store or HQ."""
    await _seat_for_staff(order_id, acts_for)
    return await refunds.refund_of(order_id, refund_id)


async def refund_after_success(
    order_id: int,
    *,
    acts_for: Callable[[int], bool],
    staff_id: int,
    note: str,
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> tuple[RefundRecord, bool]:
    """A refund after the group succeeded (picked up or not), by staff of its pickup store or HQ: the whole
    order, once. The group stays succeeded; the member's units are freed, the stock stays with the group,
    whose goods were ordered for it. Answers (refund, created); a second request answers the first refund."""
    await _seat_for_staff(order_id, acts_for)
    created = False
    if await refunds.refund_by_key(order_id, AFTER_SUCCESS_KEY) is None:
        reason = REFUND_REASONS[AFTER_SUCCESS_KEY] + (f"：{note}" if note else "")
        try:
            async with write_transaction():
                # Letting go of the seat's holding takes its row first, and a pickup needs the seat held: a
                # pickup at this moment goes first, or finds it let go.
                if not await _release_holding(
                    order_id, statuses=(SeatStatus.succeeded, SeatStatus.picked_up), stock=False
                ):
                    raise NotRefundable(order_id=order_id)
                order = await orders.find_order(order_id)
                assert order is not None
                await refunds.create_refund(
                    order,
                    amount_fen=order.paid_fen - order.refunded_fen,
                    idempotency_key=AFTER_SUCCESS_KEY,
                    reason=reason,
                    staff_id=staff_id,
                    policy=policy,
                    now=utcnow(),
                )
            created = True
            logger.info("group-buy order refunded after success", extra={"order_id": order_id, "staff_id": staff_id})
        except (OrderNotRefundable, RefundExceedsPaid):
            raise NotRefundable(order_id=order_id) from None
        except Exception as error:
            if not is_unique_violation(error):
                raise  # else: the same refund, asked for a moment ago
    await _submit_pending(order_id, AFTER_SUCCESS_KEY, provider=provider, policy=policy)
    refund = await refunds.refund_by_key(order_id, AFTER_SUCCESS_KEY)
    assert refund is not None
    return refund, created


async def _submit_pending(order_id: int, key: str, *, provider: PaymentProvider, policy: PaymentPolicy) -> None:
    refund = await refunds.refund_by_key(order_id, key)
    if refund is not None and refund.status is RefundStatus.processing:
        await refunds.submit(refund.id, provider=provider, policy=policy)


def refund_reason(refund: RefundRecord) -> str:
    """Why a seat's money went back: group_failed, after_success or late_payment."""
    if refund.kind is RefundKind.late_payment:
        return "late_payment"
    return refund.idempotency_key.removeprefix("groupbuy:")


# Pickup at the store ------------------------------------------------------------------------------


async def pick_up(*, store_id: int, pickup_code: str, staff_id: int) -> SeatView:
    """Hand the goods over: once, and only at the seat's own pickup store; any other code is unknown here."""
    code = normalise(pickup_code)
    now = utcnow()
    async with write_transaction():
        done = (
            await Seat.update({Seat.status: SeatStatus.picked_up, Seat.picked_up_at: now, Seat.picked_up_by: staff_id})
            .where(
                (Seat.pickup_code == code)
                & (Seat.pickup_store == store_id)
                & (Seat.status == SeatStatus.succeeded)
                & Seat.held.eq(True)  # a refund lets go of the seat first
            )
            .returning(Seat.order)
        )
    if done:
        logger.info("group-buy order picked up", extra={"order_id": done[0]["order"], "staff_id": staff_id})
        return await get_seat(done[0]["order"])
    seat = (
        await Seat.select(Seat.status, Seat.held)
        .where((Seat.pickup_code == code) & (Seat.pickup_store == store_id))
        .first()
    )
    if seat is not None and seat["status"] == SeatStatus.picked_up and seat["held"]:
        raise AlreadyPickedUp(store_id=store_id)
    if seat is not None:
        raise OrderRefunded(store_id=store_id)
    logger.info("pickup code not recognised", extra={"store_id": store_id, "staff_id": staff_id})
    raise PickupNotFound(store_id=store_id)


# Merges -------------------------------------------------------------------------------------------


async def move_seats(survivor_id: int, merged_id: int) -> int:
    """A member merge, inside its transaction: the merged member's seats, units and groups become the
    survivor's; answers how many seats moved. Where both held a live seat in one group, the merged seat
    stays paid and valid but no longer counts as a second place of the same person."""
    moved = await Seat.count().where(Seat.member == merged_id)
    both = Seat.select(Seat.group).where(Seat.holder == survivor_id)
    await Seat.update({Seat.member: survivor_id, Seat.holder: None}).where(
        (Seat.member == merged_id) & Seat.holder.is_not_null() & Seat.group.is_in(both)
    )
    await Seat.update({Seat.member: survivor_id, Seat.holder: survivor_id}).where(
        (Seat.member == merged_id) & Seat.holder.is_not_null()
    )
    await Seat.update({Seat.member: survivor_id}).where(Seat.member == merged_id)
    for row in await MemberUnits.select(MemberUnits.campaign, MemberUnits.units).where(MemberUnits.member == merged_id):
        await MemberUnits.insert(MemberUnits(campaign=row["campaign"], member=survivor_id, units=0)).on_conflict(
            target=(MemberUnits.campaign, MemberUnits.member), action="DO NOTHING"
        )
        await MemberUnits.update({MemberUnits.units: MemberUnits.units + row["units"]}).where(
            (MemberUnits.campaign == row["campaign"]) & (MemberUnits.member == survivor_id)
        )
    await MemberUnits.delete().where(MemberUnits.member == merged_id)
    await Group.update({Group.leader: survivor_id}).where(Group.leader == merged_id)
    return moved


# Demand: what HQ orders from the supplier, per pickup store -------------------------------------------


async def demand(campaign_id: int) -> Demand:
    """Units per pickup store on the campaign's pickup date: firm (groups that succeeded), tentative
    (groups still forming: seats taken, paid or not) and picked up. Every pickup store has a row."""
    campaign = await get_campaign(campaign_id)
    with heavy_reads():
        sums = (
            await Seat.select(Seat.pickup_store, Seat.status, Seat.group.status, Sum(Seat.quantity))
            .where(Seat.campaign == campaign_id)
            .group_by(Seat.pickup_store, Seat.status, Seat.group.status)
        )
        virtual = await _virtual_seats_per_store(campaign_id)
    counts = {store.id: {"firm": 0, "tentative": 0, "picked_up": 0} for store in campaign.pickup_stores}
    for line in sums:
        row, units = counts.get(line["pickup_store"]), int(line["sum"] or 0)
        if row is None:  # a store taken off the campaign after seats were taken: not counted here
            continue
        if line["status"] in (SeatStatus.succeeded, SeatStatus.picked_up):
            row["firm"] += units
            if line["status"] == SeatStatus.picked_up:
                row["picked_up"] += units
        elif line["group.status"] == GroupStatus.forming and line["status"] in (
            SeatStatus.pending_payment,
            SeatStatus.paid,
        ):
            row["tentative"] += units
    rows = tuple(
        DemandRow(
            store_id=store.id,
            store_code=store.code,
            store_name=store.name,
            pickup_date=campaign.pickup_date,
            firm_units=counts[store.id]["firm"],
            tentative_units=counts[store.id]["tentative"],
            picked_up_units=counts[store.id]["picked_up"],
            virtual_seats=virtual.get(store.id, 0),
        )
        for store in sorted(campaign.pickup_stores, key=lambda store: store.code)
    )
    totals = DemandRow(
        store_id=0,
        store_code="",
        store_name="",
        pickup_date=campaign.pickup_date,
        firm_units=sum(row.firm_units for row in rows),
        tentative_units=sum(row.tentative_units for row in rows),
        picked_up_units=sum(row.picked_up_units for row in rows),
        virtual_seats=sum(row.virtual_seats for row in rows),
    )
    return Demand(campaign_id, campaign.product_name, campaign.pickup_date, rows, totals)


async def _virtual_seats_per_store(campaign_id: int) -> dict[int, int]:
    """Virtual seats of groups that succeeded by virtual fill, counted at the store of the group's first
    seat (its leader's): nothing is picked up for them, and the buyer sees how much success was virtual."""
    groups = {
        row["id"]: row["virtual_seats"]
        for row in await Group.select(Group.id, Group.virtual_seats).where(
            (Group.campaign == campaign_id) & (Group.virtual_seats > 0)
        )
    }
    per_store: dict[int, int] = {}
    seen: set[int] = set()
    if groups:
        for seat in (
            await Seat.select(Seat.group, Seat.pickup_store).where(Seat.group.is_in(list(groups))).order_by(Seat.id)
        ):
            if seat["group"] not in seen:
                seen.add(seat["group"])
                per_store[seat["pickup_store"]] = per_store.get(seat["pickup_store"], 0) + groups[seat["group"]]
    return per_store


DEMAND_CSV_HEADER = [
    "门店编码 store code",
    "门店名称 store",
    "提货日期 pickup date",
    "已成团 firm units",
    "拼团中 tentative units",
    "已提货 picked up units",
    "虚拟成团空位 virtual seats",
]


def demand_csv(report: Demand) -> bytes:
    """UTF-8 with a byte-order mark, so that Excel opens the Chinese names as they are."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DEMAND_CSV_HEADER)
    for row in report.rows:
        writer.writerow(
            [
                row.store_code,
                text_cell(row.store_name),
                row.pickup_date.isoformat(),
                row.firm_units,
                row.tentative_units,
                row.picked_up_units,
                row.virtual_seats,
            ]
        )
    totals = report.totals
    writer.writerow(
        [
            "合计 total",
            "",
            report.pickup_date.isoformat(),
            totals.firm_units,
            totals.tentative_units,
            totals.picked_up_units,
            totals.virtual_seats,
        ]
    )
    return (BOM + out.getvalue()).encode()
