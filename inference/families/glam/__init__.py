"""GLAM (Liu et al., MIDL 2021): model and family."""
