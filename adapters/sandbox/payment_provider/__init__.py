"""A sandbox payment provider: payment intents, capture, refunds, idempotency keys, signed
webhooks delivered with retries (sometimes twice, sometimes out of order), a settlement ledger,
and injectable faults. Run it with ``python -m adapters.sandbox.payment_provider --port 9501``.
"""

from __future__ import annotations

from adapters.sandbox._control.signing import sign, signature_headers
from adapters.sandbox.payment_provider.app import ProviderConfig, create_app

__all__ = ["ProviderConfig", "create_app", "sign", "signature_headers"]
