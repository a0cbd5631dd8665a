"""scarce.recipes."""
