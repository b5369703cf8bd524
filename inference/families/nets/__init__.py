"""Networks shared by several families (ResNet blocks, Inception-v3, batch-norm folding)."""
