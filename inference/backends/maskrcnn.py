"""Registers the Mask R-CNN family, which lives in its own folder (``inference/families/maskrcnn/``)."""

from inference.backends import register
from inference.families.maskrcnn.family import MaskRCNNFamily

register(MaskRCNNFamily())
