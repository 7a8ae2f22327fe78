"""The registrar audit log: hash-chained entries, their verification and the person's view."""
