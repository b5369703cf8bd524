"""Run by test_access.py inside a loopback-only network namespace: Orthanc with a stored exam, then the cache
asked with a wrong identity, a C-GET that stalls (a proxy that stops forwarding), a DICOMweb server that
never answers, the wrong ports, a study removed during its retrieve, Ctrl+C during a slow C-GET and stale
private folders. Prints one JSON line of what it saw; the test judges it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from pydicom import dcmread  # noqa: E402

from app.pacs import dimse  # noqa: E402
from app.pacs.nodes import PacsError, parse_address, parse_study  # noqa: E402
from app.pacs.retrieve import retrieve_study  # noqa: E402
from inference.intake.phantom import generate_exam, write_dicom_exam  # noqa: E402
from tests.pacs.orthanc import AET, DICOM_PORT, HTTP_PORT, PASSWORD, USER, Orthanc  # noqa: E402
from tests.pacs.stall_proxy import StallingProxy  # noqa: E402
from tests.helpers import run_main  # noqa: E402

DIMSE = f"dimse://{AET}@127.0.0.1:{DICOM_PORT}"
WEB = f"dicomweb+http://127.0.0.1:{HTTP_PORT}/dicom-web"
DEMO_MODEL = ROOT / "resources" / "demo" / "model.pt"
TIMEOUT_S = 2  # MAMMO_PACS_TIMEOUT for every step here: the stalls last this long
HELD: list = []


def attempt(call) -> dict:
    """What ``call`` ended with (the error's message or "ok") and how long it took."""
    started = time.monotonic()
    try:
        call()
        outcome = "ok"
    except PacsError as error:
        outcome = str(error)
    return {"error": outcome, "s": round(time.monotonic() - started, 3)}


def silent_server() -> int:
    """A TCP port that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    HELD.append(listener)

    def accept() -> None:
        while True:
            try:
                HELD.append(listener.accept())
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def cli(*args: str, env: dict | None = None) -> dict:
    """The command's exit status, output and time."""
    started = time.monotonic()
    done = run_main(list(args), env=env)  # in this process: each step ends within its own bound (the test's check)
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
            "s": round(time.monotonic() - started, 3)}


def partials(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if ".partial-" in p.name) if cache.is_dir() else []


def orthanc_delete(study_uid: str) -> None:
    found = requests.post(f"http://127.0.0.1:{HTTP_PORT}/tools/lookup", data=study_uid, auth=(USER, PASSWORD),
                          timeout=10).json()
    requests.delete(f"http://127.0.0.1:{HTTP_PORT}{found[0]['Path']}", auth=(USER, PASSWORD), timeout=10)


def store_exam(seed: int, work: Path, node) -> str:
    files = write_dicom_exam(generate_exam(seed, shape=(640, 480)), work / f"exam{seed}")
    dimse.store_files(node, files)
    return str(dcmread(files[0]).StudyInstanceUID)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pacs_access_"))
    cache = work / "cache"
    os.environ.update({"MAMMO_PACS_CACHE": str(cache), "MAMMO_READER_HOME": str(work / "home"),
                       "MAMMO_PACS_TIMEOUT": str(TIMEOUT_S)})
    for name in ("MAMMO_DICOMWEB_USER", "MAMMO_DICOMWEB_PASSWORD", "MAMMO_DICOMWEB_TOKEN"):
        os.environ.pop(name, None)
    right = {"MAMMO_DICOMWEB_USER": USER, "MAMMO_DICOMWEB_PASSWORD": PASSWORD}
    seen: dict = {"timeout_s": TIMEOUT_S}
    orthanc = Orthanc(work / "orthanc")
    try:
        node, _ = parse_address(DIMSE)
        study_uid, removed_uid, vanishing_uid = (store_exam(seed, work, node) for seed in (7101, 7102, 7103))
        model = ("--models", str(DEMO_MODEL), "--device", "cpu")

        # 1. the cache asks the node every time: first the right identity retrieves, then wrong ones ask
        seen["right_dimse"] = attempt(lambda: retrieve_study(parse_study(f"{DIMSE}/{study_uid}")))
        os.environ.update(right)
        seen["right_web"] = attempt(lambda: retrieve_study(parse_study(f"{WEB}/studies/{study_uid}")))
        for name in right:
            os.environ.pop(name)
        seen["cli_unregistered_aet"] = cli("analyze", f"{DIMSE}/{study_uid}", "--ae-title", "NOTREGISTERED", *model)
        seen["cli_wrong_password"] = cli("analyze", f"{WEB}/studies/{study_uid}", *model,
                                         env={**right, "MAMMO_DICOMWEB_PASSWORD": "wrong"})
        seen["no_credentials"] = attempt(lambda: retrieve_study(parse_study(f"{WEB}/studies/{study_uid}")))
        os.environ["MAMMO_DICOMWEB_TOKEN"] = "not-a-token"
        seen["wrong_token"] = attempt(lambda: retrieve_study(parse_study(f"{WEB}/studies/{study_uid}")))
        os.environ.pop("MAMMO_DICOMWEB_TOKEN")
        # a study the node no longer has is not served from the cache either
        first = attempt(lambda: retrieve_study(parse_study(f"{DIMSE}/{removed_uid}")))
        orthanc_delete(removed_uid)
        seen["removed_then_cached"] = [first, attempt(lambda: retrieve_study(parse_study(f"{DIMSE}/{removed_uid}")))]

        # 2. retrieves that end: a C-GET whose node stops in the middle of an instance (100 kB into the answer)
        proxy = StallingProxy(DICOM_PORT, stall_after=100_000)
        stalled = f"dimse://{AET}@127.0.0.1:{proxy.port}/{study_uid}"
        seen["stall_api"] = attempt(lambda: retrieve_study(parse_study(stalled)))
        seen["stall_api"]["stalled"] = proxy.stalled.is_set()
        seen["stall_cli"] = cli("analyze", stalled, *model)
        seen["stall_partials"] = partials(cache)
        proxy.close()
        # a DICOMweb server that accepts and never answers
        silent = silent_server()
        seen["web_silent"] = attempt(lambda: retrieve_study(parse_study(
            f"dicomweb+http://127.0.0.1:{silent}/dicom-web/studies/{study_uid}")))
        # the wrong ports, and an AE title the PACS does not know (nothing cached for it)
        seen["dimse_to_http_port"] = attempt(lambda: retrieve_study(parse_study(
            f"dimse://{AET}@127.0.0.1:{HTTP_PORT}/{study_uid}")))
        seen["web_to_dicom_port"] = attempt(lambda: retrieve_study(parse_study(
            f"dicomweb+http://127.0.0.1:{DICOM_PORT}/dicom-web/studies/{study_uid}")))
        seen["get_unregistered"] = attempt(lambda: retrieve_study(parse_study(f"{DIMSE}/{removed_uid}",
                                                                              "NOTREGISTERED")))
        # the study deleted on the PACS while its C-GET is under way (after its first image came)
        deleted: list[bool] = []

        def delete_once(_path: Path) -> None:
            if not deleted:
                orthanc_delete(vanishing_uid)
                deleted.append(True)

        seen["vanished"] = attempt(lambda: retrieve_study(parse_study(f"{DIMSE}/{vanishing_uid}"),
                                                          on_kept=delete_once))
        seen["vanished_partials"] = partials(cache)

        # Ctrl+C in the middle of a slow C-GET (50 kB/s: the study would take ~20 s)
        slow = StallingProxy(DICOM_PORT, bytes_per_s=50_000)
        command = [sys.executable, "main.py", "analyze", f"dimse://{AET}@127.0.0.1:{slow.port}/{study_uid}", *model]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "MAMMO_PACS_TIMEOUT": "30"})
        deadline = time.monotonic() + 120
        while slow.forwarded < 60_000 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until the images are coming (the command imports torch first)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        seen["sigint"] = {"rc": process.returncode, "s": round(time.monotonic() - interrupted, 3),
                          "forwarded": slow.forwarded, "stderr": err[-3000:], "partials": partials(cache)}
        slow.close()

        # stale private folders: one of a process that is gone goes at the next retrieve, a live one stays
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            for pid in (gone.pid, living.pid):
                (cache / f".0123456789abcdef0123.partial-{pid}").mkdir(parents=True)
                (cache / f".0123456789abcdef0123.partial-{pid}" / "x.dcm").write_bytes(b"\0" * 1000)
            seen["stale_before"] = partials(cache)
            seen["stale_retrieve"] = attempt(lambda: retrieve_study(parse_study(f"{DIMSE}/{study_uid}")))
            seen["stale_after"] = partials(cache)
            seen["stale_pids"] = {"gone": gone.pid, "living": living.pid}
        finally:
            living.kill()
            living.wait()
        seen.update(study_uid=study_uid, removed_uid=removed_uid, vanishing_uid=vanishing_uid)
    finally:
        orthanc.stop()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
