"""The headless commands, one module per command; ``main.py`` only configures the process and dispatches."""
