"""The education registry adapter: qualification certificates, and recorded verifications.

Plugin ``education_registry``; contract ``contracts/adapters/education-registry``:

- ``get_certificate`` (``GET /v1/certificates/{number}``): a :class:`Certificate` or ``None``.
  A registrar read: purpose-bound and audited (the holder sees it when their ID is returned);
- ``record_verification`` (``POST /v1/verifications``): the registry records that the
  certificate was checked and answers a :class:`VerificationReceipt`. Not idempotent: it is
  retried only when the caller gives an ``idempotency_key`` (sent as ``Idempotency-Key``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from adapters._plugin import matched, only
from adapters.base import CallContext, Operation
from adapters.registrars._http import RegistrarAdapter, fetch_record, send_json

__all__ = [
    "Certificate",
    "CertificateQuery",
    "EducationRegistry",
    "VerificationReceipt",
    "VerificationRequest",
]

_NUMBER: Final = re.compile(r"QC-[0-9]{4}-[0-9]{6}")
_KEY: Final = re.compile(r"[A-Za-z0-9_.:-]{8,128}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateQuery:
    """A certificate number such as ``QC-2015-000123``."""

    number: str

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> CertificateQuery:
        only(params, "number")
        return cls(number=matched(params.get("number"), _NUMBER, "the certificate number"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """A qualification certificate as the education registry records it."""

    number: str
    holder_national_id: str
    holder_name: str
    degree: str
    field: str
    institution: str
    year: int
    status: str  # valid or revoked


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationRequest:
    """Record a verification of a certificate; the key makes a repeat harmless."""

    number: str
    idempotency_key: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> VerificationRequest:
        only(params, "number", "idempotency_key")
        key = params.get("idempotency_key")
        return cls(
            number=matched(params.get("number"), _NUMBER, "the certificate number"),
            idempotency_key=matched(key, _KEY, "the idempotency key") if key else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationReceipt:
    """The registry's receipt of a recorded verification."""

    verification_id: str
    certificate_number: str
    valid: bool
    checked_at: str


class EducationRegistry(RegistrarAdapter):
    """The ``education_registry`` plugin."""

    system: ClassVar[str] = "education registry"

    async def get_certificate(
        self, query: CertificateQuery, context: CallContext
    ) -> Certificate | None:
        data = await fetch_record(
            self._http,
            f"/v1/certificates/{query.number}",
            GET_CERTIFICATE,
            context,
            system=self.system,
        )
        return Certificate(**data) if data is not None else None

    async def record_verification(
        self, request: VerificationRequest, context: CallContext
    ) -> VerificationReceipt:
        data = await send_json(
            self._http,
            "/v1/verifications",
            {"certificate_number": request.number},
            RECORD_VERIFICATION,
            context,
            system=self.system,
            idempotency_key=request.idempotency_key,
        )
        return VerificationReceipt(**data)


GET_CERTIFICATE: Final[Operation[CertificateQuery, Certificate]] = Operation(
    name="get_certificate",
    parse=CertificateQuery.parse,
    call=EducationRegistry.get_certificate,
    record="certificate",
    key="number",
    subject_field="holder_national_id",
    fields=tuple(Certificate.__dataclass_fields__),
    summary="A qualification certificate by number.",
)
RECORD_VERIFICATION: Final[Operation[VerificationRequest, VerificationReceipt]] = Operation(
    name="record_verification",
    parse=VerificationRequest.parse,
    call=EducationRegistry.record_verification,
    idempotent=False,
    fields=tuple(VerificationReceipt.__dataclass_fields__),
    summary="Record a verification of a certificate (retried only with an idempotency key).",
)
EducationRegistry.operations = {
    GET_CERTIFICATE.name: GET_CERTIFICATE,
    RECORD_VERIFICATION.name: RECORD_VERIFICATION,
}
