"""GET /metrics: Prometheus's text format with the series an operator watches, for the scraper only; with
several workers, every worker's counts added up."""

import os
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.core.clock import utcnow
from backend.payments.tables import PaymentTrade
from tests.cashier.test_till_checkout import ORDERS, payment_code
from tests.conftest import served_process, staff_login

ROOT = Path(__file__).resolve().parent.parent.parent


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the scrape by (name, labels); parsing it is the format's check."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client, **headers: str) -> dict:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(response.text)


async def test_a_checkout_shows_in_the_requests_latency_orders_and_pending_payments(client, demo):
    cashier1 = await staff_login(client, "cashier1")
    before = await scrape(client)
    code = await payment_code(client, "oMetrics00000000000000001")
    body = {"storeId": demo["S001"], "amountFen": 1000, "authCode": code, "idempotencyKey": "metrics-0001"}
    assert (await client.post(ORDERS, headers=cashier1, json=body)).status_code == 201
    pending = await payment_code(client, "oMetrics00000000000000002", scenario="password_timeout")
    waiting = {**body, "authCode": pending, "idempotencyKey": "metrics-0002"}
    await client.post(ORDERS, headers=cashier1, json=waiting)  # the payer never types the password: unknown
    after = await scrape(client)

    route = {"method": "POST", "route": "/api/v1/cashier/orders"}
    assert (
        value(after, "mall_http_requests_total", **route, status="201")
        - value(before, "mall_http_requests_total", **route, status="201")
        == 2
    )
    count = "mall_http_request_duration_seconds_count"
    assert value(after, count, **route) - value(before, count, **route) == 2
    for event, added in (("placed", 2), ("paid", 1)):
        assert (
            value(after, "mall_orders_total", kind="till", event=event)
            - value(before, "mall_orders_total", kind="till", event=event)
            == added
        )
    assert value(after, "mall_payments_unknown", what="trade") == 1
    assert value(after, "mall_payments_unknown", what="refund") == 0
    assert value(after, "mall_sweeper_lag_seconds") == 0  # its next query is not due yet

    # The sweeper falls behind: the unknown trade's query was due ten minutes ago.
    await PaymentTrade.update({PaymentTrade.next_query_at: utcnow() - timedelta(minutes=10)}).where(
        PaymentTrade.status.is_in(["created", "paying"])
    )
    late = await scrape(client)
    assert 600 <= value(late, "mall_sweeper_lag_seconds") < 660


@pytest.mark.parametrize(
    ("allowed", "token", "sent", "status"),
    [
        ((), "", "", 403),  # nobody by address, no token
        ((), "metrics-token-0123456789", "Bearer metrics-token-0123456789", 200),
        ((), "metrics-token-0123456789", "Bearer metrics-token-wrong-000000", 403),
        (("10.0.0.0/8",), "", "", 403),  # the test client is 127.0.0.1
        (("127.0.0.0/8",), "", "", 200),
    ],
    ids=["closed", "token", "wrong-token", "other-network", "allowed-network"],
)
async def test_only_the_scraper_reads_the_metrics(make_client, allowed, token, sent, status):
    async with make_client(metrics_allow_from=allowed, metrics_token=token) as client:
        response = await client.get("/metrics", headers={"Authorization": sent} if sent else {})
        assert response.status_code == status, response.text
        if status == 403:
            assert response.json()["code"] == "auth.forbidden" and "mall_" not in response.text


def test_several_workers_answer_the_counts_of_all_of_them(unused_tcp_port, tmp_path):
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        pytest.skip("several workers need PostgreSQL and Redis")
    with served_process(unused_tcp_port, WORKERS="2", VAR_DIR=str(tmp_path)) as served:
        start = samples(httpx.get(f"{served.base}/metrics").text)
        with httpx.Client(base_url=served.base, headers={"Connection": "close"}) as fresh:  # spread over both workers
            for _ in range(40):
                assert fresh.get("/readyz").status_code == 200
        answers = [samples(httpx.get(f"{served.base}/metrics", headers={"Connection": "close"}).text) for _ in range(6)]
    ready = {"method": "GET", "route": "/readyz", "status": "200"}
    totals = {
        value(scraped, "mall_http_requests_total", **ready) - value(start, "mall_http_requests_total", **ready)
        for scraped in answers
    }
    assert totals == {40.0}  # whichever worker answered the scrape
