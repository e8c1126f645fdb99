from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The chain's calendar: a business day (a referrer's daily cap, a paid member's coupon day, a day of the store
# report) runs from midnight to midnight in China Standard Time.
BUSINESS_TIME = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def business_day(moment: datetime) -> date:
    return moment.astimezone(BUSINESS_TIME).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC moments a business day starts at and the next one starts at."""
    start = datetime.combine(day, time(), tzinfo=BUSINESS_TIME)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)
