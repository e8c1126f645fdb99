from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from backend.cashier.codes import PaymentCodeKind, classify_payment_code
from backend.payments.numbers import OUT_TRADE_NO, base62, new_out_trade_no


@given(now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)))
def test_out_trade_numbers_fit_wechat_pay_and_start_with_their_second(now):
    number = new_out_trade_no(now)
    assert OUT_TRADE_NO.match(number) and len(number) == 28
    assert number.startswith(now.strftime("%Y%m%d%H%M%S"))


@given(data=st.data(), width=st.integers(min_value=1, max_value=20))
def test_base62_writes_every_number_in_its_width_and_reads_back(data, width):
    number = data.draw(st.integers(min_value=0, max_value=62**width - 1))
    written = base62(number, width)
    assert len(written) == width
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert sum(alphabet.index(c) * 62**i for i, c in enumerate(reversed(written))) == number


def test_out_trade_numbers_are_never_reused():
    now = datetime(2026, 11, 22, tzinfo=UTC)
    numbers = {new_out_trade_no(now) for _ in range(100_000)}
    assert len(numbers) == 100_000


@given(prefix=st.integers(10, 15), rest=st.text("0123456789", min_size=16, max_size=16))
def test_wechat_payment_codes(prefix, rest):
    assert classify_payment_code(f"{prefix}{rest}") == PaymentCodeKind.wechat


@given(prefix=st.integers(25, 30), rest=st.text("0123456789", min_size=14, max_size=22))
def test_alipay_payment_codes(prefix, rest):
    assert classify_payment_code(f"{prefix}{rest}") == PaymentCodeKind.alipay


@given(code=st.text(min_size=0, max_size=30))
def test_anything_else_is_no_payment_code(code):
    kind = classify_payment_code(code)
    if kind == PaymentCodeKind.wechat:
        assert len(code) == 18 and code.isdigit() and 10 <= int(code[:2]) <= 15
    elif kind == PaymentCodeKind.alipay:
        assert 16 <= len(code) <= 24 and code.isdigit() and 25 <= int(code[:2]) <= 30


def test_near_misses():
    for code in (
        "16" + "0" * 16,
        "09" + "0" * 16,
        "10" + "0" * 15,
        "10" + "0" * 17,
        "89" + "0" * 16,
        "１０" + "0" * 16,
        "10" + "0" * 15 + "a",
        "",
    ):
        assert classify_payment_code(code) is None, code
