"""What every request handler may need, built once by `create_app` and injected as one dependency.

One dependency rather than one per collaborator: Litestar resolves several dependencies of a
handler in an anyio task group, a few task spawns per request, which the busiest paths feel.
"""

from dataclasses import dataclass

from backend.cashier.service import CheckoutPolicy
from backend.core.auth import TokenIssuer
from backend.core.kv import KV
from backend.members.code import MemberCodes
from backend.members.wechat import LoginCodeExchanger, PhoneNumberExchanger
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import PaymentProvider
from backend.posters.service import PosterCache
from backend.sandbox.notify import SandboxNotifier
from backend.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    kv: KV
    tokens: TokenIssuer
    wechat_login: LoginCodeExchanger
    phone_numbers: PhoneNumberExchanger
    member_codes: MemberCodes
    payment_provider: PaymentProvider
    payment_policy: PaymentPolicy
    checkout_policy: CheckoutPolicy
    sandbox_notifier: SandboxNotifier | None
    posters: PosterCache
