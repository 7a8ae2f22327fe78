"""The notification service: templates, channels by preference, receipts, the inbox."""
