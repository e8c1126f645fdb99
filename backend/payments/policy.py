from dataclasses import dataclass

from backend.settings import Settings


@dataclass(frozen=True, slots=True)
class PaymentPolicy:
    """How often and for how long a payment's outcome is pursued, for every kind of order."""

    query_interval: float = 5.0  # a payment code whose outcome is unknown is asked about this often
    payment_timeout: float = 30.0  # ...and reversed after this long
    jsapi_pay_within: float = 900.0  # a mini-program order is paid within this long (unless its channel says less)
    jsapi_query_interval: float = 60.0  # ...first asked about after this long, then less often
    refund_query_interval: float = 60.0  # a refund still processing is asked about this often
    app_id: str = ""  # the mini-program whose openids pay

    @classmethod
    def from_settings(cls, settings: Settings) -> "PaymentPolicy":
        return cls(
            query_interval=settings.micropay_query_interval_seconds,
            payment_timeout=settings.micropay_timeout_seconds,
            jsapi_pay_within=settings.store_payment_close_after_seconds,
            jsapi_query_interval=settings.store_payment_query_interval_seconds,
            refund_query_interval=settings.refund_query_interval_seconds,
            app_id=settings.wechat_app_id,
        )
