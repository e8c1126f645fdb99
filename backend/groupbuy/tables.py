from piccolo.columns import BigInt, Boolean, Date, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

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
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    campaign_prices_make_sense = Check((price_fen > 0) & (price_fen <= original_price_fen))
    campaign_group_size_in_range = Check((group_size >= 2) & (group_size <= MAX_GROUP_SIZE))
    campaign_ttl_in_range = Check((group_ttl_minutes >= MIN_GROUP_TTL_MINUTES)
                                  & (group_ttl_minutes <= MAX_GROUP_TTL_MINUTES))
    campaign_stock_in_range = Check((stock_left >= 0) & (stock_left <= stock))
    campaign_limits_positive = Check((per_member_limit >= 1) & (payment_window_minutes >= 1))


class CampaignStore(Table, tablename="groupbuy_campaign_store"):
    """A store where a campaign's orders are picked up."""

    campaign = ForeignKey(Campaign, null=False, on_delete=OnDelete.cascade, index=True)
    store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict)

    one_row_per_campaign_store = Unique([campaign, store])
