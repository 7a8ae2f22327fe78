"""Payments: the hub's book of payments and refunds, kept in step with the payment provider."""
