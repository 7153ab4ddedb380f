"""The only code that speaks ACME (RFC 8555): the session and its network layer."""
