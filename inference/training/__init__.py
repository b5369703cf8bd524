"""What every family's training shares: options, resume, device, the labelled-image record."""
