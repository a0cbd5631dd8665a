"""scarce.eval."""
