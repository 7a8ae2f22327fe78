"""The sandbox vendor webhook receiver: verifies Standard Webhooks signatures, records, fails."""
