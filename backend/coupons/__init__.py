"""Coupons: templates, campaigns, a member's coupons used once on an order. Importing the package registers its
part in enrolments, referrals, order outcomes and merges (`effects`)."""

from backend.coupons import effects as effects
