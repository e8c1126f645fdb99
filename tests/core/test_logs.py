"""The log writer thread (every record written, in order, formatted as configured, off the caller's thread)
and the line format (each line ends with its event's context)."""

import io
import logging
import sys
import threading

from backend.core.logs import ContextFormatter, GatheringQueueHandler


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
