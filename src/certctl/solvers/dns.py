"""DNS-01 solvers (manual now; RFC 2136 and hook providers plug in here)."""
