"""A real PACS for the tests: Orthanc (Debian's orthanc, orthanc-dicomweb, orthanc-gdcm) with its own JSON
configuration and a temporary database, started and stopped by PID. Orthanc 1.10 listens on every interface,
so it is only ever started inside a network namespace that has nothing but loopback (see ``conftest``)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

PLUGINS = Path("/usr/share/orthanc/plugins")
AET, DICOM_PORT, HTTP_PORT = "ORTHANC", 4242, 8042
MOVE_PORT, INBOX_PORT, INBOX_AET = 4243, 4244, "MAMMOINBOX"  # one AE title per destination
USER, PASSWORD = "reader", "s3cret-for-tests"


def _wait(port: int, deadline: float) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not open port {port}") from None
            time.sleep(0.01)


class Orthanc:
    def __init__(self, folder: Path, our_aet: str = "MAMMOREADER") -> None:
        if shutil.which("Orthanc") is None:
            raise RuntimeError("Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb orthanc-gdcm)")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "tests", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
            "HttpPort": HTTP_PORT, "DicomPort": DICOM_PORT, "DicomAet": AET, "DicomCheckCalledAet": True,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
            # DICOMweb only: the GDCM plugin (installed, for JPEG 2000 sites) segfaulted here (a stack overflow
            # in libgdcmMSFF in Orthanc's HTTP threads) transcoding our JPEG 2000 SEGs under WADO-RS; Orthanc's
            # own transcoder does RLE, and no test asks WADO-RS for a JPEG 2000 instance
            "Plugins": [str(PLUGINS / "libOrthancDicomWeb.so")],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            # C-MOVE reaches only registered AE titles: ours for a move (4243), and our inbox SCP (4244)
            "DicomModalities": {"mammo": [our_aet, "127.0.0.1", MOVE_PORT], "inbox": [INBOX_AET, "127.0.0.1", INBOX_PORT]},
            "UnknownSopClassAccepted": False, "StableAge": 1, "SaveJobs": False,
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.started = time.monotonic()
        self.process = subprocess.Popen(["Orthanc", str(folder / "orthanc.json")], stdout=(folder / "log.txt").open("w"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        _wait(HTTP_PORT, deadline)
        _wait(DICOM_PORT, deadline)
        self.ready_s = time.monotonic() - self.started

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
