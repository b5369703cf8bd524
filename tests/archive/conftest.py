"""An archive of small synthetic four-view exams (the phantom, as MG DICOM) and one broken exam."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

DEMO_MODEL = ROOT / "resources" / "demo" / "model.pt"
GOOD = [f"exam{i}" for i in range(8)]


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """Eight exams (``exam0`` … ``exam7``, 640 x 480 views) and ``zz_bad`` (a file that is no image)."""
    from inference.intake.phantom import generate_exam, write_dicom_exam

    folder = tmp_path_factory.mktemp("archive")
    for number, name in enumerate(GOOD):
        write_dicom_exam(generate_exam(500 + number, shape=(640, 480)), folder / name)
    (folder / "zz_bad").mkdir()
    (folder / "zz_bad" / "x.dcm").write_bytes(b"not a DICOM file")
    return folder


def loopback_only(command: list[str]) -> list[str]:
    """``command`` inside a new network namespace with only loopback up (root, as CI is): servers the test
    starts there (Ray) cannot be reached from, or reach, the machine's own interfaces."""
    return _namespace(command, "ip link set lo up")


def _namespace(command: list[str], setup: str) -> list[str]:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("unshare and ip (util-linux, iproute2) are needed to confine the servers to loopback")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"cannot make a network namespace (run as root): {probe.stderr.strip()}")
    quoted = " ".join(f"'{part}'" for part in command)
    return ["unshare", "-n", "sh", "-c", f"{setup} && exec {quoted}"]


def lan_stand_in(command: list[str]) -> list[str]:
    """``command`` inside a new network namespace where, besides loopback, a veth pair (both ends inside it)
    carries the address 10.99.0.2 and the default route: to a program there the machine is on a network, and
    nothing it sends leaves the namespace. What a loopback-only namespace cannot show: a server that takes
    the machine's network address (or listens on every interface) when it should keep to loopback."""
    return _namespace(command, "ip link set lo up && ip link add veth0 type veth peer name veth1 && "
                      "ip addr add 10.99.0.2/24 dev veth0 && ip link set veth0 up && ip link set veth1 up && "
                      "ip route add default via 10.99.0.1 dev veth0")
