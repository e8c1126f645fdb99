from piccolo.columns import BigInt, Date, ForeignKey, Integer, Timestamptz
from piccolo.columns.base import OnDelete
from piccolo.constraints import Unique
from piccolo.table import Table

from backend.stores.tables import Store


class StoreDay(Table, tablename="report_store_day"):
    """A store's figures for one business day (Asia/Shanghai) that has ended, as the store report shows them.

    Written once per day by the sweeper, an hour after the day ends, from the rows of that day (orders by the
    time they were paid, refunds and points by when they were recorded, members by when they enrolled); the
    report reads these for the days written and works out the others, today's among them, from the rows.
    """

    store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict)
    day = Date(index=True)
    till_orders = Integer(default=0)
    till_sales_fen = BigInt(default=0)
    store_code_orders = Integer(default=0)
    store_code_sales_fen = BigInt(default=0)
    groupbuy_orders = Integer(default=0)
    groupbuy_sales_fen = BigInt(default=0)
    mall_orders = Integer(default=0)
    mall_sales_fen = BigInt(default=0)
    membership_orders = Integer(default=0)
    membership_sales_fen = BigInt(default=0)
    refunds = Integer(default=0)
    refunds_fen = BigInt(default=0)
    new_members_cashier = Integer(default=0)
    new_members_miniprogram = Integer(default=0)
    new_members_referral = Integer(default=0)
    points_earned = BigInt(default=0)
    points_redeemed = BigInt(default=0)
    points_expired = BigInt(default=0)
    coupons_used = Integer(default=0)
    coupon_discount_fen = BigInt(default=0)
    groupbuy_units = Integer(default=0)

    report_store_day_once = Unique([day, store])


class ReportDay(Table, tablename="report_day"):
    """A business day whose StoreDay rows are written (every store's at once, in one transaction)."""

    day = Date(unique=True)
    stores = Integer(default=0)
    rolled_at = Timestamptz()
