"""The periodic settlement loop: claims due rows by compare-and-set, so any number of workers may run it."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from backend.core import metrics
from backend.groupbuy import service as groupbuy
from backend.hq import report
from backend.payments import refunds
from backend.payments import service as payments
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import PaymentProvider
from backend.plans import service as plans
from backend.points import service as points
from backend.referrals import service as referrals

logger = logging.getLogger(__name__)


async def sweep_once(
    *, provider: PaymentProvider, policy: PaymentPolicy, now: datetime | None = None
) -> dict[str, int]:
    """Settle everything that is due; answers how many rows of each kind were settled or stepped."""
    return {
        "points_lots_expired": await points.expire_due(now=now),
        "trades_stepped": await payments.advance_due(provider=provider, policy=policy, now=now),
        "refunds_stepped": await refunds.advance_due(provider=provider, policy=policy, now=now),
        "groups_failed": await groupbuy.fail_due_groups(provider=provider, policy=policy, now=now),
        "referral_rewards_released": await referrals.release_due(now=now),
        "plan_coupon_rounds": await plans.issue_due_coupons(now=now),
        "report_days_written": await report.roll_up(now=now),
    }


@asynccontextmanager
async def running_sweeper(interval: float, *, provider: PaymentProvider, policy: PaymentPolicy) -> AsyncIterator[None]:
    """Sweep every `interval` seconds while the app runs (0: never)."""
    if interval <= 0:
        yield
        return

    async def loop() -> None:
        while True:
            try:
                await sweep_once(provider=provider, policy=policy)
                metrics.SWEEPS.labels("ok").inc()
            except Exception:  # one failed pass must not stop the next ones
                metrics.SWEEPS.labels("failed").inc()
                logger.exception("sweep failed")
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name="sweeper")
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
