"""scarce.model."""
