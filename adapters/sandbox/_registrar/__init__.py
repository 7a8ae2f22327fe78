"""What the sandbox registrars share: faults, quota, key check, control endpoints, command line."""
