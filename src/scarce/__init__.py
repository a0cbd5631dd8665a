"""scarce: language-model pretraining when data is scarce and compute is not."""

__version__ = "0.1.0"
