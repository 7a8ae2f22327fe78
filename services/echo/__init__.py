"""The demo upstream: answers any request with a JSON description of what it received."""
