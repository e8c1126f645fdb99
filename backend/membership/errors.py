from backend.core.errors import DomainError


class TagNameTaken(DomainError):
    code = "tags.name_taken"
    status_code = 409
    default_message = "A tag of that name is already in that group."


class TagNotFound(DomainError):
    code = "tags.not_found"
    status_code = 404
    default_message = "No such tag."


class UnknownTags(DomainError):
    code = "tags.unknown"
    status_code = 422
    default_message = "Some of the tags do not exist."


class SegmentNotFound(DomainError):
    code = "segments.not_found"
    status_code = 404
    default_message = "No such segment."


class NoRules(DomainError):
    code = "segments.no_rules"
    status_code = 422
    default_message = "Give a segment at least one rule; a segment of every member is not one."


class UnknownTier(DomainError):
    code = "segments.unknown_tier"
    status_code = 422
    default_message = "No tier has that code."


class UnknownSegmentTags(DomainError):
    code = "segments.unknown_tags"
    status_code = 422
    default_message = "Some of the tags do not exist."


class UnknownSegmentStores(DomainError):
    code = "segments.unknown_stores"
    status_code = 422
    default_message = "Some of the stores do not exist."


class RulesConflict(DomainError):
    code = "segments.rules_conflict"
    status_code = 422
    default_message = "These rules cannot hold together: no member could match."


class RuleIncomplete(DomainError):
    code = "segments.rule_incomplete"
    status_code = 422
    default_message = "A rule is missing what it applies to."


class LadderInvalid(DomainError):
    code = "tiers.invalid"
    status_code = 422
    default_message = "The ladder does not hold together: see details."
