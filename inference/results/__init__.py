"""The result vocabulary the screens, reports and stores read, and its serialisation (no torch, no Qt)."""
