"""The sandbox's WeChat Pay credentials: its own platform key pair and APIv3 key, and a merchant key for paySign.

Generated once per deployment and kept under VAR_DIR, so every worker signs and
verifies with the same keys; the APIv3 key is derived from SECRET_KEY.
"""

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from backend.payments.wechatpay_protocol import load_private_key

SANDBOX_MCHID = "1900000109"


@dataclass(frozen=True, slots=True)
class SandboxKeys:
    mchid: str
    platform_key: RSAPrivateKey  # WeChat's side: signs answers and notifications
    platform_serial: str  # PUB_KEY_ID_...: the sandbox has a public key, no certificate
    merchant_key: RSAPrivateKey  # the merchant's side: signs wx.requestPayment parameters
    api_v3_key: bytes

    @property
    def platform_keys(self) -> dict[str, RSAPublicKey]:
        return {self.platform_serial: self.platform_key.public_key()}


def _key_file(path: Path) -> RSAPrivateKey:
    """Read the key, or create it: written aside and linked into place, so a reader never sees half a file."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        staging = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(staging, path)
        except FileExistsError:
            pass  # another worker was first: use its key
        finally:
            staging.unlink()
    return _parsed(path.read_bytes())


@lru_cache(maxsize=16)
def _parsed(pem: bytes) -> RSAPrivateKey:
    """A key file's key, parsed once per process (parsing checks the RSA key, tens of ms; every app built loads
    both keys)."""
    return load_private_key(pem)


def _serial(key: RSAPrivateKey) -> str:
    """A public-key id as WeChat Pay's look (`PUB_KEY_ID_` and 28 digits), from the key: the same across restarts."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digits = int.from_bytes(hashlib.sha256(der).digest()[:16]) % 10**28
    return f"PUB_KEY_ID_{digits:028d}"


def load_sandbox_keys(var_dir: Path, secret_key: str) -> SandboxKeys:
    platform_key = _key_file(var_dir / "sandbox" / "wechatpay_platform_key.pem")
    derived = hmac.new(secret_key.encode(), b"sandbox wechatpay apiv3 key", hashlib.sha256).hexdigest()[:32]
    return SandboxKeys(
        mchid=SANDBOX_MCHID,
        platform_key=platform_key,
        platform_serial=_serial(platform_key),
        merchant_key=_key_file(var_dir / "sandbox" / "merchant_key.pem"),
        api_v3_key=derived.encode(),
    )
