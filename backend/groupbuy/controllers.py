from typing import Any

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from backend.groupbuy import service
from backend.groupbuy.schemas import CampaignCreate, CampaignOut
from backend.stores.auth import CurrentStaff, provide_hq_admin
from backend.stores.controllers import store_out


def campaign_out(row: dict[str, Any]) -> CampaignOut:
    return CampaignOut(
        id=row["id"], title=row["title"], product_name=row["product_name"], product_image=row["product_image"],
        price_fen=row["price_fen"], original_price_fen=row["original_price_fen"], group_size=row["group_size"],
        group_ttl_minutes=row["group_ttl_minutes"], payment_window_minutes=row["payment_window_minutes"],
        stock=row["stock"], stock_left=row["stock_left"], per_member_limit=row["per_member_limit"],
        starts_at=row["starts_at"], ends_at=row["ends_at"], pickup_date=row["pickup_date"],
        pickup_stores=[store_out(store) for store in row["pickup_stores"]], virtual_fill=row["virtual_fill"],
        created_at=row["created_at"],
    )


class GroupBuyController(Controller):
    path = "/api/v1/groupbuy"
    tags = ["Group-buy"]

    @get("/campaigns", operation_id="ListGroupBuyCampaigns")
    async def list_campaigns(self) -> list[CampaignOut]:
        """Campaigns open now, ending soonest first."""
        return [campaign_out(row) for row in await service.open_campaigns()]

    @get("/campaigns/{campaign_id:int}", operation_id="GetGroupBuyCampaign")
    async def get_campaign(self, campaign_id: FromPath[int]) -> CampaignOut:
        return campaign_out(await service.get_campaign(campaign_id))


class AdminGroupBuyController(Controller):
    path = "/api/v1/admin/groupbuy"
    tags = ["HQ"]
    dependencies = {"staff": Provide(provide_hq_admin)}

    @post("/campaigns", operation_id="CreateGroupBuyCampaign")
    async def create_campaign(self, staff: NamedDependency[CurrentStaff],
                              data: JSONBody[CampaignCreate]) -> CampaignOut:
        return campaign_out(await service.create_campaign(data, staff_id=staff.id))
