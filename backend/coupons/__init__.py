"""Coupons: templates, campaigns, a member's coupons used once on an order."""
