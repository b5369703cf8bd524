"""What every family's evaluation shares: one AUC, calibration, reliability, classification report, FROC."""
