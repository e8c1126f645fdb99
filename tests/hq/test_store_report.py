"""The store report: per store and business day, worked out from the rows for the days not written yet, read from
the rows the sweeper wrote once a day has ended; both ways answer the same figures."""

import asyncio
import csv
import io
from datetime import datetime, timedelta

import pytest

from backend.core.clock import business_day, day_bounds, utcnow
from backend.hq import report
from backend.hq.tables import ReportDay, StoreDay
from backend.members.tables import Member
from backend.orders.tables import Order
from backend.payments.tables import PaymentRefund
from backend.points.tables import PointsEntry
from tests.cashier.test_refunds import refund
from tests.conftest import staff_login
from tests.hq.test_hq_reads import checkout, till  # noqa: F401  (the fixture)


def into_today() -> datetime:
    """Two hours into today's business day: yesterday ended more than an hour before, today has not ended, at any
    hour the test runs (now + 2 h would cross into tomorrow after 22:00 of the business day's time zone)."""
    return day_bounds(business_day(utcnow()))[0] + timedelta(hours=2)


async def move_to(day, order_ids: list[int], member_ids: list[int]) -> None:
    """Rows as if they had happened at noon of `day`."""
    noon = day_bounds(day)[0] + timedelta(hours=12)
    await Order.update({Order.paid_at: noon, Order.created_at: noon}).where(Order.id.is_in(order_ids))
    await PaymentRefund.update({PaymentRefund.created_at: noon}).where(PaymentRefund.order.is_in(order_ids))
    await PointsEntry.update({PointsEntry.created_at: noon}).where(PointsEntry.member.is_in(member_ids))
    await Member.update({Member.created_at: noon}).where(Member.id.is_in(member_ids))


async def get_report(client, headers, **params) -> dict:
    response = await client.get("/api/v1/admin/reports/stores", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_day_reads_the_same_worked_out_from_the_rows_and_once_written(till, demo):  # noqa: F811
    a = await checkout(till, demo, "cashier1", "S001", "oReport00000000000000001", "report-1", amount=5000)
    b = await checkout(till, demo, "cashier1", "S001", "oReport00000000000000002", "report-2", amount=3000)
    c = await checkout(till, demo, "cashier2", "S002", "oReport00000000000000003", "report-3", amount=2000)
    refunded = await refund(till, await staff_login(till, "cashier1"), a["id"], 1000, "report-refund-1")
    assert refunded.status_code in (200, 201), refunded.text
    yesterday = business_day(utcnow()) - timedelta(days=1)
    await move_to(yesterday, [a["id"], b["id"]], [a["memberId"], b["memberId"]])
    today = await checkout(till, demo, "cashier1", "S001", "oReport00000000000000004", "report-4", amount=700)
    hq = await staff_login(till, "hq")
    params = {"from": yesterday.isoformat(), "to": business_day(utcnow()).isoformat()}

    worked_out = await get_report(till, hq, **params)
    assert worked_out["writtenDays"] == 0
    rows = {(row["day"], row["storeCode"]): row["figures"] for row in worked_out["rows"]}
    s001_yesterday = rows[(yesterday.isoformat(), "S001")]
    assert (s001_yesterday["orders"], s001_yesterday["salesFen"]) == (2, 8000)
    assert (s001_yesterday["tillOrders"], s001_yesterday["tillSalesFen"], s001_yesterday["mallOrders"]) == (2, 8000, 0)
    assert (s001_yesterday["refunds"], s001_yesterday["refundsFen"]) == (1, 1000)
    new_members = [s001_yesterday[f"newMembers{channel}"] for channel in ("Cashier", "Miniprogram", "Referral")]
    assert new_members == [2, 0, 0]
    assert s001_yesterday["pointsEarned"] == 160  # 2 a yuan; the refund took some back, which is not earning
    assert rows[(params["to"], "S001")]["salesFen"] == 700 and rows[(params["to"], "S002")]["salesFen"] == 2000
    assert worked_out["totals"]["salesFen"] == 8000 + 700 + 2000 and worked_out["totals"]["orders"] == 4
    assert [d["figures"]["salesFen"] for d in worked_out["byDay"]] == [8000, 2700]
    assert [s["storeCode"] for s in worked_out["byStore"]] == ["S001", "S002"]  # most sales first
    assert today["id"] and c["id"]

    # The sweeper writes the days that have ended (yesterday, once an hour has passed since), once.
    assert await report.roll_up(now=into_today()) >= 1
    assert await report.roll_up(now=into_today()) == 0
    assert await ReportDay.exists().where(ReportDay.day == yesterday)
    written = await get_report(till, hq, **params)
    assert written["writtenDays"] == 1
    assert written["rows"] == worked_out["rows"] and written["totals"] == worked_out["totals"]


async def test_two_workers_write_a_day_once(till, demo):  # noqa: F811
    a = await checkout(till, demo, "cashier1", "S001", "oReportRace0000000000001", "report-race-1")
    day = business_day(utcnow()) - timedelta(days=3)
    await move_to(day, [a["id"]], [a["memberId"]])
    later = into_today()
    written = await asyncio.gather(*(report.roll_up(now=later) for _ in range(4)))
    assert sum(written) == 3  # three days ended since: each written by one of the workers
    assert await ReportDay.count() == 3
    assert await StoreDay.count().where(StoreDay.day == day) == 1


async def test_a_store_manager_reads_their_stores_and_the_csv(till, demo):  # noqa: F811
    await checkout(till, demo, "cashier1", "S001", "oReportCsv00000000000001", "report-csv-1", amount=1500)
    await checkout(till, demo, "cashier2", "S002", "oReportCsv00000000000002", "report-csv-2", amount=2500)
    manager = await staff_login(till, "manager1")
    mine = await get_report(till, manager)
    assert [row["storeCode"] for row in mine["rows"]] == ["S001"] and mine["totals"]["salesFen"] == 1500
    response = await till.get(
        "/api/v1/admin/reports/stores", headers=await staff_login(till, "hq"), params={"format": "csv"}
    )
    assert response.status_code == 200 and response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header = rows[0]
    assert [(row[1], int(row[header.index("till_sales_fen")])) for row in rows[1:]] == [("S001", 1500), ("S002", 2500)]
    other = await till.get("/api/v1/admin/reports/stores", headers=manager, params={"storeId": demo["S002"]})
    assert other.status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-12-10", "to": "2026-12-01"},
        {"from": "2024-01-01", "to": "2026-01-01"},
        {"from": "2026-02-30"},
        {"from": "9999-12-30", "to": "9999-12-31"},
        {"from": "0001-01-01", "to": "0001-01-02"},
    ],
)
async def test_a_window_that_is_no_window_is_422(client, demo, params):
    response = await client.get("/api/v1/admin/reports/stores", headers=await staff_login(client, "hq"), params=params)
    assert response.status_code == 422 and response.json()["code"] == "request.invalid", response.text
