"""Run by test_serve.py inside a loopback-only network namespace: starts Orthanc and ``python main.py serve``
(the DICOM AI node) as a subprocess, then plays the senders: strangers, a wrong called AE title, a non-MG
instance, one over the size limit, a four-view MG study (analysed after the quiet period, its SR, SEG and
ePDF stored on Orthanc), a full quota; SIGTERM; a restart. Prints one JSON line of what it saw."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import requests  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from pynetdicom import AE  # noqa: E402

from app.pacs.scp import study_folder  # noqa: E402
from tests.inference.intake.dicom_factory import make_dataset, sample_pixels  # noqa: E402
from tests.pacs.orthanc import AET, DICOM_PORT, HTTP_PORT, PASSWORD, USER, Orthanc  # noqa: E402

NODE_AET, NODE_PORT = "AINODE", 11112
SENDER = "MODALITY"
DEMO_MODEL = ROOT / "resources" / "demo" / "model.pt"
VERIFICATION = "1.2.840.10008.1.1"


def until(condition, seconds: float, what: str):
    """Poll ``condition`` until it returns something true, or fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def associate(calling: str, called: str = NODE_AET, contexts=((VERIFICATION, None),)):
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for sop, syntax in contexts:
        ae.add_requested_context(sop, syntax) if syntax else ae.add_requested_context(sop)
    return ae.associate("127.0.0.1", NODE_PORT, ae_title=called)


def attempt(calling: str, called: str = NODE_AET) -> dict:
    """An association with C-ECHO: established, or rejected with the reason the node gave."""
    assoc = associate(calling, called)
    seen = {"established": assoc.is_established, "rejected": assoc.is_rejected}
    if assoc.is_established:
        seen["echo"] = int(assoc.send_c_echo().Status)
        assoc.release()
    elif assoc.is_rejected:
        answer = assoc.acceptor.primitive
        seen.update(result=answer.result, source=answer.result_source, diagnostic=answer.diagnostic)
    return seen


def store(datasets, calling: str = SENDER) -> list[dict]:
    """C-STORE of each dataset in one association; the node's status and comment for each."""
    pairs = dict.fromkeys((str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets)
    assoc = associate(calling, contexts=tuple(pairs))
    if not assoc.is_established:
        raise RuntimeError(f"association as {calling} was not established")
    answers = []
    for dataset in datasets:
        status = assoc.send_c_store(dataset)
        if "Status" not in status:  # no answer: the node aborted the association (an instance over its limit)
            answers.append({"status": None, "comment": "aborted"})
            break
        answers.append({"status": int(status.Status), "comment": str(status.get("ErrorComment", ""))})
    assoc.release()
    return answers


def encoded_size(dataset) -> int:
    from pydicom.filebase import DicomBytesIO  # noqa: PLC0415
    from pydicom.filewriter import write_dataset  # noqa: PLC0415

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False  # Explicit VR Little Endian, as made
    write_dataset(buffer, dataset)
    return buffer.tell()


def start_node(out: Path, logs: Path, quota_gb: float, run: int) -> tuple[subprocess.Popen, Path, Path]:
    stdout, stderr = logs / f"serve{run}.out", logs / f"serve{run}.err"
    command = [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(NODE_PORT), "--ae-title", NODE_AET,
               "--allow", SENDER, "PINNED@10.1.2.3", "--out", str(out), "--models", str(DEMO_MODEL),
               "--send", f"dimse://{AET}@127.0.0.1:{DICOM_PORT}", "--quiet-s", "1", "--retry-s", "1",
               "--max-instance-mb", "4", "--quota-gb", repr(quota_gb), "--device", "cpu"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=stdout.open("w"), stderr=stderr.open("w"),
                               env={**os.environ, "MAMMO_READER_HOME": str(logs / "home")})
    until(lambda: "listening as" in stdout.read_text() or process.poll() is not None, 120, "the node to listen")
    if process.poll() is not None:
        raise RuntimeError(f"serve ended with {process.returncode}: {stderr.read_text()[-3000:]}")
    return process, stdout, stderr


def terminate(process: subprocess.Popen) -> dict:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        rc = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        rc = process.wait()
    return {"rc": rc, "seconds": time.monotonic() - started}


def orthanc_modalities(study_uid: str) -> list[str]:
    auth = (USER, PASSWORD)
    found = requests.post(f"http://127.0.0.1:{HTTP_PORT}/tools/lookup", data=study_uid, auth=auth, timeout=10).json()
    ids = [f["ID"] for f in found if f["Type"] == "Study"]
    if not ids:
        return []
    series = requests.get(f"http://127.0.0.1:{HTTP_PORT}/studies/{ids[0]}/series", auth=auth, timeout=10).json()
    return sorted(s["MainDicomTags"].get("Modality", "") for s in series)


def main() -> None:
    seen: dict = {}
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        out, logs = work / "node", work / "logs"
        logs.mkdir()
        study_uid = generate_uid()
        views = [make_dataset(sample_pixels(v), v, StudyInstanceUID=study_uid) for v in ("L-CC", "L-MLO", "R-CC", "R-MLO")]
        one_more = make_dataset(sample_pixels("L-CC"), "L-CC", StudyInstanceUID=generate_uid())
        # the study fits (with room for the files' meta headers); one more instance does not
        quota_gb = (sum(encoded_size(d) for d in views) + encoded_size(one_more) // 2) / (1 << 30)
        orthanc = None
        try:
            node, stdout, stderr = start_node(out, logs, quota_gb, 1)  # Orthanc (the destination) is down
            seen["stranger"] = attempt("STRANGER")
            seen["wrong_called"] = attempt(SENDER, "NOTTHENODE")
            seen["pinned_elsewhere"] = attempt("PINNED")
            seen["allowed"] = attempt(SENDER)
            other_uid = generate_uid()
            not_mg = make_dataset(sample_pixels("L-CC"), "L-CC", sop_class="1.2.840.10008.5.1.4.1.1.7",
                                  StudyInstanceUID=other_uid, Modality="OT")
            big_uid = generate_uid()
            big = make_dataset(np.zeros((1600, 1600), np.uint16), "L-CC", StudyInstanceUID=big_uid)  # 5 MB
            seen["not_mg"], seen["too_big"] = store([not_mg, big])
            seen["not_mg_kept"] = study_folder(out, other_uid).exists()
            seen["too_big_kept"] = study_folder(out, big_uid).exists()
            seen["study"] = store(views)
            seen["study_files"] = len(list(study_folder(out, study_uid).glob("*.dcm")))
            seen["full"] = store([one_more])
            until(lambda: "NOT SENT" in stdout.read_text(), 120, "the analysis and a failed send")
            orthanc = Orthanc(work / "orthanc")  # the destination comes up: the node sends again by itself
            until(lambda: "sent " in stdout.read_text().split("NOT SENT", 1)[1], 60, "the retried send")
            seen["modalities"] = orthanc_modalities(study_uid)
            results = out / "results" / study_folder(out, study_uid).name
            seen["result_files"] = sorted(p.name for p in results.iterdir())
            marker = until(lambda: list((out / "results" / ".batch" / "done").glob("*.json")), 10, "the marker")[0]
            stamps = {p.name: p.stat().st_mtime_ns for p in [marker, *results.iterdir()]}
            seen["stop"] = terminate(node)
            seen["stdout1"], seen["stderr1"] = stdout.read_text(), stderr.read_text()
            node, stdout, stderr = start_node(out, logs, quota_gb, 2)
            until(lambda: "already analysed" in stdout.read_text(), 60, "the restarted node to take up the study")
            seen["stop2"] = terminate(node)
            seen["stdout2"], seen["stderr2"] = stdout.read_text(), stderr.read_text()
            seen["unchanged"] = stamps == {p.name: p.stat().st_mtime_ns for p in [marker, *results.iterdir()]}
            seen["modalities_after_restart"] = orthanc_modalities(study_uid)
            seen["inbox_names"] = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        finally:
            if orthanc is not None:
                orthanc.stop()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
