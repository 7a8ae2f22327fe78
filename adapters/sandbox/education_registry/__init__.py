"""A sandbox of the education registry: qualification certificates by number, for verification.

Deterministic synthetic certificates from a seed plus the hub demo people's; a verification
endpoint that honours ``Idempotency-Key``; latency, quota, API key and faults as every sandbox
registrar. Run it with ``python -m adapters.sandbox.education_registry --port 9403``.
"""

from __future__ import annotations

from adapters.sandbox.education_registry.app import create_app
from adapters.sandbox.education_registry.data import DEMO_CERTIFICATES, CertificateRegister

__all__ = ["DEMO_CERTIFICATES", "CertificateRegister", "create_app"]
