"""GMIC (Shen et al., Medical Image Analysis 2021): model, family and training."""
