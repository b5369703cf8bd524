"""Run by test_pacs.py inside a loopback-only network namespace: starts Orthanc, stores exams into it with our
C-STORE, then finds, retrieves (C-GET and WADO-RS), analyses and sends results back through the command line,
and provokes each fault. Prints one JSON line of what it saw; the test judges it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from pydicom import dcmread  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from app.pacs import dicomweb, dimse  # noqa: E402
from app.pacs.nodes import PacsError, RemoteNode, parse_address, parse_study  # noqa: E402
from app.pacs.query import StudyQuery  # noqa: E402
from app.pacs.priors import find_priors  # noqa: E402
from app.pacs.retrieve import retrieve_study  # noqa: E402
from app.pacs.scp import StorageSCP, parse_senders, received_studies  # noqa: E402
from app.worklist import read_worklist_source  # noqa: E402
from inference.errors import Cancelled, MammoError  # noqa: E402
from inference.intake.exam import load_exam  # noqa: E402
from inference.intake.phantom import generate_exam, write_dicom_exam  # noqa: E402
from tests.helpers import run_main  # noqa: E402
from tests.pacs.orthanc import (  # noqa: E402
    AET, DICOM_PORT, HTTP_PORT, INBOX_AET, INBOX_PORT, MOVE_PORT, PASSWORD, USER, Orthanc)

DIMSE = f"dimse://{AET}@127.0.0.1:{DICOM_PORT}"
WEB = f"dicomweb+http://127.0.0.1:{HTTP_PORT}/dicom-web"
DEMO_MODEL = ROOT / "resources" / "demo" / "model.pt"
TIMING_SHAPE = (2294, 1914)  # a four-view exam of a common detector size (RLE, 12 bit), for the retrieve times


def other_instance(study_uid: str, modality: str, sop_class: str = "1.2.840.10008.5.1.4.1.1.7",
                   patient: tuple[str, str] = ("Phantom^Other", "PHANTOM-OTHER"),
                   study: tuple[str, str] = ("20250101", "")) -> Dataset:
    """A small 8-bit image of another kind (Secondary Capture by default) in ``study_uid``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study_uid, generate_uid(), modality
    (ds.PatientName, ds.PatientID), (ds.StudyDate, ds.AccessionNumber) = patient, study
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = np.zeros((16, 16), np.uint8).tobytes()
    return ds


def save(ds: Dataset, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / name, enforce_file_format=True)
    return folder / name


STEPS: dict[str, float] = {}


def error_of(call, step: str = "") -> str:
    started = time.perf_counter()
    try:
        call()
    except PacsError as error:
        return str(error)
    finally:
        STEPS[step or f"step{len(STEPS)}"] = round(time.perf_counter() - started, 3)
    return ""


HELD: list = []


def silent_server() -> int:
    """A TCP port that accepts and never answers: a PACS that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    HELD.append(listener)  # kept open to the end: a listener collected early resets the waiting connections
    threading.Thread(target=lambda: HELD.append(listener.accept()), daemon=True).start()
    return listener.getsockname()[1]


def cli(*args: str, env: dict | None = None) -> dict:
    """The command in this process (``run_main``); ``open``, the workstation, in a process of its own."""
    if "open" in args:
        done = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, env={**os.environ, **(env or {})})
    else:
        done = run_main(list(args), env=env)
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pacs_probe_"))
    os.environ["MAMMO_PACS_CACHE"] = str(work / "cache")
    os.environ["MAMMO_READER_HOME"] = str(work / "home")
    seen: dict = {}
    orthanc = Orthanc(work / "orthanc")
    seen["orthanc_ready_s"] = orthanc.ready_s
    try:
        node, _ = parse_address(DIMSE)
        web, _ = parse_address(WEB)
        web = RemoteNode(**{**web.__dict__, "username": USER, "password": PASSWORD})
        # the current exam (RLE compressed, as the demo) plus a Secondary Capture in the same study
        exam = generate_exam(7001, shape=(640, 480))
        files = write_dicom_exam(exam, work / "exam")
        study_uid = str(dcmread(files[0]).StudyInstanceUID)
        first = dcmread(files[0])
        patient = (str(first.PatientName), str(first.PatientID))
        files.append(save(other_instance(study_uid, "OT", patient=patient,
                                         study=(str(first.StudyDate), str(first.AccessionNumber))), work / "exam-extra", "sc.dcm"))
        # a study with three of the four views, and a study with no MG image at all
        partial = [p for p in write_dicom_exam(generate_exam(7002, shape=(640, 480)), work / "partial")
                   if not (dcmread(p).ImageLaterality == "R" and dcmread(p).ViewPosition == "MLO")]
        partial_uid = str(dcmread(partial[0]).StudyInstanceUID)
        not_mg_uid = generate_uid()
        not_mg = [save(other_instance(not_mg_uid, "CT"), work / "not-mg", "ct.dcm")]
        started = time.perf_counter()
        dimse.store_files(node, files + partial + not_mg)
        seen["store_s"] = time.perf_counter() - started
        seen["patient_id"] = str(dcmread(files[0]).PatientID)
        seen["accession"] = str(dcmread(files[0]).AccessionNumber)

        dimse.echo(node)
        dicomweb.echo(web)
        seen["echo"] = "ok"
        seen["wrong_aet"] = error_of(lambda: dimse.echo(parse_address("dimse://NOTORTHANC@127.0.0.1:4242")[0]))
        seen["down"] = error_of(lambda: dimse.echo(parse_address("dimse://ORTHANC@127.0.0.1:4299")[0]))
        hanging = RemoteNode("dimse", "127.0.0.1", silent_server(), called_aet="HANGS", timeout=1.0)
        started = time.perf_counter()
        seen["timeout"] = error_of(lambda: dimse.echo(hanging))
        seen["timeout_s"] = time.perf_counter() - started
        seen["web_down"] = error_of(lambda: dicomweb.echo(parse_address("dicomweb+http://127.0.0.1:8099/dicom-web")[0]))
        wrong = RemoteNode(**{**web.__dict__, "password": "wrong"})
        seen["web_auth"] = error_of(lambda: dicomweb.echo(wrong))

        by_id = StudyQuery(patient_id=seen["patient_id"])
        seen["find_dimse"] = [r.__dict__ for r in dimse.find_studies(node, by_id)]
        seen["find_web"] = [r.__dict__ for r in dicomweb.find_studies(web, by_id)]
        seen["find_accession"] = [r.study_uid for r in dimse.find_studies(node, StudyQuery(accession=seen["accession"]))]
        seen["find_dates"] = [r.study_uid for r in dimse.find_studies(node, StudyQuery(date_from="20260101",
                                                                                      date_to="20261231"))]
        seen["find_partial_views"] = list(next(r for r in dicomweb.find_studies(web, StudyQuery(
            patient_id=str(dcmread(partial[0]).PatientID))) if r.study_uid == str(dcmread(partial[0]).StudyInstanceUID)).views)
        seen["find_none"] = [r.study_uid for r in dimse.find_studies(node, StudyQuery(patient_id="NOBODY"))]
        seen["find_mg_only"] = [r.study_uid for r in dimse.find_studies(node, StudyQuery(patient_id="PHANTOM-OTHER"))]
        seen["find_any"] = [r.study_uid for r in dimse.find_studies(node, StudyQuery(patient_id="PHANTOM-OTHER",
                                                                                    modality=""))]
        seen["study_uid"], seen["partial_uid"], seen["not_mg_uid"] = study_uid, partial_uid, not_mg_uid
        # a name beyond Latin-1: sent undeclared it went out as "??*", a wildcard, and every patient matched
        kanji = other_instance(generate_uid(), "MG", patient=("山田^太郎", "PID-JP"), study=("20250301", ""))
        kanji.SpecificCharacterSet = "ISO_IR 192"
        dimse.store_files(node, [save(kanji, work / "kanji", "kanji.dcm")])
        seen["find_kanji"] = [r.patient_id for r in dimse.find_studies(node, StudyQuery(patient_name="山田*"))]
        # a worklist from a PACS query: the node's MG studies of a date range (and of today: none here)
        os.environ["MAMMO_DICOMWEB_USER"], os.environ["MAMMO_DICOMWEB_PASSWORD"] = USER, PASSWORD
        for protocol, address in (("dimse", DIMSE), ("dicomweb", WEB)):
            items = read_worklist_source(address, "20260101-20261231")
            seen[f"worklist_{protocol}"] = [[i.exam_id, i.location, parse_study(i.location).study_uid] for i in items]
        try:
            seen["worklist_today"] = str(read_worklist_source(DIMSE))
        except MammoError as error:
            seen["worklist_today"] = str(error)

        timing = write_dicom_exam(generate_exam(7003, shape=TIMING_SHAPE), work / "timing")
        timing_uid = str(dcmread(timing[0]).StudyInstanceUID)
        dimse.store_files(node, timing)
        seen["timing_bytes"] = sum(p.stat().st_size for p in timing)
        for protocol, address in (("dimse", f"{DIMSE}/{study_uid}"), ("dicomweb", f"{WEB}/studies/{study_uid}"),
                                  ("dimse_large", f"{DIMSE}/{timing_uid}"),
                                  ("dicomweb_large", f"{WEB}/studies/{timing_uid}")):
            times = []
            for _ in range(3):
                os.environ["MAMMO_DICOMWEB_USER"], os.environ["MAMMO_DICOMWEB_PASSWORD"] = USER, PASSWORD
                started = time.perf_counter()
                study = retrieve_study(parse_study(address), refresh=True)
                times.append(time.perf_counter() - started)
            loaded = load_exam(study.folder)
            seen[f"retrieve_{protocol}"] = {"seconds": sorted(times)[1], "instances": study.instances,
                                            "notes": study.notes, "views": sorted(v.value for v in loaded.views)}
        seen["cached"] = retrieve_study(parse_study(f"{DIMSE}/{study_uid}")).cached
        # a study with a presentation state and a CAD SR beside its images: not offered, they ended Orthanc's
        # study-level C-GET and the study came instance by instance, noted as "could not be retrieved"
        beside = write_dicom_exam(generate_exam(7006, shape=(320, 240)), work / "beside")
        head = dcmread(beside[0])
        owner = (str(head.PatientName), str(head.PatientID))
        when = (str(head.StudyDate), str(head.AccessionNumber))
        beside += [save(other_instance(str(head.StudyInstanceUID), modality, sop_class=sop, patient=owner, study=when),
                        work / "beside-extra", f"{modality}.dcm")
                   for modality, sop in (("PR", "1.2.840.10008.5.1.4.1.1.11.1"),
                                         ("SR", "1.2.840.10008.5.1.4.1.1.88.50"))]
        dimse.store_files(node, beside)
        got = retrieve_study(parse_study(f"{DIMSE}/{head.StudyInstanceUID}"), refresh=True)
        seen["retrieve_beside"] = {"instances": got.instances, "notes": got.notes}
        for protocol, address in (("dimse", f"{DIMSE}/{partial_uid}"), ("dicomweb", f"{WEB}/studies/{partial_uid}")):
            try:
                retrieve_study(parse_study(address), cancel=lambda: True)
                seen[f"cancel_{protocol}"] = "not cancelled"
            except Cancelled:
                seen[f"cancel_{protocol}"] = sorted(p.name for p in (work / "cache").iterdir())
        # a study with one instance in a transfer syntax we cannot decode (MPEG-2) that Orthanc cannot convert
        odd_files = write_dicom_exam(generate_exam(7005, shape=(320, 240)), work / "odd-syntax", compress=False)
        odd = dcmread(odd_files[0])
        odd.SOPInstanceUID = odd.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        odd.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile / Main Level
        odd.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
        odd["PixelData"].VR = "OB"
        odd.save_as(work / "odd-syntax" / "mpeg2.dcm", enforce_file_format=True)
        dimse.store_files(node, [*odd_files, work / "odd-syntax" / "mpeg2.dcm"])
        for protocol, address in (("dimse", f"{DIMSE}/{odd.StudyInstanceUID}"),
                                  ("dicomweb", f"{WEB}/studies/{odd.StudyInstanceUID}")):
            study = retrieve_study(parse_study(address), refresh=True)
            seen[f"undecodable_{protocol}"] = {"instances": study.instances, "notes": study.notes}
        # the patient's prior, two years earlier, on the PACS
        prior_uid = generate_uid()
        prior_files = write_dicom_exam(generate_exam(7004, shape=(640, 480)), work / "prior-raw")
        for path in prior_files:
            ds = dcmread(path)
            ds.PatientID, ds.PatientName, ds.StudyDate = first.PatientID, first.PatientName, "20240115"
            ds.StudyInstanceUID, ds.AccessionNumber = prior_uid, "PRIOR1"
            ds.save_as(path, enforce_file_format=True)
        dimse.store_files(node, prior_files)
        current = load_exam(retrieve_study(parse_study(f"{DIMSE}/{study_uid}")).folder)
        for name, where in (("dimse", node), ("dicomweb", web)):
            found = find_priors(current, node=where)
            seen[f"priors_{name}"] = [(p.date, p.study_uid, p.where) for p in found]
        seen["prior_uid"] = prior_uid
        started = time.perf_counter()
        moved = retrieve_study(parse_study(f"{DIMSE}/{timing_uid}?move={MOVE_PORT}"), refresh=True)
        seen["retrieve_move_large"] = {"seconds": time.perf_counter() - started, "instances": moved.instances,
                                       "views": sorted(v.value for v in load_exam(moved.folder).views)}
        seen["move_unknown_aet"] = error_of(lambda: retrieve_study(
            parse_study(f"{DIMSE}/{study_uid}?move={MOVE_PORT}", calling_aet="NOTREGISTERED"), refresh=True))
        # our receiver on another port than the node's entry for our AE title names: the node cannot deliver
        seen["move_undeliverable"] = error_of(lambda: retrieve_study(
            parse_study(f"{DIMSE}/{timing_uid}?move={MOVE_PORT + 7}"), refresh=True))
        # pushed to our Storage SCP: by our own C-STORE, and by Orthanc itself (its REST "store to modality")
        inbox = work / "inbox"
        receiver = StorageSCP(INBOX_AET, INBOX_PORT, inbox, allowed=parse_senders(["MAMMOREADER", f"{AET}@127.0.0.1"]))
        try:
            dimse.store_files(RemoteNode("dimse", "127.0.0.1", INBOX_PORT, called_aet=INBOX_AET), partial)
            seen["inbox_stranger"] = error_of(lambda: dimse.store_files(
                RemoteNode("dimse", "127.0.0.1", INBOX_PORT, called_aet=INBOX_AET, calling_aet="STRANGER"), partial))
            import requests

            found = requests.post(f"http://127.0.0.1:{HTTP_PORT}/tools/lookup", data=study_uid, auth=(USER, PASSWORD),
                                  timeout=30).json()
            orthanc_id = next(f["ID"] for f in found if f["Type"] == "Study")
            series = requests.get(f"http://127.0.0.1:{HTTP_PORT}/studies/{orthanc_id}/series", auth=(USER, PASSWORD),
                                  timeout=30).json()
            by_modality = {m: [x["ID"] for x in series if x["MainDicomTags"].get("Modality") == m] for m in ("MG", "OT")}
            pushed = requests.post(f"http://127.0.0.1:{HTTP_PORT}/modalities/inbox/store",
                                   json={"Resources": by_modality["MG"], "Synchronous": True},
                                   auth=(USER, PASSWORD), timeout=60)
            seen["push_status"] = pushed.status_code
            # the study's Secondary Capture: not kept, and Orthanc is told so (no Success-then-discard)
            pushed_sc = requests.post(f"http://127.0.0.1:{HTTP_PORT}/modalities/inbox/store",
                                      json={"Resources": by_modality["OT"], "Synchronous": True},
                                      auth=(USER, PASSWORD), timeout=60)
            seen["push_sc_status"] = pushed_sc.status_code
        finally:
            receiver.stop()
        seen["inbox"] = [{"study_uid": s.study_uid, "images": s.images, "date": s.date,
                          "views": sorted(v.value for v in load_exam(s.folder).views)} for s in received_studies(inbox)]
        seen["inbox_refused"] = receiver.refused
        seen["inbox_names"] = sorted(p.name for p in inbox.rglob("*"))
        partial_study = retrieve_study(parse_study(f"{DIMSE}/{partial_uid}"))
        seen["partial_warnings"] = list(load_exam(partial_study.folder).warnings)
        seen["not_mg"] = error_of(lambda: retrieve_study(parse_study(f"{DIMSE}/{not_mg_uid}")))
        seen["no_study"] = error_of(lambda: retrieve_study(parse_study(f"{DIMSE}/1.2.3.4.5.6.7.8.9")))
        rejected = save(other_instance(study_uid, "OT", sop_class="1.2.826.0.1.3680043.8.498.99999", patient=patient),
                        work / "odd",
                        "odd.dcm")
        seen["send_rejected"] = error_of(lambda: dimse.store_files(node, [rejected]))

        env = {"MAMMO_DICOMWEB_USER": USER, "MAMMO_DICOMWEB_PASSWORD": PASSWORD}
        seen["cli_analyze"] = cli("-v", "analyze", f"{DIMSE}/{study_uid}", "--models", str(DEMO_MODEL), "--device", "cpu")
        seen["cli_report_dimse"] = cli("-v", "report", f"{WEB}/studies/{study_uid}", "--out", str(work / "out1"),
                                       "--format", "sr,seg,epdf", "--models", str(DEMO_MODEL), "--device", "cpu",
                                       "--send", DIMSE, env=env)
        seen["cli_report_web"] = cli("report", f"{DIMSE}/{study_uid}", "--out", str(work / "out2"), "--format", "sr,seg",
                                     "--models", str(DEMO_MODEL), "--device", "cpu", "--send", WEB, env=env)
        seen["cli_send_down"] = cli("report", f"{DIMSE}/{study_uid}", "--out", str(work / "out3"), "--format", "sr",
                                    "--models", str(DEMO_MODEL), "--device", "cpu", "--send",
                                    "dimse://ORTHANC@127.0.0.1:4299")
        seen["out3_files"] = sorted(p.name for p in (work / "out3").glob("*.dcm"))
        seen["cli_resend"] = cli("report", f"{DIMSE}/{study_uid}", "--out", str(work / "out3"), "--format", "sr",
                                 "--models", str(DEMO_MODEL), "--device", "cpu", "--send", DIMSE)
        seen["cli_batch_partial"] = cli("batch", f"{DIMSE}/{partial_uid}", "--out", str(work / "out4"), "--models",
                                        str(DEMO_MODEL), "--device", "cpu")
        seen["cli_not_mg"] = cli("analyze", f"{DIMSE}/{not_mg_uid}", "--models", str(DEMO_MODEL), "--device", "cpu")
        seen["partial_arrived"] = partial_arrives(node, work, partial, partial_uid)
        seen["cached_after_send"] = {name: retrieve_study(parse_study(address)).cached for name, address in (
            ("dimse", f"{DIMSE}/{study_uid}"), ("dicomweb", f"{WEB}/studies/{study_uid}"))}
        seen["cli_bad_auth"] = cli("analyze", f"{WEB}/studies/{study_uid}", "--models", str(DEMO_MODEL), "--device",
                                   "cpu", env={"MAMMO_DICOMWEB_USER": USER, "MAMMO_DICOMWEB_PASSWORD": "wrong",
                                               "MAMMO_PACS_CACHE": str(work / "cache2")})
        shot = Path(os.environ.get("PACS_SCREENSHOT") or work / "workstation.png")
        seen["cli_open"] = cli("open", f"{DIMSE}/{study_uid}", "--models", str(DEMO_MODEL), "--device", "cpu",
                               "--screenshot", str(shot), env={"QT_QPA_PLATFORM": "offscreen",
                                                               "MAMMO_PACS_CACHE": str(work / "cache3")})
        seen["screenshot"] = str(shot) if shot.is_file() else ""
        series = StudyQuery(study_uid=study_uid, modality="")
        seen["series_after_send"] = sorted(
            str(ds.Modality) for ds in _series(node, study_uid))
        seen["find_after_send"] = [r.__dict__ for r in dimse.find_studies(node, series)]
        seen["https"] = https_round(work, dcmread(timing[0]))  # a study without our JPEG 2000 SEGs
        seen["steps"] = STEPS
        seen["log"] = (work / "orthanc" / "log.txt").read_text()[-2000:]
    finally:
        orthanc.stop()
    print(json.dumps(seen))


class _TlsFront:
    """https on 127.0.0.1:8443 in front of Orthanc's http DICOMweb (Orthanc 1.10's own https segfaults here,
    in civetweb): each request is passed on as it is and the answer streamed back."""

    def __init__(self, pem: Path) -> None:
        import http.server
        import ssl
        import urllib.request

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                request = urllib.request.Request(f"http://127.0.0.1:{HTTP_PORT}{self.path}", data=body,
                                                 method=self.command)
                for key, value in self.headers.items():
                    if key.lower() not in ("host", "connection", "accept-encoding"):
                        request.add_header(key, value)
                try:
                    answer = urllib.request.urlopen(request, timeout=60)
                except urllib.error.HTTPError as error:
                    answer = error
                data = answer.read()
                self.send_response(answer.status if hasattr(answer, "status") else answer.code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

            def log_message(self, *args) -> None:  # nothing of the requests on the console
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 8443), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def https_round(work: Path, first: Dataset) -> dict:
    """DICOMweb over https (a self-signed certificate for 127.0.0.1, trusted through REQUESTS_CA_BUNDLE):
    QIDO-RS and WADO-RS through dicomweb+https://, and an untrusted certificate refused."""
    key, cert = work / "tls.key", work / "tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    pem = work / "tls.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    front = _TlsFront(pem)
    result: dict = {}
    try:
        uid = str(first.StudyInstanceUID)
        address = f"dicomweb+https://127.0.0.1:8443/dicom-web/studies/{uid}"
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
        result["untrusted"] = error_of(lambda: retrieve_study(parse_study(address), refresh=True), "https-untrusted")
        os.environ["REQUESTS_CA_BUNDLE"] = str(cert)
        node = parse_study(address).node
        result["found"] = [r.study_uid for r in dicomweb.find_studies(node, StudyQuery(patient_id=str(first.PatientID)))]
        study = retrieve_study(parse_study(address), refresh=True)
        result["views"] = sorted(v.value for v in load_exam(study.folder).views)
        result["uid"] = uid
    finally:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
        front.stop()
    return result


def partial_arrives(node, work: Path, partial: list[Path], partial_uid: str) -> dict:
    """The partial study's last view reaches the PACS after the study was cached (retrieved again, not served
    stale), then that view is removed from the PACS (retrieved again without it)."""
    import requests

    def views(address: str) -> dict:
        study = retrieve_study(parse_study(address))
        return {"cached": study.cached, "notes": study.notes,
                "views": sorted(v.value for v in load_exam(study.folder).views)}

    rest = [p for p in (work / "partial").glob("*.dcm") if p not in partial]
    dimse.store_files(node, rest)
    seen = {"dimse": views(f"{DIMSE}/{partial_uid}"), "dimse_again": views(f"{DIMSE}/{partial_uid}"),
            "dicomweb": views(f"{WEB}/studies/{partial_uid}")}
    found = requests.post(f"http://127.0.0.1:{HTTP_PORT}/tools/lookup", data=str(dcmread(rest[0]).SOPInstanceUID),
                          auth=(USER, PASSWORD), timeout=30).json()
    requests.delete(f"http://127.0.0.1:{HTTP_PORT}/instances/{found[0]['ID']}", auth=(USER, PASSWORD), timeout=30)
    seen["dicomweb_removed"] = views(f"{WEB}/studies/{partial_uid}")
    return seen


def _series(node, study_uid: str) -> list[Dataset]:
    """The study's series (C-FIND at series level), to see what was sent back."""
    from pynetdicom import AE  # noqa: PLC0415

    ae = AE(ae_title=node.calling_aet)
    ae.add_requested_context(dimse.FIND)
    assoc = ae.associate(node.host, node.port, ae_title=node.called_aet)
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID, query.Modality, query.SeriesInstanceUID = "SERIES", study_uid, "", ""
    found = [identifier for status, identifier in assoc.send_c_find(query, dimse.FIND)
             if status and status.Status in (0xFF00, 0xFF01)]
    assoc.release()
    return found


if __name__ == "__main__":
    main()
