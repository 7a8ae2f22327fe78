"""Short-lived shared state: login sessions, pending authorization requests, one-time codes."""
