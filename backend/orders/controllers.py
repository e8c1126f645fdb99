from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from backend.core.auth import caller
from backend.core.paging import Cursor, Limit, PathId, before
from backend.members.auth import CurrentMember, provide_current_member
from backend.orders import service
from backend.orders.errors import OrderNotFound
from backend.orders.schemas import AddressOut, LandingOut, OrderLineOut, OrderOut, OrdersPage
from backend.orders.service import ChannelFields, LineRecord, OrderRecord
from backend.orders.tables import OrderKind, OrderStatus
from backend.stores.service import StoreRecord


def landing_for(order: OrderRecord, store: StoreRecord) -> LandingOut | None:
    """The store's words for the payer after paying: its landing text, and its welcome to a new member only
    to a payer this payment made one."""
    if order.status is not OrderStatus.paid:
        return None
    text = "\n".join(part for part in (store.landing_text, store.welcome_text if order.member_enrolled else "") if part)
    if not text and not store.landing_url:
        return None
    return LandingOut(text=text, url=store.landing_url or None)


def order_out(
    order: OrderRecord,
    *,
    store_name: str,
    channel: ChannelFields | None = None,
    landing: LandingOut | None = None,
    lines: list[LineRecord] | None = None,
) -> OrderOut:
    channel = channel or ChannelFields()
    return OrderOut(
        id=order.id,
        kind=order.kind,
        store_id=order.store,
        store_name=store_name,
        status=channel.status or order.status.value,
        payment_status=order.status,
        amount_fen=order.amount_fen,
        discount_fen=order.discount_fen,
        payable_fen=order.payable_fen,
        paid_fen=order.paid_fen,
        refunded_fen=order.refunded_fen,
        points_redeemed=order.points_redeemed,
        points_earned=order.points_earned,
        coupon_id=order.coupon_id,
        coupon_discount_fen=order.coupon_discount_fen,
        tier_discount_fen=order.tier_discount_fen,
        member_price_saved_fen=order.member_price_saved_fen,
        points_multiplier_percent=order.points_multiplier_percent,
        out_trade_no=order.out_trade_no,
        member_id=order.member,
        member_enrolled=order.member_enrolled,
        created_at=order.created_at,
        paid_at=order.paid_at,
        pay_by=order.pay_by,
        failure_reason=order.failure_reason or None,
        landing=landing,
        group_id=channel.group_id,
        pickup_store_id=channel.pickup_store_id,
        pickup_code=channel.pickup_code,
        fulfilment=channel.fulfilment,
        address=None
        if not channel.address_text
        else AddressOut(name=channel.address_name or "", phone=channel.address_phone or "", text=channel.address_text),
        lines=None if lines is None else [OrderLineOut(**_fields(line)) for line in lines],
    )


def _fields(line: LineRecord) -> dict:
    return {name: getattr(line, name) for name in LineRecord.__slots__}


class MyOrdersController(Controller):
    path = "/api/v1/me/orders"
    tags = ["Shopper"]
    dependencies = {"member": caller(provide_current_member)}

    @get(operation_id="ListMyOrders")
    async def list_orders(
        self,
        member: NamedDependency[CurrentMember],
        limit: Limit = 20,
        cursor: Cursor = None,
        kind: Annotated[OrderKind | None, QueryParameter()] = None,
    ) -> OrdersPage:
        """My orders.

        Every order of the member, whatever its channel, newest first."""
        views = await service.member_orders(member.id, limit=limit + 1, before_id=before(cursor), kind=kind)
        items = [order_out(view.order, store_name=view.store_name, channel=view.channel) for view in views[:limit]]
        return OrdersPage(items=items, next_cursor=str(items[-1].id) if len(views) > limit else None)

    @get("/{order_id:int}", operation_id="GetMyOrder")
    async def get_order(self, member: NamedDependency[CurrentMember], order_id: PathId) -> OrderOut:
        """One of my orders.

        One of the member's orders with its lines; another member's order does not exist."""
        view = await service.member_order(member.id, order_id)
        if view is None:
            raise OrderNotFound(order_id=order_id)
        return order_out(
            view.order,
            store_name=view.store_name,
            channel=view.channel,
            lines=await service.order_lines(order_id),
        )
