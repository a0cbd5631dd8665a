"""scarce.runs."""
