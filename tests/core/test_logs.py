"""The log writer thread (every record written, in order, formatted as configured, off the caller's thread)
and the line format (each line ends with its event's context)."""

import io
import json
import logging
import sys
import threading
from pathlib import Path

import httpx
import pytest

from backend.core.logs import ContextFormatter, GatheringQueueHandler, JsonFormatter
from backend.settings import Settings, SettingsError
from tests.cashier.test_till_checkout import ORDERS, payment_code
from tests.conftest import served_process, staff_login

ROOT = Path(__file__).resolve().parent.parent.parent


class CallerThreadFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s")
        self.threads: set[str] = set()

    def format(self, record: logging.LogRecord) -> str:
        self.threads.add(threading.current_thread().name)
        return super().format(record)


def test_every_record_is_written_in_order_by_the_writer_thread():
    stream = io.StringIO()
    handler = GatheringQueueHandler(stream)
    formatter = CallerThreadFormatter()
    handler.setFormatter(formatter)
    logger = logging.getLogger("tests.logs.order")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for i in range(500):
            logger.info("order %d paid", i)
        logger.warning("last")
    finally:
        logger.removeHandler(handler)
        handler.close()  # writes what is queued
    lines = stream.getvalue().splitlines()
    assert lines == [f"INFO tests.logs.order order {i} paid" for i in range(500)] + ["WARNING tests.logs.order last"]
    assert formatter.threads == {"log-writer"}  # the caller only queued the records


def test_a_record_that_cannot_be_formatted_does_not_stop_the_others(capsys):
    stream = io.StringIO()
    handler = GatheringQueueHandler(stream)
    logger = logging.getLogger("tests.logs.broken")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("needs %d", "not a number")
        logger.info("after")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert stream.getvalue().splitlines() == ["after"]
    assert "Logging error" in capsys.readouterr().err  # reported, as logging reports it


def _record(message: str, **context) -> logging.LogRecord:
    record = logging.LogRecord("backend.cashier.service", logging.INFO, __file__, 1, message, (), None)
    for key, value in context.items():
        setattr(record, key, value)
    return record


def test_a_line_ends_with_the_records_context():
    formatter = ContextFormatter("%(levelname)s %(name)s %(message)s")
    assert formatter.format(_record("order paid", order_id=42, member_id=7, member_enrolled=True)) == (
        "INFO backend.cashier.service order paid order_id=42 member_id=7 member_enrolled=True"
    )
    assert formatter.format(_record("order paid")) == "INFO backend.cashier.service order paid"
    # Each value stays one token, however it is written.
    assert formatter.format(_record("failed", error="ValueError('a b')", reason="", name_="x=y")) == (
        'INFO backend.cashier.service failed error="ValueError(\'a b\')" reason="" name_="x=y"'
    )


def test_an_exceptions_traceback_follows_the_context():
    formatter = ContextFormatter("%(message)s")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sweep failed", (), sys.exc_info())
    record.order_id = 5
    first, *rest = formatter.format(record).splitlines()
    assert first == "sweep failed order_id=5"
    assert rest[0].startswith("Traceback") and rest[-1] == "RuntimeError: boom"


async def test_the_app_writes_lines_with_their_context(client):
    handlers = [handler for handler in logging.getLogger().handlers if isinstance(handler, GatheringQueueHandler)]
    assert handlers
    line = handlers[-1].format(_record("order paid", order_id=42))
    assert line.startswith("INFO - ") and line.endswith(
        " - backend.cashier.service - test_logs - order paid order_id=42"
    )


def test_a_context_value_never_breaks_the_line():
    formatter = ContextFormatter("%(message)s")
    assert formatter.format(_record("x", error="first\nsecond")) == 'x error="first\\nsecond"'


def test_every_line_of_a_served_request_carries_its_request_id_in_json_uvicorns_included(unused_tcp_port):
    def calls(base: str) -> None:
        answer = httpx.post(
            f"{base}/api/v1/sandbox/wechat/login-codes", json={}, headers={"X-Request-ID": "req-json-0001"}
        )
        assert answer.status_code == 201, answer.text
        assert httpx.get(f"{base}/api/v1/nothing-here").status_code == 404

    with served_process(unused_tcp_port, LOG_FORMAT="json", ACCESS_LOG="true") as served:
        calls(served.base)
    records = [json.loads(line) for line in served.lines]  # every line is one JSON object, uvicorn's too
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"].startswith("uvicorn") and "Uvicorn running" in r["message"] for r in records)
    assert not [r for r in records if r["logger"] == "uvicorn.access"]  # the access log is the app's own
    access = [r for r in records if r["logger"] == "backend.access" and r["route"] != "/healthz"]  # the wait's
    # A route's requests (a path no route has is answered by the router, before the app's middleware).
    assert [(r["request_id"], r["method"], r["route"], r["status"]) for r in access] == [
        ("req-json-0001", "POST", "/api/v1/sandbox/wechat/login-codes", 201),
    ]
    assert all(isinstance(r["duration_ms"], float) and r["duration_ms"] >= 0 for r in access)


async def test_a_line_logged_while_a_request_is_served_carries_its_request_id(client, demo):
    stream = io.StringIO()
    handler = GatheringQueueHandler(stream)
    handler.setFormatter(ContextFormatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        cashier1 = await staff_login(client, "cashier1")
        code = await payment_code(client, "oLogsRequestId00000000001")
        response = await client.post(
            ORDERS,
            headers={**cashier1, "X-Request-ID": "req-till-00000001"},
            json={"storeId": demo["S001"], "amountFen": 1000, "authCode": code, "idempotencyKey": "logs-0001"},
        )
        assert response.status_code == 201, response.text
        logging.getLogger("tests.logs").info("outside any request")
    finally:
        root.removeHandler(handler)
        handler.close()
    lines = stream.getvalue().splitlines()
    paid = [line for line in lines if line.startswith("backend.payments.service order paid")]
    assert len(paid) == 1 and "request_id=req-till-00000001" in paid[0], lines
    assert "tests.logs outside any request" in lines  # no request, no request id


def test_the_json_format_keeps_the_context_and_the_traceback():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("tests.json").makeRecord(
            "tests.json", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info(), extra={"order_id": 42}
        )
    line = json.loads(formatter.format(record))
    assert (line["level"], line["logger"], line["message"], line["order_id"]) == (
        "ERROR",
        "tests.json",
        "failed here",
        42,
    )
    assert "ValueError: boom" in line["exception"] and line["time"].endswith("+00:00")


def test_log_format_is_text_or_json(tmp_path):
    assert Settings.from_env({"VAR_DIR": str(tmp_path)}).log_format == "text"
    assert Settings.from_env({"VAR_DIR": str(tmp_path), "LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        Settings.from_env({"VAR_DIR": str(tmp_path), "LOG_FORMAT": "xml"})
