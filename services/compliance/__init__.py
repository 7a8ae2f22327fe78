"""The compliance service (README "Compliance")."""
