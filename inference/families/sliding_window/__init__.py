"""The sliding-window patch classifier ("Second Look", Thatte et al.): windows, model, family, training, evaluation."""
