"""Tiers, growth, paid plans' periods, tags and segments. Importing the package registers how a merge moves tags
and standing, and how every payment and refund moves a member's growth (`standing`)."""

from backend.membership import service as service
from backend.membership import standing as standing
