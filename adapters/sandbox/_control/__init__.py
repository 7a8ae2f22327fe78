"""What every sandbox system shares: faults, the ``/_sandbox`` surface, signed callbacks, CLI."""
