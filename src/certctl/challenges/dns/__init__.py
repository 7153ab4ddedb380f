"""DNS-01 (RFC 8555 §8.4): the solvers and the DNS protocol work they share."""
