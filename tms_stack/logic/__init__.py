"""Pure decisions over loaded models: effective values, expiry, pool placement and the lock it
produces, the lock merge. No I/O here: callers pass what was read."""
