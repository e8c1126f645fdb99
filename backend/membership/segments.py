"""A segment's rules as one SQL statement over `member`, for either engine: nothing is decided in Python.

Each builder answers SQL text with Piccolo `QueryString` placeholders (`{}`) and its arguments, so that it can
be run as it is or nested in another statement: `QueryString(f"... IN ({sql})", *args)`.

What the rules mean, in one place:
- a member counts while active: one merged into another is the survivor, and only the survivor matches;
- a *paid order* is one with money received that was not refunded in full (status `paid` or
  `partially_refunded`); recency, order counts and spend look at paid orders only;
- *spend* is Σ(`paid_fen` − `refunded_fen`) of the member's orders paid in the window: what they kept paying
  for. A member with no such order spent 0.
"""

from datetime import datetime, timedelta
from typing import Any

from backend.members.tables import MemberStatus
from backend.membership.schemas import SegmentRules
from backend.orders.tables import OrderStatus

DEFAULT_SPEND_WINDOW_DAYS = 90  # a spend rule without `spendWindowDays` looks back this far

# Written out, not bound: the database then reads a member's paid orders from the index kept of them alone.
_PAID_STATUSES = ", ".join(f"'{status.value}'" for status in (OrderStatus.paid, OrderStatus.partially_refunded))
_PAID = f'o."member" IS NOT NULL AND o."status" IN ({_PAID_STATUSES})'
_SPEND = 'CAST(SUM(o."paid_fen" - o."refunded_fen") AS BIGINT)'


def marks(values: list[Any]) -> str:
    """A placeholder for each value, for an IN list."""
    return ", ".join("{}" for _ in values)


def spend_by_member(window_days: int, *, now: datetime) -> tuple[str, list[Any]]:
    """`member, spend_fen` of every member who spent anything in the last `window_days` (spend as above)."""
    sql = (
        f'SELECT o."member" AS "member", {_SPEND} AS "spend_fen" FROM "sale_order" o '
        f'WHERE {_PAID} AND o."paid_at" >= {{}} GROUP BY o."member"'
    )
    return sql, [now - timedelta(days=window_days)]


def spend_window_days(rules: SegmentRules) -> int:
    return rules.spend_window_days or DEFAULT_SPEND_WINDOW_DAYS


def conditions(rules: SegmentRules, *, now: datetime) -> tuple[list[str], list[Any]]:
    """The rules as conditions on `member m`, ANDed by the caller, with their arguments in order."""
    where: list[str] = ['m."status" = {}']
    args: list[Any] = [MemberStatus.active.value]
    if rules.tier_codes:  # the tier held now (a code HQ has since taken off the ladder matches nobody)
        where.append(f'm."tier_code" IN ({marks(rules.tier_codes)})')
        args += rules.tier_codes
    if rules.tag_ids:
        where.append(f'm."id" IN (SELECT t."member" FROM "member_tag" t WHERE t."tag" IN ({marks(rules.tag_ids)}))')
        args += rules.tag_ids
    if rules.store_ids:
        where.append(f'm."enrolled_store" IN ({marks(rules.store_ids)})')
        args += rules.store_ids
    if channels := rules.channels:
        where.append(f'm."enrolled_via" IN ({marks(channels)})')
        args += [channel.value for channel in channels]
    _spend(rules, now, where, args)
    if rules.min_orders is not None:
        # Counted within the window when one is given, over the member's whole history otherwise.
        window = ""
        if rules.spend_window_days is not None:
            window = ' AND o."paid_at" >= {}'
            args.append(now - timedelta(days=rules.spend_window_days))
        where.append(
            f'm."id" IN (SELECT o."member" FROM "sale_order" o WHERE {_PAID}{window} '
            'GROUP BY o."member" HAVING COUNT(*) >= {})'
        )
        args.append(rules.min_orders)
    _recency(rules, now, where, args)
    return where, args


def _spend(rules: SegmentRules, now: datetime, where: list[str], args: list[Any]) -> None:
    low, high = rules.min_spend_fen or 0, rules.max_spend_fen
    if not low and high is None:
        return
    spent = f'SELECT o."member" FROM "sale_order" o WHERE {_PAID} AND o."paid_at" >= {{}} GROUP BY o."member" HAVING '
    args.append(now - timedelta(days=spend_window_days(rules)))
    if low:
        where.append(f'm."id" IN ({spent}{_SPEND} >= {{}}' + ("" if high is None else f" AND {_SPEND} <= {{}}") + ")")
        args += [low] if high is None else [low, high]
    else:  # up to `high`, members who spent nothing included
        where.append(f'm."id" NOT IN ({spent}{_SPEND} > {{}})')
        args.append(high)


def _recency(rules: SegmentRules, now: datetime, where: list[str], args: list[Any]) -> None:
    within, before = rules.last_paid_within_days, rules.last_paid_before_days
    if before is not None:
        # Paid before, and not in the last `before` days (members who never paid are not "lapsed").
        having = 'MAX(o."paid_at") < {}'
        args_here: list[Any] = [now - timedelta(days=before)]
        if within is not None:
            having += ' AND MAX(o."paid_at") >= {}'
            args_here.append(now - timedelta(days=within))
        where.append(
            f'm."id" IN (SELECT o."member" FROM "sale_order" o WHERE {_PAID} GROUP BY o."member" HAVING {having})'
        )
        args += args_here
    elif within is not None:
        where.append(f'm."id" IN (SELECT o."member" FROM "sale_order" o WHERE {_PAID} AND o."paid_at" >= {{}})')
        args.append(now - timedelta(days=within))


def members_matching(rules: SegmentRules, *, now: datetime) -> tuple[str, list[Any]]:
    """`SELECT m."id" FROM "member" m WHERE ...`: the ids of the members the rules match at `now`."""
    where, args = conditions(rules, now=now)
    return 'SELECT m."id" FROM "member" m WHERE ' + " AND ".join(where), args


def count_sql(rules: SegmentRules, *, now: datetime) -> tuple[str, list[Any]]:
    where, args = conditions(rules, now=now)
    return 'SELECT COUNT(*) AS "n" FROM "member" m WHERE ' + " AND ".join(where), args


def page_sql(rules: SegmentRules, *, now: datetime, limit: int, before_id: int | None) -> tuple[str, list[Any]]:
    """A page of the matching members, newest (highest id) first, before `before_id`."""
    where, args = conditions(rules, now=now)
    if before_id is not None:
        where.append('m."id" < {}')
        args.append(before_id)
    sql = (
        'SELECT m."id", m."nickname", m."enrolled_store", m."enrolled_via", m."created_at" FROM "member" m '
        f'WHERE {" AND ".join(where)} ORDER BY m."id" DESC LIMIT {{}}'
    )
    return sql, [*args, limit]
