"""Random sequences of ledger operations, with the invariants checked in the database after every step."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from backend.core.db import close_database, insert_row, open_database, write_transaction
from backend.members import service as members
from backend.members.tables import Member, MemberMerge, MergeReason
from backend.points import service
from backend.points.errors import IdempotencyConflict, InsufficientPoints
from backend.points.tables import EntryKind, PointsAccount, PointsEntry, PointsLot, PointsLotUse

START = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
CREDIT_KINDS = {EntryKind.earn, EntryKind.reward, EntryKind.reverse_redeem, EntryKind.merge_in}
DEBIT_KINDS = {EntryKind.redeem, EntryKind.expire, EntryKind.reverse_earn, EntryKind.debt_settle, EntryKind.merge_out}


class Ledger(RuleBasedStateMachine):
    sources = Bundle("sources")
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.run(open_database(pool_size=4))
        self.run(self._clean())
        self.members = [self.run(insert_row(Member, enrolled_via="cashier")) for _ in range(3)]
        self.merged = False
        self.now = START
        self.counter = 0
        self.refunded: dict[str, int] = {}

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(close_database())
        self.loop.close()

    @staticmethod
    async def _clean() -> None:
        async with write_transaction():
            for table in (PointsLotUse, PointsLot, PointsEntry, PointsAccount, MemberMerge, Member):
                await table.delete(force=True)

    def member(self, index: int) -> int:
        """After the merge the third member's person is the first member."""
        return self.members[0] if index == 2 and self.merged else self.members[index]

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    @initialize()
    def start(self) -> None:
        pass

    # Operations ----------------------------------------------------------

    @rule(target=sources, member=st.integers(0, 2), points=st.integers(1, 500), as_reward=st.booleans())
    def earn(self, member, points, as_reward):
        order = self.fresh("order")
        operation = service.reward if as_reward else service.earn
        posted = self.run(
            operation(
                self.member(member),
                points,
                store_id=None,
                source_type="order",
                source_id=order,
                idempotency_key=f"{order}:credit",
                now=self.now,
            )
        )
        assert posted.delta == points
        return (order, points)

    @rule(target=sources, member=st.integers(0, 2), points=st.integers(1, 300))
    def redeem(self, member, points):
        order = self.fresh("order")
        balance, _ = self.run(service.balance_of(self.member(member)))
        try:
            posted = self.run(
                service.redeem(
                    self.member(member),
                    points,
                    store_id=None,
                    source_type="order",
                    source_id=order,
                    idempotency_key=f"{order}:redeem",
                    now=self.now,
                )
            )
        except InsufficientPoints:
            assert balance < points
            return (order, 0)
        assert balance >= points and posted.balance == balance - points
        return (order, points)

    @rule(source=sources, share=st.integers(1, 4))
    def refund(self, source, share):
        order, amount = source
        if amount == 0:
            return
        refunded = min(amount, self.refunded.get(order, 0) + max(1, amount * share // 4))
        self.refunded[order] = refunded
        self.run(
            service.reverse(
                "order", order, refunded=refunded, of=amount, idempotency_key=self.fresh("refund"), now=self.now
            )
        )

    @rule()
    def merge(self):
        """The third member is folded into the first once; their points, lots and debt move."""
        if self.merged:
            return
        self.merged = True
        survivor, merged = self.members[0], self.members[2]
        before = [self.run(service.balance_of(m)) for m in (survivor, merged)]

        assert self.run(members.merge_members(survivor, merged, reason=MergeReason.hq, now=self.now)) == survivor
        audit = self.run(MemberMerge.select().where(MemberMerge.merged == merged).first())
        assert (audit["points_moved"], audit["debt_moved"]) == before[1]
        assert self.run(service.balance_of(merged)) == (0, 0)
        balance, debt = self.run(service.balance_of(survivor))
        assert balance - debt == (before[0][0] + before[1][0]) - (before[0][1] + before[1][1])

    @rule(days=st.integers(1, 400))
    def time_passes(self, days):
        self.now += timedelta(days=days)
        self.run(service.expire_due(now=self.now))
        due = self.run(PointsLot.count().where(PointsLot.expired_at.is_null() & (PointsLot.expires_at <= self.now)))
        assert due == 0

    @rule(target=keys, member=st.integers(0, 2), delta=st.integers(-200, 200).filter(bool))
    def adjust(self, member, delta):
        key, member_id = self.fresh("adjust"), self.member(member)
        balance, _ = self.run(service.balance_of(member_id))
        try:
            posted = self.run(service.adjust(member_id, delta, reason="correction", idempotency_key=key, now=self.now))
        except InsufficientPoints:
            assert balance + delta < 0
            return (key, member_id, delta, None)
        assert posted.delta == delta
        return (key, member_id, delta, posted)

    @rule(previous=keys, change=st.booleans())
    def replay(self, previous, change):
        key, member_id, delta, first = previous  # a retry repeats the request as it was sent
        if first is None:
            return
        other = delta + 1 if delta != -1 else delta - 1  # a different request, still a valid one
        attempt = service.adjust(
            member_id, other if change else delta, reason="correction", idempotency_key=key, now=self.now
        )
        if change:
            with pytest.raises(IdempotencyConflict):
                self.run(attempt)
        else:
            assert self.run(attempt) == first

    # Invariants ----------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        for member in self.members:
            account = self.run(PointsAccount.select().where(PointsAccount.member == member).first())
            entries = self.run(PointsEntry.select().where(PointsEntry.member == member).order_by(PointsEntry.id))
            lots = self.run(PointsLot.select().where((PointsLot.member == member) & PointsLot.expired_at.is_null()))
            balance = account["balance"] if account else 0
            debt = account["debt"] if account else 0
            assert balance >= 0 and debt >= 0
            assert balance == sum(e["delta"] for e in entries) == sum(lot["remaining"] for lot in lots)
            assert debt == sum(e["debt_delta"] for e in entries)
            credited = sum(
                e["delta"]
                for e in entries
                if e["kind"] in CREDIT_KINDS or (e["kind"] == EntryKind.adjust and e["delta"] > 0)
            )
            debited = -sum(
                e["delta"]
                for e in entries
                if e["kind"] in DEBIT_KINDS or (e["kind"] == EntryKind.adjust and e["delta"] < 0)
            )
            assert credited - debited == balance  # earned - redeemed - expired - reversed = outstanding
            if entries:
                assert entries[-1]["balance_after"] == balance

    @invariant()
    def one_entry_per_key_and_no_over_reversal(self) -> None:
        entries = self.run(
            PointsEntry.select(
                PointsEntry.id,
                PointsEntry.kind,
                PointsEntry.delta,
                PointsEntry.debt_delta,
                PointsEntry.reverses,
                PointsEntry.idempotency_key,
            )
        )
        assert len({e["idempotency_key"] for e in entries}) == len(entries)
        by_id = {e["id"]: e for e in entries}
        reversed_of: dict[int, int] = {}
        for e in entries:
            if e["reverses"] is not None:
                reversed_of[e["reverses"]] = reversed_of.get(e["reverses"], 0) + abs(e["delta"]) + e["debt_delta"]
        for original, amount in reversed_of.items():
            assert amount <= abs(by_id[original]["delta"])


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_ledger_invariants_hold_under_random_operations():
    run = Ledger.TestCase
    run.settings = settings(
        max_examples=25,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    run().runTest()
