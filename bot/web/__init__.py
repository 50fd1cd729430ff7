"""HTTP surface of the service: webhook intake and operability endpoints."""
