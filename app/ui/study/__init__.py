"""The reader-study screens: the study menu, the blinded reading window, results and dialogs."""
