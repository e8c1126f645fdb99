from enum import Enum

from piccolo.columns import BigInt, Boolean, Date, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.catalogue.tables import Sku
from backend.members.tables import Member
from backend.orders.tables import Order
from backend.stores.tables import Staff, Store

MAX_GROUP_SIZE = 50
MIN_GROUP_TTL_MINUTES, MAX_GROUP_TTL_MINUTES = 15, 7 * 24 * 60


class Campaign(Table, tablename="groupbuy_campaign"):
    """A presale HQ runs: one product at one price, sold in groups that must fill before their deadline.

    `stock_left` is taken by guarded updates (`stock_left >= n`) in the transaction that takes a seat,
    and given back when a seat expires or a group fails; it never leaves 0..stock.
    """

    title = Varchar(length=100)
    product_name = Varchar(length=100)
    product_image = Varchar(length=200, default="")
    sku = ForeignKey(Sku, null=True, on_delete=OnDelete.restrict)  # the catalogue's SKU it sells, when HQ named one
    price_fen = BigInt()
    original_price_fen = BigInt()
    group_size = Integer()
    group_ttl_minutes = Integer()
    payment_window_minutes = Integer(default=15)
    stock = Integer()
    stock_left = Integer()
    per_member_limit = Integer()
    starts_at = Timestamptz()
    ends_at = Timestamptz(index=True)
    pickup_date = Date()
    virtual_fill = Boolean(default=False)
    # With virtual fill: a group whose paid seats reach this share of its size by the deadline succeeds,
    # its empty seats counted as virtual, never as sold.
    virtual_fill_percent = Integer(default=80)
    # Closed early by HQ: no new groups from then; the groups forming run to their deadlines.
    closed_at = Timestamptz(null=True, default=None)
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    campaign_prices_make_sense = Check((price_fen > 0) & (price_fen <= original_price_fen))
    campaign_group_size_in_range = Check((group_size >= 2) & (group_size <= MAX_GROUP_SIZE))
    campaign_ttl_from_15_minutes_to_a_week = Check(
        (group_ttl_minutes >= MIN_GROUP_TTL_MINUTES) & (group_ttl_minutes <= MAX_GROUP_TTL_MINUTES)
    )
    campaign_stock_in_range = Check((stock_left >= 0) & (stock_left <= stock))
    campaign_limits_positive = Check((per_member_limit >= 1) & (payment_window_minutes >= 1))
    campaign_virtual_fill_in_range = Check((virtual_fill_percent >= 50) & (virtual_fill_percent <= 100))


class CampaignStore(Table, tablename="groupbuy_campaign_store"):
    """A store where a campaign's orders are picked up."""

    campaign = ForeignKey(Campaign, null=False, on_delete=OnDelete.cascade, index=True)
    store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict)

    one_row_per_campaign_store = Unique([campaign, store])


class GroupStatus(str, Enum):
    forming = "forming"
    succeeded = "succeeded"
    failed = "failed"


class Group(Table, tablename="groupbuy_group"):
    """Neighbours buying together: succeeds when every seat is paid before `expires_at`, fails otherwise.

    `seats_taken` is raised by a guarded update (`seats_taken < group_size`) in the transaction that
    takes a seat, so a group is never over-full however many members race for its last seat.
    """

    campaign = ForeignKey(Campaign, null=False, on_delete=OnDelete.restrict, index=True)
    leader = ForeignKey(Member, null=False, on_delete=OnDelete.restrict)
    status = Varchar(length=16, choices=GroupStatus, default=GroupStatus.forming)
    group_size = Integer()
    seats_taken = Integer(default=0)
    seats_paid = Integer(default=0)
    virtual_seats = Integer(default=0)  # empty seats of a group that succeeded by virtual fill
    expires_at = Timestamptz(index=True)
    settled_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()

    group_seats_in_range = Check(
        (seats_taken >= 0) & (seats_taken <= group_size) & (seats_paid >= 0) & (seats_paid <= seats_taken)
    )
    # Virtual seats are the empty ones of a group that succeeded by virtual fill, and nothing else.
    group_virtual_seats_are_the_empty_ones = Check(
        '("virtual_seats" = 0 OR ("status" = \'succeeded\' AND "virtual_seats" = "group_size" - "seats_paid"))'
    )


class SeatStatus(str, Enum):
    pending_payment = "pending_payment"
    paid = "paid"
    succeeded = "succeeded"
    refunded = "refunded"
    expired = "expired"  # not paid in time: the seat, the units and the stock went back
    cancelled = "cancelled"  # given back unpaid by its member
    picked_up = "picked_up"


class Seat(Table, tablename="groupbuy_seat"):
    """One member's place in a group, and the order they pay for it with and pick it up by.

    The money is the order's; the seat keeps what is its own: its group, who holds it, where and with
    which code it is picked up.
    """

    order = ForeignKey(Order, null=False, on_delete=OnDelete.restrict, unique=True)
    group = ForeignKey(Group, null=False, on_delete=OnDelete.restrict, index=True)
    campaign = ForeignKey(Campaign, null=False, on_delete=OnDelete.restrict, index=True)
    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    # The member while the seat is live, NULL once it has expired or been given back: one live seat per
    # member and group, and a member whose seat ended may take another.
    holder = Integer(null=True, default=None)
    # The seat counts its quantity in its member's units (and in the stock taken): let go once, when it
    # expires, is given back or refunded. A seat let go is not picked up.
    held = Boolean(default=True)
    pickup_store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict)
    quantity = Integer()
    status = Varchar(length=16, choices=SeatStatus, default=SeatStatus.pending_payment)
    pickup_code = Varchar(length=16, null=True, default=None, unique=True)  # given when the group succeeds
    picked_up_at = Timestamptz(null=True, default=None)
    picked_up_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    groupbuy_seat_one_live_per_member = Unique([group, holder])
    groupbuy_seat_held_by_its_member = Check(holder.is_null() | (holder == member))
    groupbuy_seat_quantity_positive = Check(quantity >= 1)


class MemberUnits(Table, tablename="groupbuy_member_units"):
    """Units a member holds in a campaign's live seats, raised by a guarded update against its limit."""

    campaign = ForeignKey(Campaign, null=False, on_delete=OnDelete.cascade)
    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict)
    units = Integer(default=0)

    one_row_per_member_campaign = Unique([campaign, member])
    member_units_not_negative = Check(units >= 0)
