"""Hub-signed document signatures: the hub vouches for who signed which document hash, when."""
