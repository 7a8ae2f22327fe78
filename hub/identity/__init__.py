"""The hub as identity provider: signing keys, tokens, the OAuth 2 server and its endpoints."""
