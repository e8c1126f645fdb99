from backend.core.errors import DomainError


class CampaignInvalid(DomainError):
    code = "groupbuy.campaign_invalid"
    status_code = 422
    default_message = "The campaign does not add up."


class CampaignNotFound(DomainError):
    code = "groupbuy.campaign_not_found"
    status_code = 404
    default_message = "No such group-buy campaign."
