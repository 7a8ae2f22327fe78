"""Callbacks from notification providers: signed delivery receipts turned into outbox events."""
