"""Use cases: one module per command (check, render, plan, targets, prune, edits, pool lock,
doctor, init, review), each a plain function with a typed result. The CLI and the review
launcher call these; nothing here prints or parses a command line."""
