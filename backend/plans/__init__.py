"""Paid plans (心享会员) sold as orders of kind `membership`. Importing the package registers what a purchase's
payment, closing and refund do to the member's paid period, and how a merge moves purchases."""

from backend.plans import service as service
