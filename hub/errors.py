"""Every error the hub reports, as one tree.

Each class carries a stable machine-readable ``code`` and an HTTP ``status``; one place
(:mod:`hub.problems`) renders them as RFC 9457 problem details. Subclasses override class
attributes only. Foreign exceptions (aiohttp, httpx, redis, aio-pika, SQLAlchemy, jwt) are
translated at the module boundary with ``raise ... from exc`` and never escape it.

    HubError
    ├── ConfigError                     (invalid_configuration, 422)
    ├── RequestRejected                 (bad_request, 400)
    │   ├── InvalidPath                 (invalid_path, 400)
    │   ├── PayloadTooLarge             (payload_too_large, 413)
    │   ├── HeadersTooLarge             (headers_too_large, 431)
    │   ├── UriTooLong                  (uri_too_long, 414)
    │   ├── InvalidHeader               (invalid_header, 400)
    │   ├── InvalidRequest              (invalid_request, 400)
    │   │   └── WeakPassword            (weak_password, 400)
    │   ├── InvalidScope                (invalid_scope, 400)
    │   ├── InvalidGrant                (invalid_grant, 400)
    │   │   └── ReuseDetected           (refresh_token_reused, 400)
    │   ├── UnsupportedGrantType        (unsupported_grant_type, 400)
    │   ├── PurposeRequired             (purpose_required, 400)
    │   ├── UnknownPurpose              (unknown_purpose, 400)
    │   ├── IdempotencyKeyRequired      (idempotency_key_required, 400)
    │   ├── InvalidWebhookSignature     (invalid_webhook_signature, 400)
    │   ├── StaleWebhook                (stale_webhook, 400)
    │   ├── PaymentRefused              (payment_refused, 422)
    │   └── UnknownOccupation           (unknown_occupation, 400)
    ├── NotFound                        (not_found, 404)
    │   ├── RouteNotFound               (route_not_found, 404)
    │   ├── RecordNotFound              (record_not_found, 404)
    │   ├── PaymentNotFound             (payment_not_found, 404)
    │   └── ApplicationNotFound         (application_not_found, 404)
    ├── MethodNotAllowed                (method_not_allowed, 405)
    ├── Unauthorized                    (unauthorized, 401)
    │   ├── InvalidToken                (invalid_token, 401)
    │   ├── InsufficientUserAuthentication (insufficient_user_authentication, 401)
    │   └── InvalidClient               (invalid_client, 401)
    ├── Forbidden                       (forbidden, 403)
    │   ├── InsufficientScope           (insufficient_scope, 403)
    │   ├── UserAuthenticationRequired  (user_authentication_required, 403)
    │   ├── CsrfOriginMismatch          (csrf_origin_mismatch, 403)
    │   ├── PermissionDenied            (permission_denied, 403)
    │   ├── AdminRoleRequired           (admin_role_required, 403)
    │   ├── PurposeNotAllowed           (purpose_not_allowed, 403)
    │   ├── ApprovalRequired            (approval_required, 403)
    │   ├── SelfApproval                (self_approval, 403)
    │   ├── SubscriptionRequired        (subscription_required, 403)
    │   ├── EventTypeNotAllowed         (event_type_not_allowed, 403)
    │   ├── EstablishmentNotPermitted   (establishment_not_permitted, 403)
    │   └── AgencyOfficerRequired       (agency_officer_required, 403)
    ├── Conflict                        (conflict, 409)
    │   ├── ShadowRunning               (shadow_running, 409)
    │   ├── NotReplayable               (not_replayable, 409)
    │   ├── IdempotencyConflict         (idempotency_conflict, 409)
    │   ├── IdempotencyInProgress       (idempotency_in_progress, 409)
    │   ├── InvalidPaymentState         (invalid_payment_state, 409)
    │   ├── RefundExceedsCapture        (refund_exceeds_capture, 409)
    │   ├── InvalidTransition           (invalid_transition, 409)
    │   └── EstablishmentMismatch       (establishment_mismatch, 409)
    ├── VisaIneligible                  (visa_ineligible, 422)
    ├── RateLimited                     (rate_limited, 429)
    │   └── QuotaExceeded               (quota_exceeded, 429)
    ├── UpstreamError                   (upstream_error, 502)
    │   ├── UpstreamUnavailable         (upstream_unavailable, 503)
    │   │   ├── CircuitOpen             (circuit_open, 503)
    │   │   ├── UpstreamOverloaded      (upstream_overloaded, 503)
    │   │   ├── AdapterRateLimited      (adapter_rate_limited, 503)
    │   │   └── AdapterUnavailable      (adapter_unavailable, 503)
    │   ├── UpstreamConnectError        (upstream_connect_failed, 502)
    │   ├── UpstreamTimeout             (upstream_timeout, 504)
    │   ├── UpstreamProtocolError       (upstream_protocol_error, 502)
    │   ├── UpstreamContractViolation   (upstream_contract_violation, 502)
    │   ├── ObligationFailed            (obligation_failed, 502)
    │   └── FederationFailed            (federation_failed, 502)
    ├── ServiceUnavailable              (service_unavailable, 503)
    │   ├── ShuttingDown                (shutting_down, 503)
    │   ├── LimiterUnavailable          (limiter_unavailable, 503)
    │   ├── AuditUnavailable            (audit_unavailable, 503)
    │   ├── WebhookKeyMissing           (webhook_key_missing, 503)
    │   └── HubUnavailable              (hub_unavailable, 503)
    └── BackendUnavailable              (backend_unavailable, 503)

    ConfigError
    └── EmptyConfiguration              (empty_configuration, 422)

    Work permits (services/work_permits)
    NotFound
    ├── PermitNotFound                  (permit_not_found, 404)
    └── TransferNotFound                (transfer_not_found, 404)
    Forbidden
    └── ConsentNotPermitted             (consent_not_permitted, 403)
    PermitRefused                       (permit_refused, 422)
    ├── VisaNotIssued                   (visa_not_issued, 422)
    ├── NoActiveContract                (no_active_contract, 422)
    ├── ComplianceBandBlocks            (compliance_band_blocks, 422)
    └── PermitAlreadyActive             (permit_already_active, 409)

Issue 7, the occupations, certificates and compliance services (added at the end of the file):

    NotFound
    ├── ChangeRequestNotFound           (change_request_not_found, 404)
    ├── CertificateNotFound             (certificate_not_found, 404)
    └── StandingNotFound                (standing_not_found, 404)
    Conflict
    ├── CertificateAlreadySubmitted     (certificate_already_submitted, 409)
    └── ChangeRequestOpen               (change_request_open, 409)
    OccupationChangeRefused             (occupation_change_refused, 422)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AdapterRateLimited",
    "AdapterUnavailable",
    "AdminRoleRequired",
    "AgencyOfficerRequired",
    "ApplicationNotFound",
    "ApprovalRequired",
    "AuditUnavailable",
    "BackendUnavailable",
    "CircuitOpen",
    "ComplianceBandBlocks",
    "ConfigError",
    "Conflict",
    "ConsentNotPermitted",
    "CsrfOriginMismatch",
    "EmptyConfiguration",
    "EstablishmentMismatch",
    "EstablishmentNotPermitted",
    "EventTypeNotAllowed",
    "FederationFailed",
    "Forbidden",
    "HeadersTooLarge",
    "HubError",
    "HubUnavailable",
    "IdempotencyConflict",
    "IdempotencyInProgress",
    "IdempotencyKeyRequired",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "InvalidClient",
    "InvalidGrant",
    "InvalidHeader",
    "InvalidPath",
    "InvalidPaymentState",
    "InvalidRequest",
    "InvalidScope",
    "InvalidToken",
    "InvalidTransition",
    "InvalidWebhookSignature",
    "LimiterUnavailable",
    "MethodNotAllowed",
    "NoActiveContract",
    "NotFound",
    "NotReplayable",
    "ObligationFailed",
    "PayloadTooLarge",
    "PaymentNotFound",
    "PaymentRefused",
    "PermissionDenied",
    "PermitAlreadyActive",
    "PermitNotFound",
    "PermitRefused",
    "PurposeNotAllowed",
    "PurposeRequired",
    "QuotaExceeded",
    "RateLimited",
    "RecordNotFound",
    "RefundExceedsCapture",
    "RequestRejected",
    "ReuseDetected",
    "RouteNotFound",
    "SelfApproval",
    "ServiceUnavailable",
    "ShadowRunning",
    "ShuttingDown",
    "StaleWebhook",
    "SubscriptionRequired",
    "TransferNotFound",
    "Unauthorized",
    "UnknownOccupation",
    "UnknownPurpose",
    "UnsupportedGrantType",
    "UpstreamConnectError",
    "UpstreamContractViolation",
    "UpstreamError",
    "UpstreamOverloaded",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UriTooLong",
    "UserAuthenticationRequired",
    "VisaIneligible",
    "VisaNotIssued",
    "WeakPassword",
    "WebhookKeyMissing",
]


class HubError(Exception):
    """Base of every error the hub raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)


class ConfigError(HubError):
    """A configuration document is invalid; ``issues`` lists every finding."""

    code = "invalid_configuration"
    status = 422
    title = "Invalid configuration"

    def __init__(self, issues: list[str], *, detail: str | None = None) -> None:
        self.issues = list(issues)
        super().__init__(
            detail or "; ".join(self.issues) or self.title, extra={"errors": self.issues}
        )


class RequestRejected(HubError):
    code = "bad_request"
    status = 400
    title = "Bad request"


class InvalidPath(RequestRejected):
    code = "invalid_path"
    title = "Invalid request path"


class PayloadTooLarge(RequestRejected):
    code = "payload_too_large"
    status = 413
    title = "Request body too large"


class HeadersTooLarge(RequestRejected):
    code = "headers_too_large"
    status = 431
    title = "Request headers too large"


class UriTooLong(RequestRejected):
    code = "uri_too_long"
    status = 414
    title = "Request URI too long"


class InvalidHeader(RequestRejected):
    code = "invalid_header"
    title = "Invalid request header"


class InvalidRequest(RequestRejected):
    code = "invalid_request"
    title = "Invalid request"


class WeakPassword(InvalidRequest):
    """The password fails the policy; ``extra["reasons"]`` says why, in sentences."""

    code = "weak_password"
    title = "Weak password"


class InvalidScope(RequestRejected):
    code = "invalid_scope"
    title = "Invalid scope"


class InvalidGrant(RequestRejected):
    """An authorization code or refresh token: unknown, spent, expired, or not the client's."""

    code = "invalid_grant"
    title = "Invalid grant"


class ReuseDetected(InvalidGrant):
    """A refresh token presented again after it was rotated: its whole family is now revoked."""

    code = "refresh_token_reused"
    title = "Refresh token reused"


class UnsupportedGrantType(RequestRejected):
    code = "unsupported_grant_type"
    title = "Unsupported grant type"


class PurposeRequired(RequestRejected):
    """A registrar read without a ``purpose``: every read states its legal purpose."""

    code = "purpose_required"
    title = "A purpose is required"


class UnknownPurpose(RequestRejected):
    """The stated purpose is not one the configuration defines."""

    code = "unknown_purpose"
    title = "Unknown purpose"


class IdempotencyKeyRequired(RequestRejected):
    """A payment call that changes something needs an ``Idempotency-Key`` header."""

    code = "idempotency_key_required"


class InvalidWebhookSignature(RequestRejected):
    """A provider webhook whose signature is missing or does not verify."""

    code = "invalid_webhook_signature"


class StaleWebhook(RequestRejected):
    """A provider webhook whose signed timestamp is outside the tolerance (a replay)."""

    code = "stale_webhook"


class PaymentRefused(RequestRejected):
    """The payment provider refused the request itself (its ``provider_code`` says why)."""

    code = "payment_refused"
    status = 422


class NotFound(HubError):
    code = "not_found"
    status = 404
    title = "Not found"


class RouteNotFound(NotFound):
    code = "route_not_found"
    title = "No route matches this request"


class RecordNotFound(NotFound):
    """The external system (a registrar) has no record under that key."""

    code = "record_not_found"
    title = "No such record"


class PaymentNotFound(NotFound):
    """No payment with that id belongs to the caller (or, for a webhook, to the hub)."""

    code = "payment_not_found"


class MethodNotAllowed(HubError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class Unauthorized(HubError):
    code = "unauthorized"
    status = 401
    title = "Authentication required"


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "The access token is not valid"


class InsufficientUserAuthentication(Unauthorized):
    """The person signed in, but not strongly enough for this route (RFC 9470): step up."""

    code = "insufficient_user_authentication"
    title = "A stronger authentication is required"


class InvalidClient(Unauthorized):
    code = "invalid_client"
    title = "Client authentication failed"


class Forbidden(HubError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    title = "The token lacks a required scope"


class UserAuthenticationRequired(Forbidden):
    """The route needs a person's sign-in at some level; the caller has no person behind it."""

    code = "user_authentication_required"
    title = "This route needs a signed-in person"


class CsrfOriginMismatch(Forbidden):
    """A state-changing request with the session cookie that did not come from the hub's pages."""

    code = "csrf_origin_mismatch"
    title = "The request did not come from the hub's origin"


class PermissionDenied(Forbidden):
    """A permission policy refused the request; the detail names the permission, nothing else."""

    code = "permission_denied"
    title = "A permission is missing"


class AdminRoleRequired(Forbidden):
    """The caller is a signed-in person, but holds no active ``platform_admin`` staff role."""

    code = "admin_role_required"
    title = "The admin API needs a platform admin"


class PurposeNotAllowed(Forbidden):
    """The caller may not use this purpose, or the purpose does not cover this operation."""

    code = "purpose_not_allowed"
    title = "The purpose is not allowed here"


class ApprovalRequired(Forbidden):
    """The change touches protected configuration without a second admin's valid approval."""

    code = "approval_required"
    title = "A second admin's approval is required"


class SelfApproval(Forbidden):
    """An admin who created or edited a draft tried to approve it: four eyes means two people."""

    code = "self_approval"
    title = "An editor of a draft cannot approve it"


class SubscriptionRequired(Forbidden):
    """The product needs a subscription and the calling application has no active one."""

    code = "subscription_required"
    title = "The application needs an active subscription to this product"


class Conflict(HubError):
    code = "conflict"
    status = 409
    title = "Conflict"


class EventTypeNotAllowed(Forbidden):
    """A webhook subscription names an event type the vendor's client may not receive."""

    code = "event_type_not_allowed"
    title = "This event type is not available to this application"


class NotReplayable(Conflict):
    """Only a parked webhook delivery (or a dead-lettered event) can be replayed."""

    code = "not_replayable"
    title = "Nothing to replay in this state"


class ShadowRunning(Conflict):
    """A shadow run is already on: one draft at a time runs beside the active configuration."""

    code = "shadow_running"
    title = "A shadow run is already on"


class IdempotencyConflict(Conflict):
    """An ``Idempotency-Key`` used before for a different request (body or operation)."""

    code = "idempotency_conflict"


class IdempotencyInProgress(Conflict):
    """The first request with this ``Idempotency-Key`` is still being served (``Retry-After``)."""

    code = "idempotency_in_progress"


class InvalidPaymentState(Conflict):
    """The payment's state does not allow this (a capture of a failed payment, say)."""

    code = "invalid_payment_state"


class RefundExceedsCapture(Conflict):
    """The refund would take the refunded total beyond what was captured."""

    code = "refund_exceeds_capture"


class RateLimited(HubError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"


class QuotaExceeded(RateLimited):
    """A plan's daily or monthly request quota is used up; it comes back when the period ends."""

    code = "quota_exceeded"
    title = "Request quota exceeded"


class UpstreamError(HubError):
    code = "upstream_error"
    status = 502
    title = "Upstream error"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    status = 503
    title = "No healthy upstream target"


class CircuitOpen(UpstreamUnavailable):
    code = "circuit_open"
    title = "Upstream circuit is open"


class UpstreamOverloaded(UpstreamUnavailable):
    code = "upstream_overloaded"
    title = "Upstream concurrency limit reached"


class AdapterRateLimited(UpstreamUnavailable):
    """The external system's own quota is used up (by the hub's count, or by its own 429)."""

    code = "adapter_rate_limited"
    title = "The external system's rate limit is reached"


class AdapterUnavailable(UpstreamUnavailable):
    """The adapter is not configured or could not be built (plugin or secret missing)."""

    code = "adapter_unavailable"
    title = "The adapter is unavailable"


class UpstreamConnectError(UpstreamError):
    code = "upstream_connect_failed"
    title = "Could not connect to the upstream"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    status = 504
    title = "Upstream timed out"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"
    title = "Upstream answered with an invalid response"


class UpstreamContractViolation(UpstreamError):
    """The external system answered outside its contract; the answer is never passed on."""

    code = "upstream_contract_violation"
    title = "The upstream answered outside its contract"


class ObligationFailed(UpstreamError):
    """The answer cannot be given under the policy's obligations (e.g. a non-JSON body to mask)."""

    code = "obligation_failed"
    title = "The answer cannot be given under the route's policy"


class FederationFailed(UpstreamError):
    """The national identity provider could not be used for this sign-in."""

    code = "federation_failed"
    title = "The national identity provider could not be used"


class ServiceUnavailable(HubError):
    code = "service_unavailable"
    status = 503
    title = "Service unavailable"


class ShuttingDown(ServiceUnavailable):
    code = "shutting_down"
    title = "The hub is shutting down"


class LimiterUnavailable(ServiceUnavailable):
    """The shared rate limiter is unreachable and the route's limit fails closed."""

    code = "limiter_unavailable"
    title = "The rate limiter is unavailable"


class WebhookKeyMissing(ServiceUnavailable):
    """No ``HUB_WEBHOOK_KEY``: webhook secrets could not be stored, so webhooks are off."""

    code = "webhook_key_missing"
    title = "Webhooks are not configured"


class AuditUnavailable(ServiceUnavailable):
    """The audit log cannot be written, so the read it would record is refused (fail closed)."""

    code = "audit_unavailable"
    title = "The audit log is unavailable"


class BackendUnavailable(HubError):
    code = "backend_unavailable"
    status = 503
    title = "A back-end service is unavailable"


class EmptyConfiguration(ConfigError):
    """A valid document would remove every route of the active one, and allow_empty is unset."""

    code = "empty_configuration"
    title = "The configuration would remove every route"


class UnknownOccupation(InvalidRequest):
    """An occupation code that is not in the occupation catalogue (ISCO-08)."""

    code = "unknown_occupation"


class ApplicationNotFound(NotFound):
    """No visa application with that id that the caller may see."""

    code = "application_not_found"


class EstablishmentNotPermitted(Forbidden):
    """The caller may not act for that establishment (no membership or delegation)."""

    code = "establishment_not_permitted"


class AgencyOfficerRequired(Forbidden):
    """An agency officer's action (the review queue): the caller lacks the agency_officer role."""

    code = "agency_officer_required"


class InvalidTransition(Conflict):
    """The application's state does not allow that action now."""

    code = "invalid_transition"


class EstablishmentMismatch(Conflict):
    """The commercial registration number is not the one on record for the establishment."""

    code = "establishment_mismatch"


class VisaIneligible(HubError):
    """An eligibility check failed; ``reasons`` lists the stable reason codes."""

    code = "visa_ineligible"
    status = 422
    title = "Not eligible"


class HubUnavailable(ServiceUnavailable):
    """A service could not reach the hub (registrar or payment routes) to finish a step."""

    code = "hub_unavailable"


# ---- work permits (services/work_permits) ---------------------------------------------------


class PermitNotFound(NotFound):
    """No work permit with that id that the caller may see."""

    code = "permit_not_found"


class TransferNotFound(NotFound):
    """No permit transfer with that id that the caller may see."""

    code = "transfer_not_found"


class ConsentNotPermitted(Forbidden):
    """The caller is not the party of a transfer whose consent (or refusal) it gives."""

    code = "consent_not_permitted"


class PermitRefused(HubError):
    """A permit or transfer was refused; ``reasons`` lists every failed check's code."""

    code = "permit_refused"
    status = 422
    title = "Permit refused"


class VisaNotIssued(PermitRefused):
    """The establishment holds no issued, valid work visa with that number."""

    code = "visa_not_issued"


class NoActiveContract(PermitRefused):
    """No active employment contract between the establishment and the worker."""

    code = "no_active_contract"


class ComplianceBandBlocks(PermitRefused):
    """The establishment's localisation band (red) allows no permits."""

    code = "compliance_band_blocks"


class PermitAlreadyActive(PermitRefused):
    """The worker already holds an active work permit."""

    code = "permit_already_active"
    status = 409


# ---- employment contracts (issue 7) -------------------------------------------------------
#
#     NotFound
#     ├── ContractNotFound            (contract_not_found, 404)
#     └── AmendmentNotFound           (amendment_not_found, 404)
#     Conflict
#     ├── AmendmentOpen               (amendment_open, 409)
#     └── AlreadySigned               (already_signed, 409)
#     ContractIneligible              (contract_ineligible, 422)
#     └── EstablishmentNotActive      (establishment_not_active, 422)

__all__ += [  # the contracts block, kept apart for merges
    "AlreadySigned",
    "AmendmentNotFound",
    "AmendmentOpen",
    "ContractIneligible",
    "ContractNotFound",
    "EstablishmentNotActive",
]


class ContractNotFound(NotFound):
    """No employment contract with that id that the caller may see."""

    code = "contract_not_found"


class AmendmentNotFound(NotFound):
    """No amendment with that id on the contract."""

    code = "amendment_not_found"


class AmendmentOpen(Conflict):
    """The contract already has an amendment waiting for signatures."""

    code = "amendment_open"


class AlreadySigned(Conflict):
    """That party has already signed this version of the contract."""

    code = "already_signed"


class ContractIneligible(HubError):
    """A contract rule failed; ``reasons`` lists the stable reason codes."""

    code = "contract_ineligible"
    status = 422
    title = "The contract cannot be made"


class EstablishmentNotActive(ContractIneligible):
    """The establishment is suspended or struck off in the commercial registry."""

    code = "establishment_not_active"
    title = "The establishment is not active"


# ---- issue 7: the occupations, certificates and compliance services ----------------------

__all__ += [
    "CertificateAlreadySubmitted",
    "CertificateNotFound",
    "ChangeRequestNotFound",
    "ChangeRequestOpen",
    "OccupationChangeRefused",
    "StandingNotFound",
]


class ChangeRequestNotFound(NotFound):
    """No change-of-occupation request with that id that the caller may see."""

    code = "change_request_not_found"


class CertificateNotFound(NotFound):
    """No qualification certificate with that id that the caller may see."""

    code = "certificate_not_found"


class StandingNotFound(NotFound):
    """The compliance service knows nothing yet of that establishment's workforce."""

    code = "standing_not_found"


class CertificateAlreadySubmitted(Conflict):
    """The person already has that certificate verified or waiting for the registry."""

    code = "certificate_already_submitted"


class ChangeRequestOpen(Conflict):
    """The worker already has a change-of-occupation request waiting for an officer."""

    code = "change_request_open"


class OccupationChangeRefused(HubError):
    """A change of occupation the rules refuse outright; ``reasons`` lists the stable codes."""

    code = "occupation_change_refused"
    status = 422
    title = "Change of occupation refused"
