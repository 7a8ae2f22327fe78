"""The hub side of adapters: plugins, the resilience path, registrar reads, purposes."""
