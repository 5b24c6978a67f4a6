"""The alert rule and how well it does: calibration on the watchlist (stated error
rates, the rule for a target false-alert rate) and `frs evaluate` on a photo set."""
