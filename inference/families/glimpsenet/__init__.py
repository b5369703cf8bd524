"""GlimpseNet (Liu & Hang, Stanford CS231n): networks, glimpses, family and training."""
