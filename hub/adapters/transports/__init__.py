"""The one resilience path of every adapter call, as httpx transports around the real one.

Outermost first: :mod:`observe` (metrics) → :mod:`deadline` (the call's total timeout) →
:mod:`bulkhead` (calls in flight) → :mod:`retry` (only when safe) → :mod:`breaker` →
:mod:`ratelimit` (the external system's own quota) → :mod:`contract` (JSON Schemas of the
bodies) → :mod:`translate` (httpx's exceptions become hub errors) → the pooled
``httpx.AsyncHTTPTransport``. :func:`hub.adapters.transports.stack.build_client` assembles it.
"""
