"""The Mammo Reader application: Qt UI (``app.ui``), reader-study store (``app.study``), reports."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
