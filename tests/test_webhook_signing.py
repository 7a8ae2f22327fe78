"""Standard Webhooks signing: the hub's signer against the receiver sandbox's reference verifier."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.sandbox.vendor_receiver.verify import WebhookVerificationError, verify_webhook
from hub.webhooks.sealing import SecretSealer
from hub.webhooks.signing import InvalidSignature, new_secret, sign, signature_headers, verify

# The example of the Standard Webhooks specification's test vectors.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signer_reproduces_the_specification_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE


@given(body=st.binary(max_size=200).map(base64.b64encode), msg=st.text("abc_", min_size=1))
def test_what_the_hub_signs_the_reference_verifier_accepts(body: bytes, msg: str) -> None:
    secret = new_secret()
    headers = signature_headers(secret, msg, body)
    verify_webhook(secret, headers, body)
    assert verify(secret, headers, body) == msg


def test_tampering_a_wrong_secret_and_stale_timestamps_are_refused() -> None:
    secret = new_secret()
    headers = signature_headers(secret, "evt_1", b'{"a":1}')
    for bad_secret, body in [(secret, b'{"a":2}'), (new_secret(), b'{"a":1}')]:
        with pytest.raises(WebhookVerificationError):
            verify_webhook(bad_secret, headers, body)
        with pytest.raises(InvalidSignature):
            verify(bad_secret, headers, body)
    stale = signature_headers(secret, "evt_1", b"{}", timestamp=int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(secret, stale, b"{}")
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(secret, stale, b"{}")
    with pytest.raises(InvalidSignature, match="missing"):
        verify(secret, {}, b"{}")


def test_a_rotation_may_list_several_signatures() -> None:
    old, new = new_secret(), new_secret()
    headers = signature_headers(new, "evt_2", b"{}")
    previous = sign(old, "evt_2", int(headers["webhook-timestamp"]), b"{}")
    headers["webhook-signature"] = f"{previous} {headers['webhook-signature']}"
    verify_webhook(new, headers, b"{}")
    verify_webhook(old, headers, b"{}")


def test_sealed_secrets_open_only_with_their_key_and_their_row() -> None:
    key = bytes(range(32))
    sealer = SecretSealer(key)
    sealed = sealer.seal("whsec_abc", context="whs_1")
    assert "whsec_abc" not in sealed
    assert sealer.open(sealed, context="whs_1") == "whsec_abc"
    with pytest.raises(Exception, match="does not open"):
        sealer.open(sealed, context="whs_2")
    with pytest.raises(Exception, match="does not open"):
        SecretSealer(bytes(32)).open(sealed, context="whs_1")
