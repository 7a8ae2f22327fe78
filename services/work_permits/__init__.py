"""The work permits service: issue, renew, transfer, cancel and expiry of work permits."""
