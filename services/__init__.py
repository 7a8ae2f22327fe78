"""Domain services behind the hub; each is its own Litestar app and process."""
