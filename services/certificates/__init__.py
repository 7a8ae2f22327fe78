"""The qualification certificates service (README "Qualification certificates")."""
