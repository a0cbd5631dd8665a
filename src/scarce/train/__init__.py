"""scarce.train."""
