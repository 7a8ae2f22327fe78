"""A stand-in for the citizen portal: a public OpenID Connect client of the hub, for the demo."""
