"""The operator console: staff accounts, payment search and timelines, and guarded operator actions."""
