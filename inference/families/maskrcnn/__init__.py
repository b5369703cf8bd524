"""Mask R-CNN (He et al. 2017, ResNet-FPN), torchvision-checkpoint compatible, written without torchvision.

``model`` holds the network, ``ops`` the box arithmetic (anchors, NMS, RoIAlign, mask paste), ``checkpoint``
the checkpoint layout, ``family`` the model family behind :class:`inference.families.protocol.ModelFamily`.
"""

from inference.families.maskrcnn.model import Detections, MaskRCNN, MaskRCNNConfig

__all__ = ["Detections", "MaskRCNN", "MaskRCNNConfig"]
