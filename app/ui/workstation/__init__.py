"""The workstation screen: the main window (a shell), its controllers, the viewer, gallery and panels."""
