"""scarce.report."""
