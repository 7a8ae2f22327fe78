"""Billing quotas: requests per application, product and UTC day, counted durably."""
