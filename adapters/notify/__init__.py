"""Notification providers: SMS and e-mail, with delivery receipts by signed callback."""
