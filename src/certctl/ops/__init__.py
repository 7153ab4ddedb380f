"""Use cases, one module each: lock, gather, decide, act, persist, report; no printing."""
