"""Model architectures. Each file holds one architecture; ``forward`` returns a typed output."""

from inference.models.gmic import GMIC, GMICConfig, GMICOutput

__all__ = ["GMIC", "GMICConfig", "GMICOutput"]
