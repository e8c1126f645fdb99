"""Tiers, growth, paid plans, tags and segments. Importing the package registers how a merge moves tags."""

from backend.membership import service as service
