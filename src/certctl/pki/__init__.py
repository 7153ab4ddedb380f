"""Certificates, keys, chains and CSRs: bytes in, findings out."""
