"""What the sandbox SMS and e-mail providers share: the API, faults and signed receipts."""
