"""The attention CNN on the seven MIAS classes (Krishnakumar et al. 2021): data, model, family, training."""
