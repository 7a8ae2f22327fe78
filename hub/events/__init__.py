"""Domain events kept safe: the transactional outbox, its relay and idempotent consumers."""
