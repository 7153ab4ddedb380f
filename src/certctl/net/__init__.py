"""Network connections to the endpoints where certificates are served (TLS probes)."""
