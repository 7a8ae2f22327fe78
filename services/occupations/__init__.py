"""The occupations service (README "Occupations")."""
