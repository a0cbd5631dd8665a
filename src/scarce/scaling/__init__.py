"""scarce.scaling."""
