"""The workstation's inbox: the folder our Storage SCP receives into, and the SCP's lifecycle as the
preferences say (start, restart on a change, stop). Qt-free; the window only shows what it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference.errors import MammoError


def inbox_folder() -> Path:
    from app.settings import config_dir, private_folder  # noqa: PLC0415

    return private_folder(config_dir() / "inbox")


class InboxService:
    """Our Storage SCP, running exactly when and as the settings ask."""

    def __init__(self) -> None:
        self.scp: Any = None  # app.pacs.scp's running receiver, or None
        self._key: tuple | None = None

    def describe(self, settings) -> str:
        return (f"receiving as {settings.ae_title} on port {settings.scp_port}" if self.scp is not None
                else "the Storage SCP is off (Preferences)")

    def apply(self, settings) -> None:
        """Start, restart or stop the SCP as ``settings`` say. Raises MammoError when it cannot listen (the
        SCP is then off)."""
        s = settings
        wanted = ((s.ae_title, s.scp_port, s.scp_bind, s.scp_allowed, s.scp_max_instance_mb, s.scp_quota_gb)
                  if s.scp_enabled else None)
        if wanted == self._key:
            return
        self.stop()
        if wanted is None:
            return
        from app.pacs.scp import workstation_receiver  # noqa: PLC0415 - the same receiver as the AI node's

        try:
            self.scp = workstation_receiver(s, inbox_folder())
        except OSError as error:
            raise MammoError(f"the Storage SCP cannot listen on {s.scp_bind}:{s.scp_port} "
                             f"({error.strerror or error}); choose another address or port in Preferences") from error
        self._key = wanted

    def stop(self) -> None:
        if self.scp is not None:
            self.scp.stop()
        self.scp, self._key = None, None
