"""The hub's kit for domain services: what every service behind the hub builds on.

A service (``services/<name>/``) keeps its own HTTP API, rules and tables; what it shares with
every other service comes from here, one concept a module:

- :mod:`~hub.servicekit.settings`: the settings every service has, read from ``<PREFIX>_*``;
- :mod:`~hub.servicekit.runtime`: the engine, hub client, token verifier, event bus, outbox
  relay and consumers a service's lifespan opens and closes;
- :mod:`~hub.servicekit.gateway`: the service's only way out, the hub's gateway called with
  the service's client credentials (payments and their outcomes, registrar reads with a
  purpose);
- :mod:`~hub.servicekit.caller`: who called, from the hub's internal token;
- :mod:`~hub.servicekit.http`: the service's app (:class:`~hub.servicekit.http.ServiceApp`),
  its state and caller, request bodies and queries, ``Idempotency-Key`` headers, answers;
- :mod:`~hub.servicekit.idempotency`: the canonical hash a retried request must repeat, and
  the id it makes;
- :mod:`~hub.servicekit.lifecycle`: a state machine's transitions, reason codes and history;
- :mod:`~hub.servicekit.paging`: keyset pagination with opaque cursors;
- :mod:`~hub.servicekit.moments`: moments read from other services' events;
- :mod:`~hub.servicekit.isco`: the ISCO-08 occupation catalogue the services share;
- :mod:`~hub.servicekit.localisation`: the localisation bands of an establishment's workforce;
- :mod:`~hub.servicekit.store`: the base of a service's store (its schema, its read and write
  transactions, the hook that wakes the relay) and what every store repeats: the transitions
  table and its moves, idempotency keys, payment receipts, keyset pages, row locks,
  versioned updates and outbox events.
"""
