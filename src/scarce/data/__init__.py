"""scarce.data."""
