"""certctl: obtain, import, watch and renew TLS certificates."""

__version__ = "0.1.0"
