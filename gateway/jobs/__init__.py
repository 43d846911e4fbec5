"""Background rounds: delivering store notifications and finishing what crashes left behind,
by calling the payments package's public functions. Nothing below this package imports it."""
