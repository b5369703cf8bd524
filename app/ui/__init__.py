"""Qt widgets of the workstation. Background work goes through ``app.ui.worker`` only."""
