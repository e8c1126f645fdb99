from backend.core.errors import DomainError


class CampaignInvalid(DomainError):
    code = "referrals.campaign_invalid"
    status_code = 422
    default_message = "The referral campaign does not add up."


class CampaignNotFound(DomainError):
    code = "referrals.campaign_not_found"
    status_code = 404
    default_message = "No such referral campaign."


class ShareTargetNotFound(DomainError):
    code = "referrals.target_not_found"
    status_code = 404
    default_message = "No such campaign or group to share."


class ShareTargetClosed(DomainError):
    code = "referrals.target_closed"
    status_code = 409
    default_message = "That can no longer be shared."


class UnknownScene(DomainError):
    code = "referrals.unknown_scene"
    status_code = 404
    default_message = "No such share link."


class OneTarget(DomainError):
    """A share link or a poster is for a referral campaign or for a group-buy group, never both or neither."""

    code = "request.invalid"
    status_code = 422
    default_message = "Name exactly one of campaignId and groupId."
