"""The log writer thread: every record written, in order, formatted as configured, off the caller's thread."""

import io
import logging
import threading

from backend.core.logs import GatheringQueueHandler


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
