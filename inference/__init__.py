"""Numeric core of Mammo Reader: exam intake, preprocessing, models and the analysis pipeline.

Nothing in this package imports Qt or ``app``; it runs headless in scripts, batches and tests.
"""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
