from enum import Enum

from piccolo.columns import BigInt, Boolean, Date, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.cashier.tables import RefundStatus
from backend.members.tables import Member
from backend.stores.tables import Staff, Store

MAX_GROUP_SIZE = 50
MIN_GROUP_TTL_MINUTES, MAX_GROUP_TTL_MINUTES = 24 * 60, 7 * 24 * 60


class Campaign(Table, tablename="groupbuy_campaign"):
    """A presale HQ runs: one product at one price, sold in groups that must fill before their deadline.

    `stock_left` is taken by guarded updates (`stock_left >= n`) in the transaction that takes a seat,
    and given back when a seat expires or a group fails; it never leaves 0..stock.
    """

    title = Varchar(length=100)
    product_name = Varchar(length=100)
    product_image = Varchar(length=200, default="")
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
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    campaign_prices_make_sense = Check((price_fen > 0) & (price_fen <= original_price_fen))
    campaign_group_size_in_range = Check((group_size >= 2) & (group_size <= MAX_GROUP_SIZE))
    campaign_ttl_in_range = Check(
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
    expired = "expired"
    picked_up = "picked_up"


class Seat(Table, tablename="groupbuy_order"):
    """One member's place in a group: the group-buy order they pay for and pick up."""

    group = ForeignKey(Group, null=False, on_delete=OnDelete.restrict, index=True)
    campaign = ForeignKey(Campaign, null=False, on_delete=OnDelete.restrict, index=True)
    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    # The member while the seat is live, NULL once it has expired: one live seat per member and group,
    # and a member whose seat expired may take another.
    holder = Integer(null=True, default=None)
    pickup_store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict)
    quantity = Integer()
    amount_fen = BigInt()
    status = Varchar(length=16, choices=SeatStatus, default=SeatStatus.pending_payment)
    pay_by = Timestamptz(index=True)
    out_trade_no = Varchar(length=32, unique=True)
    transaction_id = Varchar(length=32, default="")
    paid_at = Timestamptz(null=True, default=None)
    pickup_code = Varchar(length=16, null=True, default=None, unique=True)  # given when the group succeeds
    picked_up_at = Timestamptz(null=True, default=None)
    picked_up_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    one_live_seat_per_member = Unique([group, holder])
    seat_held_by_its_member = Check(holder.is_null() | (holder == member))
    seat_amounts_positive = Check((quantity >= 1) & (amount_fen > 0))


class MemberUnits(Table, tablename="groupbuy_member_units"):
    """Units a member holds in a campaign's live seats, raised by a guarded update against its limit."""

    campaign = ForeignKey(Campaign, null=False, on_delete=OnDelete.cascade)
    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict)
    units = Integer(default=0)

    one_row_per_member_campaign = Unique([campaign, member])
    member_units_not_negative = Check(units >= 0)


class SeatRefundReason(str, Enum):
    group_failed = "group_failed"  # the group missed its deadline
    late_payment = "late_payment"  # money arrived after the seat had expired
    after_success = "after_success"  # a refund the store or HQ gave after the group succeeded


class SeatRefund(Table, tablename="groupbuy_refund"):
    """Money back for one paid seat, once: its own out_refund_no, derived from the seat's out_trade_no."""

    seat = ForeignKey(Seat, null=False, on_delete=OnDelete.restrict, unique=True)
    out_refund_no = Varchar(length=64, unique=True)
    amount_fen = BigInt()
    reason = Varchar(length=16, choices=SeatRefundReason)
    note = Varchar(length=80, default="")  # the staff's words for a refund after success
    status = Varchar(length=16, choices=RefundStatus, default=RefundStatus.processing)
    refund_id = Varchar(length=32, default="")
    failure = Varchar(length=32, default="")
    next_query_at = Timestamptz(null=True, default=None, index=True)
    created_at = Timestamptz()
    settled_at = Timestamptz(null=True, default=None)

    seat_refund_amount_positive = Check(amount_fen > 0)
