"""Group-buy presales: campaigns HQ runs, groups members fill, seats they pay for, pickups at the store."""

import logging
from datetime import UTC, datetime
from typing import Any

from backend.core.clock import utcnow
from backend.core.db import insert_row, write_transaction
from backend.groupbuy.errors import CampaignInvalid, CampaignNotFound
from backend.groupbuy.schemas import CampaignCreate
from backend.groupbuy.tables import Campaign, CampaignStore
from backend.stores.tables import Store

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
            Campaign, title=data.title, product_name=data.product_name, product_image=data.product_image,
            price_fen=data.price_fen, original_price_fen=data.original_price_fen, group_size=data.group_size,
            group_ttl_minutes=data.group_ttl_minutes, payment_window_minutes=data.payment_window_minutes,
            stock=data.stock, stock_left=data.stock, per_member_limit=data.per_member_limit,
            starts_at=data.starts_at.astimezone(UTC), ends_at=data.ends_at.astimezone(UTC),
            pickup_date=data.pickup_date, virtual_fill=data.virtual_fill, created_by=staff_id, created_at=now)
        for store_id in store_ids:
            await insert_row(CampaignStore, campaign=campaign_id, store=store_id)
    logger.info("group-buy campaign created", extra={"campaign_id": campaign_id, "staff_id": staff_id})
    return await get_campaign(campaign_id)


async def _with_stores(campaigns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not campaigns:
        return []
    rows = await CampaignStore.select(CampaignStore.campaign, *CampaignStore.store.all_columns()).where(
        CampaignStore.campaign.is_in([c["id"] for c in campaigns])).order_by(CampaignStore.store.code)
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
    rows = await Campaign.select().where((Campaign.starts_at <= now) & (Campaign.ends_at > now)).order_by(
        Campaign.ends_at).order_by(Campaign.id).limit(200)
    return await _with_stores(rows)
