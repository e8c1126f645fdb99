"""Group-buy presales: campaigns HQ runs, groups members fill, seats they pay for, pickups at the store."""

import csv
import io
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from piccolo.query.functions.aggregate import Sum

from backend.cashier import refunds
from backend.cashier import service as cashier
from backend.cashier.codes import new_out_trade_no
from backend.cashier.errors import PaymentNotStarted
from backend.cashier.tables import RefundStatus
from backend.core.clock import utcnow
from backend.core.db import Prepared, heavy_reads, insert_row, is_unique_violation, write_transaction
from backend.core.kv import GATE_SHORT, KV
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
    SeatNotFound,
    SoldOut,
)
from backend.groupbuy.schemas import CampaignCreate
from backend.groupbuy.tables import (
    Campaign,
    CampaignStore,
    Group,
    GroupStatus,
    MemberUnits,
    Seat,
    SeatRefund,
    SeatRefundReason,
    SeatStatus,
)
from backend.payments.calls import ask_refund, close_or_find_payment, look_up_refund, refund_notice_result
from backend.payments.notices import check_transaction_notice
from backend.payments.provider import (
    NOT_DONE,
    PaymentProvider,
    RefundNotice,
    RefundResult,
    RefundState,
    TradeState,
    TransactionNotice,
)
from backend.stores.tables import Store

if TYPE_CHECKING:
    from backend.cashier.service import CheckoutPolicy
    from backend.stores.auth import CurrentStaff

logger = logging.getLogger(__name__)


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
    if problems:
        raise CampaignInvalid(details={_camel(k): v for k, v in problems.items()})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def create_campaign(data: CampaignCreate, *, staff_id: int) -> dict[str, Any]:
    now = utcnow()
    _check_campaign(data, now)
    store_ids = sorted(set(data.pickup_store_ids))
    found = await Store.select(Store.id).where(Store.id.is_in(store_ids) & Store.active.eq(True))
    missing = sorted(set(store_ids) - {row["id"] for row in found})
    if missing:
        raise CampaignInvalid("Some pickup stores do not exist or are closed.", details={"pickupStoreIds": missing})
    async with write_transaction():
        campaign_id = await insert_row(
            Campaign,
            title=data.title,
            product_name=data.product_name,
            product_image=data.product_image,
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
    logger.info("group-buy campaign created", extra={"campaign_id": campaign_id, "staff_id": staff_id})
    return await get_campaign(campaign_id)


async def _with_stores(campaigns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not campaigns:
        return []
    rows = (
        await CampaignStore.select(CampaignStore.campaign, *CampaignStore.store.all_columns())
        .where(CampaignStore.campaign.is_in([c["id"] for c in campaigns]))
        .order_by(CampaignStore.store.code)
    )
    stores: dict[int, list[dict[str, Any]]] = {c["id"]: [] for c in campaigns}
    for row in rows:
        stores[row["campaign"]].append({key.removeprefix("store."): value for key, value in row.items()})
    return [{**c, "pickup_stores": stores[c["id"]]} for c in campaigns]


async def get_campaign(campaign_id: int) -> dict[str, Any]:
    campaign = await Campaign.select().where(Campaign.id == campaign_id).first()
    if campaign is None:
        raise CampaignNotFound(campaign_id=campaign_id)
    return (await _with_stores([campaign]))[0]


async def open_campaigns(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Campaigns taking groups now, ending soonest first."""
    now = now or utcnow()
    rows = (
        await Campaign.select()
        .where((Campaign.starts_at <= now) & (Campaign.ends_at > now))
        .order_by(Campaign.ends_at)
        .order_by(Campaign.id)
        .limit(200)
    )
    return await _with_stores(rows)


# Seats: taking one reserves the seat, the member's units and the stock in one transaction -------------


async def _reserve(campaign: dict[str, Any], *, member_id: int, quantity: int, now: datetime) -> None:
    """Inside the seat's transaction: the member's units within the limit, then the stock, both guarded."""
    if quantity > campaign["per_member_limit"]:
        raise QuantityOverLimit(details={"perMemberLimit": campaign["per_member_limit"]})
    await MemberUnits.insert(MemberUnits(campaign=campaign["id"], member=member_id, units=0)).on_conflict(
        target=(MemberUnits.campaign, MemberUnits.member), action="DO NOTHING"
    )
    held = (
        await MemberUnits.update({MemberUnits.units: MemberUnits.units + quantity})
        .where(
            (MemberUnits.campaign == campaign["id"])
            & (MemberUnits.member == member_id)
            & (MemberUnits.units <= campaign["per_member_limit"] - quantity)
        )
        .returning(MemberUnits.id)
    )
    if not held:
        raise QuantityOverLimit(details={"perMemberLimit": campaign["per_member_limit"]})
    taken = (
        await Campaign.update({Campaign.stock_left: Campaign.stock_left - quantity})
        .where(
            (Campaign.id == campaign["id"])
            & (Campaign.stock_left >= quantity)
            & (Campaign.starts_at <= now)
            & (Campaign.ends_at > now)
        )
        .returning(Campaign.stock_left)
    )
    if not taken:
        raise SoldOut(details={"campaignId": campaign["id"]})


async def _open_campaign(campaign_id: int, pickup_store_id: int, now: datetime) -> dict[str, Any]:
    campaign = await Campaign.select().where(Campaign.id == campaign_id).first()
    if campaign is None:
        raise CampaignNotFound(campaign_id=campaign_id)
    if not (campaign["starts_at"] <= now < campaign["ends_at"]):
        raise CampaignClosed(campaign_id=campaign_id)
    if not await CampaignStore.exists().where(
        (CampaignStore.campaign == campaign_id) & (CampaignStore.store == pickup_store_id)
    ):
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


def _gate_key(campaign_id: int) -> str:
    return f"mall:groupbuy:stock:{campaign_id}"


async def _pass_gate(kv: KV, campaign_id: int, quantity: int) -> bool:
    """Take `quantity` units at the gate; False means sold out, answered without asking the database."""
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
    if (cached := await kv.get(key)) is not None:
        return int(cached)
    row = await _GROUP_CAMPAIGN.run(group_id)
    if row is None:
        raise GroupNotFound(group_id=group_id)
    await kv.set(key, str(row["campaign"]).encode(), expires_in=24 * 3600)
    return row["campaign"]


async def take_seat(
    *,
    member_id: int,
    pickup_store_id: int,
    quantity: int,
    campaign_id: int | None = None,
    group_id: int | None = None,
    provider: PaymentProvider,
    policy: "CheckoutPolicy",
    kv: KV,
    ensure_active: Callable[[int], Awaitable[None]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Open a group as its leader (campaign_id) or join one (group_id); answers (group, seat, payParams).

    The seat, the member's units and the stock are taken together or not at all; the seat then
    waits for its payment until `pay_by`. A sold-out answer comes first, from the stock gate; only a
    request that passes it has its member's account checked (`ensure_active`) and reaches the database.
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
            provider=provider,
            policy=policy,
        )
    except SoldOut:
        await kv.delete(_gate_key(campaign_id))  # the gate let through what the database had not: rebuild it
        raise
    except BaseException:
        await kv.give_back(_gate_key(campaign_id), quantity)
        raise


async def _take_seat(
    *,
    member_id: int,
    pickup_store_id: int,
    quantity: int,
    campaign_id: int,
    group_id: int | None,
    provider: PaymentProvider,
    policy: "CheckoutPolicy",
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    now = utcnow()
    if group_id is not None:
        group = await Group.select(Group.expires_at).where(Group.id == group_id).first()
        group_ends = group["expires_at"]
    campaign = await _open_campaign(campaign_id, pickup_store_id, now)
    if group_id is None:
        group_ends = now + timedelta(minutes=campaign["group_ttl_minutes"])
    # A seat is paid within its window, and never after its group's deadline.
    pay_by = min(now + timedelta(minutes=campaign["payment_window_minutes"]), group_ends)
    openid = await cashier.payer_openid(member_id, policy.app_id)
    out_trade_no = new_out_trade_no(now)
    amount_fen = campaign["price_fen"] * quantity
    try:
        async with write_transaction():
            if group_id is None:
                group_id = await insert_row(
                    Group,
                    campaign=campaign_id,
                    leader=member_id,
                    status=GroupStatus.forming,
                    group_size=campaign["group_size"],
                    seats_taken=1,
                    expires_at=group_ends,
                    created_at=now,
                )
            else:
                joined = (
                    await Group.update({Group.seats_taken: Group.seats_taken + 1})
                    .where(
                        (Group.id == group_id)
                        & (Group.status == GroupStatus.forming)
                        & (Group.expires_at > now)
                        & (Group.seats_taken < Group.group_size)
                    )
                    .returning(Group.id)
                )
                if not joined:
                    current = await Group.select(Group.status, Group.expires_at).where(Group.id == group_id).first()
                    if current["status"] != GroupStatus.forming or current["expires_at"] <= now:
                        raise GroupClosed(group_id=group_id)
                    raise GroupFull(group_id=group_id)
            seat_id = await insert_row(
                Seat,
                group=group_id,
                campaign=campaign_id,
                member=member_id,
                holder=member_id,
                pickup_store=pickup_store_id,
                quantity=quantity,
                amount_fen=amount_fen,
                status=SeatStatus.pending_payment,
                pay_by=pay_by,
                out_trade_no=out_trade_no,
                created_at=now,
            )
            await _reserve(campaign, member_id=member_id, quantity=quantity, now=now)
    except Exception as error:
        if not is_unique_violation(error):
            raise
        raise AlreadyInGroup(group_id=group_id) from None
    try:
        pay_params = await provider.create_jsapi(
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            payer_openid=openid,
            description=campaign["product_name"][:127],
            expires_in_seconds=max(1, math.ceil((pay_by - now).total_seconds())),
        )
    except NOT_DONE as error:
        # Due at once: the sweeper asks WeChat Pay, closes the order there and gives the seat back.
        logger.warning("JSAPI order not created for a seat", extra={"seat_id": seat_id, "error": repr(error)})
        await Seat.update({Seat.pay_by: now}).where((Seat.id == seat_id) & (Seat.status == SeatStatus.pending_payment))
        raise PaymentNotStarted(seat_id=seat_id) from None
    logger.info("group-buy seat taken", extra={"seat_id": seat_id, "group_id": group_id, "member_id": member_id})
    return await get_group(group_id), await get_seat(seat_id), pay_params


async def get_group(group_id: int) -> dict[str, Any]:
    group = await Group.select().where(Group.id == group_id).first()
    if group is None:
        raise GroupNotFound(group_id=group_id)
    members = (
        await Seat.select(Seat.member.nickname, Seat.member.avatar_url)
        .where((Seat.group == group_id) & Seat.holder.is_not_null())
        .order_by(Seat.id)
    )
    seats = [
        {"nickname": row["member.nickname"], "avatar_url": row["member.avatar_url"], "virtual": False}
        for row in members
    ]
    return {**group, "members": seats + [{"nickname": "", "avatar_url": "", "virtual": True}] * group["virtual_seats"]}


# An order, with where its group stands: a member sees at once when the group filled virtually.
_SEAT_COLUMNS = (
    *Seat.all_columns(),
    Seat.group.status.as_alias("group_status"),
    Seat.group.virtual_seats.as_alias("group_virtual_seats"),
)


async def get_seat(seat_id: int) -> dict[str, Any]:
    return await Seat.select(*_SEAT_COLUMNS).where(Seat.id == seat_id).first()


# Payment, success and expiry ------------------------------------------------------------------------

PICKUP_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud and typed at a till
PICKUP_CODE_LENGTH = 12  # 31**12, about 59 bits: not guessable at any rate the API allows


def new_pickup_code() -> str:
    return "".join(secrets.choice(PICKUP_ALPHABET) for _ in range(PICKUP_CODE_LENGTH))


async def accept_transaction_notice(
    notice: TransactionNotice, *, provider: PaymentProvider, policy: "CheckoutPolicy"
) -> bool:
    """A verified payment notification; answers False when the trade is not a seat's."""
    seat = await Seat.select(Seat.id, Seat.amount_fen).where(Seat.out_trade_no == notice.out_trade_no).first()
    if seat is None:
        return False
    check_transaction_notice(notice, provider=provider, amount_fen=seat["amount_fen"], seat_id=seat["id"])
    if notice.trade_state == TradeState.success.value:
        await settle_seat_paid(seat["id"], transaction_id=notice.transaction_id, provider=provider, policy=policy)
    return True


async def settle_seat_paid(
    seat_id: int, *, transaction_id: str, provider: PaymentProvider, policy: "CheckoutPolicy"
) -> None:
    """The seat is paid, once; the payment that fills its group before the deadline makes the group succeed.
    Money for a seat that expired first (its seat, units and stock already given back) goes back in full."""
    now = utcnow()
    async with write_transaction():
        claimed = (
            await Seat.update({Seat.status: SeatStatus.paid, Seat.paid_at: now, Seat.transaction_id: transaction_id})
            .where((Seat.id == seat_id) & (Seat.status == SeatStatus.pending_payment))
            .returning(Seat.group)
        )
        if claimed:
            group_id = claimed[0]["group"]
            group = (
                await Group.update({Group.seats_paid: Group.seats_paid + 1})
                .where(Group.id == group_id)
                .returning(Group.seats_paid, Group.group_size)
            )
            if group[0]["seats_paid"] == group[0]["group_size"]:
                await _succeed(group_id, now)
        else:
            late = (
                await Seat.update({Seat.paid_at: now, Seat.transaction_id: transaction_id})
                .where((Seat.id == seat_id) & (Seat.status == SeatStatus.expired) & Seat.paid_at.is_null())
                .returning(Seat.amount_fen, Seat.out_trade_no)
            )
            if late:
                await _insert_refund(seat_id, late[0], reason=SeatRefundReason.late_payment, now=now, policy=policy)
    if not claimed:
        if late:
            logger.warning("payment for an expired seat: refunded", extra={"seat_id": seat_id})
        await _submit_pending_refund(seat_id, provider=provider, policy=policy)
        return
    logger.info("group-buy seat paid", extra={"seat_id": seat_id, "group_id": group_id})


async def _succeed(group_id: int, now: datetime) -> None:
    """Every seat is paid before the deadline: the group succeeds and each seat gets its pickup code."""
    done = (
        await Group.update({Group.status: GroupStatus.succeeded, Group.settled_at: now})
        .where((Group.id == group_id) & (Group.status == GroupStatus.forming) & (Group.expires_at > now))
        .returning(Group.id)
    )
    if done:  # else the deadline passed first: the group fails, and its payments go back
        await _give_pickup_codes(group_id)


async def _give_pickup_codes(group_id: int) -> None:
    for seat in await Seat.select(Seat.id).where((Seat.group == group_id) & (Seat.status == SeatStatus.paid)):
        await Seat.update({Seat.status: SeatStatus.succeeded, Seat.pickup_code: new_pickup_code()}).where(
            Seat.id == seat["id"]
        )
    logger.info("group-buy group succeeded", extra={"group_id": group_id})


def virtual_fill_threshold(group_size: int, percent: int) -> int:
    """Paid seats a group needs at its deadline to succeed by virtual fill."""
    return max(1, math.ceil(group_size * percent / 100))


async def _fill_virtually(group_id: int, *, provider: PaymentProvider, policy: "CheckoutPolicy", now: datetime) -> bool:
    """At the deadline of a virtual-fill campaign's group: its unpaid seats are closed first, so only money
    that arrived counts; with enough paid seats the group succeeds, the empty ones virtual. Answers whether
    the group is settled that way (or must wait for WeChat Pay to answer about a seat)."""
    for seat in await Seat.select(Seat.id, Seat.out_trade_no).where(
        (Seat.group == group_id) & (Seat.status == SeatStatus.pending_payment)
    ):
        await _expire(seat["id"], seat["out_trade_no"], provider=provider, policy=policy)
    if await Seat.exists().where((Seat.group == group_id) & (Seat.status == SeatStatus.pending_payment)):
        return True  # WeChat Pay did not answer about a seat: the next sweep decides
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
            await _give_pickup_codes(group_id)
    if done:
        logger.info(
            "group-buy group filled virtually", extra={"group_id": group_id, "virtual_seats": done[0]["virtual_seats"]}
        )
    return True


async def expire_due_seats(*, provider: PaymentProvider, policy: "CheckoutPolicy", now: datetime | None = None) -> int:
    """The sweeper's part: seats unpaid at `pay_by` give back their seat, units and stock; answers how many
    were looked at. WeChat Pay is asked first and the order closed there, so no money lands afterwards."""
    now = now or utcnow()
    due = (
        await Seat.select(Seat.id, Seat.out_trade_no)
        .where((Seat.status == SeatStatus.pending_payment) & (Seat.pay_by <= now))
        .limit(200)
    )
    for seat in due:
        await _expire(seat["id"], seat["out_trade_no"], provider=provider, policy=policy)
    return len(due)


async def _expire(seat_id: int, out_trade_no: str, *, provider: PaymentProvider, policy: "CheckoutPolicy") -> None:
    try:
        trade = await provider.query(out_trade_no)
        paid = trade if trade.paid else await close_or_find_payment(provider, out_trade_no)
    except NOT_DONE as error:
        logger.warning(
            "seat not expired yet: WeChat Pay did not answer", extra={"seat_id": seat_id, "error": repr(error)}
        )
        return  # the next sweep asks again
    if paid is not None:  # paid in time, its notification not here yet
        await settle_seat_paid(seat_id, transaction_id=paid.transaction_id or "", provider=provider, policy=policy)
        return
    async with write_transaction():
        released = (
            await Seat.update({Seat.status: SeatStatus.expired, Seat.holder: None})
            .where((Seat.id == seat_id) & (Seat.status == SeatStatus.pending_payment))
            .returning(Seat.group, Seat.campaign, Seat.member, Seat.quantity)
        )
        if not released:
            return
        seat = released[0]
        await Group.update({Group.seats_taken: Group.seats_taken - 1}).where(Group.id == seat["group"])
        await _release_units(seat, stock=True)
    logger.info("group-buy seat expired", extra={"seat_id": seat_id})


# Failure at the deadline: every paid seat refunded once, unpaid ones closed, stock released ----------


async def fail_due_groups(*, provider: PaymentProvider, policy: "CheckoutPolicy", now: datetime | None = None) -> int:
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
    group_id: int, *, provider: PaymentProvider, policy: "CheckoutPolicy", now: datetime
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
    seats = await Seat.select(Seat.id, Seat.out_trade_no, Seat.status).where(
        (Seat.group == group_id) & Seat.status.is_in([SeatStatus.pending_payment, SeatStatus.paid])
    )
    for seat in seats:
        if seat["status"] == SeatStatus.pending_payment:  # closed at WeChat Pay, or found paid after all
            await _expire(seat["id"], seat["out_trade_no"], provider=provider, policy=policy)
        await refund_failed_seat(seat["id"], provider=provider, policy=policy)
    unfinished = await Seat.count().where((Seat.group == group_id) & (Seat.status == SeatStatus.pending_payment))
    unrefunded = await Seat.count().where(
        (Seat.group == group_id) & (Seat.status == SeatStatus.paid) & Seat.id.not_in(SeatRefund.select(SeatRefund.seat))
    )
    if unfinished == 0 and unrefunded == 0:
        await Group.update({Group.settled_at: now}).where(
            (Group.id == group_id) & (Group.status == GroupStatus.failed) & Group.settled_at.is_null()
        )


def _out_refund_no(out_trade_no: str, reason: SeatRefundReason) -> str:
    return refunds.out_refund_no(out_trade_no, f"groupbuy:{reason.value}")


REFUND_REASONS = {
    SeatRefundReason.group_failed: "拼团未成团退款",
    SeatRefundReason.late_payment: "拼团订单已过期退款",
    SeatRefundReason.after_success: "拼团订单退款",
}


async def _insert_refund(
    seat_id: int,
    seat: dict[str, Any],
    *,
    reason: SeatRefundReason,
    now: datetime,
    policy: "CheckoutPolicy",
    note: str = "",
) -> None:
    """Inside the caller's transaction: the seat's one refund, in full, under a number fixed by the seat."""
    await insert_row(
        SeatRefund,
        seat=seat_id,
        out_refund_no=_out_refund_no(seat["out_trade_no"], reason),
        amount_fen=seat["amount_fen"],
        reason=reason,
        note=note[:80],
        status=RefundStatus.processing,
        next_query_at=now + timedelta(seconds=policy.refund_query_interval),
        created_at=now,
    )


async def _release_units(seat: dict[str, Any], *, stock: bool) -> None:
    await MemberUnits.update({MemberUnits.units: MemberUnits.units - seat["quantity"]}).where(
        (MemberUnits.campaign == seat["campaign"]) & (MemberUnits.member == seat["member"])
    )
    if stock:
        await Campaign.update({Campaign.stock_left: Campaign.stock_left + seat["quantity"]}).where(
            Campaign.id == seat["campaign"]
        )


_REFUNDED_SEAT = (Seat.status, Seat.amount_fen, Seat.out_trade_no, Seat.campaign, Seat.member, Seat.quantity)


async def refund_failed_seat(seat_id: int, *, provider: PaymentProvider, policy: "CheckoutPolicy") -> None:
    """Refund a paid seat of a failed group in full, once: the refund row, and the units and stock it gives
    back, are one transaction, and its out_refund_no is fixed, so a second run asks for the same refund."""
    now = utcnow()
    try:
        async with write_transaction():
            seat = await Seat.select(*_REFUNDED_SEAT, Seat.group.status).where(Seat.id == seat_id).first()
            if seat["status"] != SeatStatus.paid or seat["group.status"] != GroupStatus.failed:
                return
            await _insert_refund(seat_id, seat, reason=SeatRefundReason.group_failed, now=now, policy=policy)
            await _release_units(seat, stock=True)
    except Exception as error:
        if not is_unique_violation(error):
            raise  # else: another sweeper made this refund a moment ago; it is asked for below all the same
    await _submit_pending_refund(seat_id, provider=provider, policy=policy)


async def refund_order(
    seat_id: int, *, staff: "CurrentStaff", note: str, provider: PaymentProvider, policy: "CheckoutPolicy"
) -> tuple[dict[str, Any], bool]:
    """A refund after the group succeeded (picked up or not), by staff of its pickup store or HQ: the whole
    order, once. The group stays succeeded; the member's units are freed, the stock stays with the group,
    whose goods were ordered for it. Answers (refund, created); a second request answers the first refund."""
    seat = await Seat.select(Seat.pickup_store).where(Seat.id == seat_id).first()
    if seat is None or not staff.acts_for(seat["pickup_store"]):
        raise SeatNotFound(seat_id=seat_id)
    created = False
    if not await SeatRefund.exists().where(SeatRefund.seat == seat_id):
        now = utcnow()
        try:
            async with write_transaction():
                # The guarded touch takes the seat's row first, so a pickup at that moment waits or goes first.
                held = (
                    await Seat.update({Seat.status: Seat.status})
                    .where((Seat.id == seat_id) & Seat.status.is_in([SeatStatus.succeeded, SeatStatus.picked_up]))
                    .returning(*_REFUNDED_SEAT)
                )
                if not held:
                    raise NotRefundable(seat_id=seat_id)
                await _insert_refund(
                    seat_id, held[0], reason=SeatRefundReason.after_success, now=now, policy=policy, note=note
                )
                await _release_units(held[0], stock=False)
            created = True
            logger.info("group-buy order refunded after success", extra={"seat_id": seat_id, "staff_id": staff.id})
        except Exception as error:
            if not is_unique_violation(error):
                raise  # else: the same refund, asked for a moment ago
    await _submit_pending_refund(seat_id, provider=provider, policy=policy)
    return await SeatRefund.select().where(SeatRefund.seat == seat_id).first(), created


async def _submit_pending_refund(seat_id: int, *, provider: PaymentProvider, policy: "CheckoutPolicy") -> None:
    refund = await SeatRefund.select().where(SeatRefund.seat == seat_id).first()
    if refund is not None and refund["status"] == RefundStatus.processing:
        await _submit_refund(refund, provider=provider, policy=policy)


async def _submit_refund(refund: dict[str, Any], *, provider: PaymentProvider, policy: "CheckoutPolicy") -> None:
    seat = await Seat.select(Seat.out_trade_no).where(Seat.id == refund["seat"]).first()
    reason = REFUND_REASONS[SeatRefundReason(refund["reason"])]
    answer = await ask_refund(
        provider,
        out_trade_no=seat["out_trade_no"],
        out_refund_no=refund["out_refund_no"],
        refund_fen=refund["amount_fen"],
        total_fen=refund["amount_fen"],
        reason=f"{reason}：{refund['note']}" if refund["note"] else reason,
    )
    if answer.refused:
        await _apply_refund(refund["id"], RefundResult(RefundState.closed), failure=answer.refused, policy=policy)
    elif answer.result is not None:  # else no answer: the sweeper asks again
        await _apply_refund(refund["id"], answer.result, policy=policy)


async def _apply_refund(refund_id: int, result: RefundResult, *, policy: "CheckoutPolicy", failure: str = "") -> None:
    now = utcnow()
    processing = (SeatRefund.id == refund_id) & (SeatRefund.status == RefundStatus.processing)
    if result.state is RefundState.success:
        async with write_transaction():
            done = (
                await SeatRefund.update(
                    {
                        SeatRefund.status: RefundStatus.succeeded,
                        SeatRefund.settled_at: now,
                        SeatRefund.refund_id: result.refund_id,
                        SeatRefund.next_query_at: None,
                    }
                )
                .where(processing)
                .returning(SeatRefund.seat)
            )
            if done:
                await Seat.update({Seat.status: SeatStatus.refunded}).where(Seat.id == done[0]["seat"])
        return
    if result.state is RefundState.closed:  # the money did not go back: someone must look at it
        await SeatRefund.update(
            {
                SeatRefund.status: RefundStatus.failed,
                SeatRefund.settled_at: now,
                SeatRefund.failure: (failure or "CLOSED")[:32],
                SeatRefund.next_query_at: None,
            }
        ).where(processing)
        logger.error("group-buy refund failed", extra={"refund_id": refund_id, "failure": failure or "CLOSED"})
        return
    await SeatRefund.update(
        {
            SeatRefund.refund_id: result.refund_id,
            SeatRefund.failure: "ABNORMAL" if result.state is RefundState.abnormal else "",
            SeatRefund.next_query_at: now + timedelta(seconds=policy.refund_query_interval),
        }
    ).where(processing)


async def advance_refunds(*, provider: PaymentProvider, policy: "CheckoutPolicy", now: datetime | None = None) -> int:
    """The sweeper's part: seat refunds still processing are asked about; answers how many."""
    now = now or utcnow()
    due = (
        await SeatRefund.select()
        .where((SeatRefund.status == RefundStatus.processing) & (SeatRefund.next_query_at <= now))
        .limit(200)
    )
    for refund in due:
        claimed = (
            await SeatRefund.update({SeatRefund.next_query_at: now + timedelta(seconds=policy.refund_query_interval)})
            .where(
                (SeatRefund.id == refund["id"])
                & (SeatRefund.status == RefundStatus.processing)
                & (SeatRefund.next_query_at <= now)
            )
            .returning(SeatRefund.id)
        )
        if not claimed:
            continue
        answer = await look_up_refund(provider, refund["out_refund_no"])
        if answer.missing:  # the refund call never arrived: make it again
            await _submit_refund(refund, provider=provider, policy=policy)
        elif answer.result is not None:
            await _apply_refund(refund["id"], answer.result, policy=policy)
    return len(due)


async def accept_refund_notice(notice: RefundNotice, *, provider: PaymentProvider, policy: "CheckoutPolicy") -> bool:
    """A verified refund notification; answers False when the refund is not a seat's."""
    refund = await SeatRefund.select(SeatRefund.id).where(SeatRefund.out_refund_no == notice.out_refund_no).first()
    if refund is None:
        return False
    result = refund_notice_result(notice, provider=provider, seat_refund_id=refund["id"])
    if result is not None:
        await _apply_refund(refund["id"], result, policy=policy)
    return True


# Pickup at the store ------------------------------------------------------------------------------


async def pick_up(*, store_id: int, pickup_code: str, staff_id: int) -> dict[str, Any]:
    """Hand the goods over: once, and only at the seat's own pickup store; any other code is unknown here."""
    code = pickup_code.strip().upper()
    now = utcnow()
    async with write_transaction():
        done = (
            await Seat.update({Seat.status: SeatStatus.picked_up, Seat.picked_up_at: now, Seat.picked_up_by: staff_id})
            .where(
                (Seat.pickup_code == code)
                & (Seat.pickup_store == store_id)
                & (Seat.status == SeatStatus.succeeded)
                & Seat.id.not_in(SeatRefund.select(SeatRefund.seat))
            )
            .returning(Seat.id)
        )
    if done:
        logger.info("group-buy order picked up", extra={"seat_id": done[0]["id"], "staff_id": staff_id})
        return await get_seat(done[0]["id"])
    seat = (
        await Seat.select(Seat.id, Seat.status)
        .where((Seat.pickup_code == code) & (Seat.pickup_store == store_id))
        .first()
    )
    if seat is not None and seat["status"] == SeatStatus.picked_up:
        raise AlreadyPickedUp(store_id=store_id)
    if seat is not None and await SeatRefund.exists().where(SeatRefund.seat == seat["id"]):
        raise OrderRefunded(store_id=store_id)
    logger.info("pickup code not recognised", extra={"store_id": store_id, "staff_id": staff_id})
    raise PickupNotFound(store_id=store_id)


async def move_seats(survivor_id: int, merged_id: int) -> int:
    """A member merge, inside its transaction: the merged member's group-buy orders, units and groups become
    the survivor's; answers how many orders moved. Where both held a live seat in one group, the merged
    seat stays paid and valid but no longer counts as a second place of the same person."""
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


async def member_seats(member_id: int, *, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    query = Seat.select(*_SEAT_COLUMNS).where(Seat.member == member_id)
    if before_id is not None:
        query = query.where(Seat.id < before_id)
    return await query.order_by(Seat.id, ascending=False).limit(limit)


# Demand: what HQ orders from the supplier, per pickup store -------------------------------------------


async def demand(campaign_id: int) -> dict[str, Any]:
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
    rows = {
        store["id"]: {
            "store_id": store["id"],
            "store_code": store["code"],
            "store_name": store["name"],
            "pickup_date": campaign["pickup_date"],
            "firm_units": 0,
            "tentative_units": 0,
            "picked_up_units": 0,
            "virtual_seats": virtual.get(store["id"], 0),
        }
        for store in campaign["pickup_stores"]
    }
    for line in sums:
        row, units = rows.get(line["pickup_store"]), int(line["sum"] or 0)
        if row is None:  # a store taken off the campaign after seats were taken: still counted
            continue
        if line["status"] in (SeatStatus.succeeded, SeatStatus.picked_up):
            row["firm_units"] += units
            if line["status"] == SeatStatus.picked_up:
                row["picked_up_units"] += units
        elif line["group.status"] == GroupStatus.forming and line["status"] in (
            SeatStatus.pending_payment,
            SeatStatus.paid,
        ):
            row["tentative_units"] += units
    lines = sorted(rows.values(), key=lambda row: row["store_code"])
    totals = {
        key: sum(row[key] for row in lines)
        for key in ("firm_units", "tentative_units", "picked_up_units", "virtual_seats")
    }
    return {
        "campaign_id": campaign_id,
        "product_name": campaign["product_name"],
        "pickup_date": campaign["pickup_date"],
        "rows": lines,
        "totals": totals,
    }


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


def demand_csv(report: dict[str, Any]) -> bytes:
    """UTF-8 with a byte-order mark, so that Excel opens the Chinese names as they are."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DEMAND_CSV_HEADER)
    for row in report["rows"]:
        writer.writerow(
            [
                row["store_code"],
                _cell(row["store_name"]),
                row["pickup_date"].isoformat(),
                row["firm_units"],
                row["tentative_units"],
                row["picked_up_units"],
                row["virtual_seats"],
            ]
        )
    totals = report["totals"]
    writer.writerow(
        [
            "合计 total",
            "",
            report["pickup_date"].isoformat(),
            totals["firm_units"],
            totals["tentative_units"],
            totals["picked_up_units"],
            totals["virtual_seats"],
        ]
    )
    return "\ufeff".encode() + out.getvalue().encode()


def _cell(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
