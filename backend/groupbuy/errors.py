from backend.core.errors import DomainError


class CampaignInvalid(DomainError):
    code = "groupbuy.campaign_invalid"
    status_code = 422
    default_message = "The campaign does not add up."


class CampaignNotFound(DomainError):
    code = "groupbuy.campaign_not_found"
    status_code = 404
    default_message = "No such group-buy campaign."


class CampaignClosed(DomainError):
    code = "groupbuy.campaign_closed"
    status_code = 409
    default_message = "This campaign is not taking groups now."


class SoldOut(DomainError):
    code = "groupbuy.sold_out"
    status_code = 409
    default_message = "Sold out: no stock is left for that many units."


class PickupStoreInvalid(DomainError):
    code = "groupbuy.pickup_store_invalid"
    status_code = 422
    default_message = "This campaign is not picked up at that store."


class QuantityOverLimit(DomainError):
    code = "groupbuy.member_limit"
    status_code = 409
    default_message = "That would take you over this campaign's limit per member."


class GroupNotFound(DomainError):
    code = "groupbuy.group_not_found"
    status_code = 404
    default_message = "No such group."


class GroupFull(DomainError):
    code = "groupbuy.group_full"
    status_code = 409
    default_message = "This group has no seat left."


class GroupClosed(DomainError):
    code = "groupbuy.group_closed"
    status_code = 409
    default_message = "This group has ended."


class AlreadyInGroup(DomainError):
    code = "groupbuy.already_in_group"
    status_code = 409
    default_message = "You already hold a seat in this group."


class PickupNotFound(DomainError):
    code = "groupbuy.pickup_not_found"
    status_code = 404
    default_message = "No order with that pickup code is picked up at this store."


class AlreadyPickedUp(DomainError):
    code = "groupbuy.already_picked_up"
    status_code = 409
    default_message = "This order has been picked up already."


class OrderRefunded(DomainError):
    code = "groupbuy.order_refunded"
    status_code = 409
    default_message = "This order has been refunded; there is nothing to pick up."


class SeatNotFound(DomainError):
    code = "groupbuy.order_not_found"
    status_code = 404
    default_message = "No such group-buy order."


class NotRefundable(DomainError):
    code = "groupbuy.not_refundable"
    status_code = 409
    default_message = (
        "Only an order of a group that succeeded is refunded here; a group that fails refunds its members by itself."
    )


class SeatNotCancellable(DomainError):
    code = "groupbuy.not_cancellable"
    status_code = 409
    default_message = (
        "Only a seat still waiting for its payment can be given back; a paid one is refunded by the store."
    )
