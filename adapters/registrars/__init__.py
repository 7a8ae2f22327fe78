"""Adapters to the public registrars: civil, commercial and education registries."""
