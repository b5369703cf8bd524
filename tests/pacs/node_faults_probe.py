"""Run by test_node_faults.py inside a loopback-only network namespace and a mount namespace of its own (small
tmpfs mounts stand in for a full or read-only disk): plays the peers a hands-on test of the AI node found
badly served, and prints one JSON line of what the receiver answered and logged.

``scp``: the Storage SCP alone (the study in two transfer syntaxes, an allowed AE title from another host,
an instance without pixels or whose pixels cannot be laid out, a non-MG instance and one over the limit, a full
and a read-only inbox, a CT-only association, floods of connections that ask for nothing). ``node``: ``serve``
on a read-only and on a full DIR, stale temporary files of the results folder at start-up, a second node on
the DIR of a running one, and a study whose results could not be written for a full disk, analysed again once
the disk has room (and not while it has none)."""

from __future__ import annotations

import io
import json
import logging
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

from pydicom.uid import ImplicitVRLittleEndian, generate_uid  # noqa: E402
from pynetdicom import AE  # noqa: E402

from tests.inference.intake.dicom_factory import make_dataset, sample_pixels  # noqa: E402

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
DEMO_MODEL = ROOT / "resources" / "demo" / "model.pt"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)


def associate(port: int, calling: str = "PACS", called: str = "NODE", contexts=((VERIFICATION, None),),
              source: str | None = None):
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for sop, syntax in contexts:
        ae.add_requested_context(sop, syntax) if syntax else ae.add_requested_context(sop)
    return ae.associate("127.0.0.1", port, ae_title=called, **({"bind_address": (source, 0)} if source else {}))


def store(port: int, datasets, calling: str = "PACS") -> list:
    """C-STORE of each dataset in one association: [status, comment] each (None: aborted)."""
    pairs = dict.fromkeys((str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets)
    assoc = associate(port, calling, contexts=tuple(pairs))
    answers = []
    for dataset in datasets:
        status = assoc.send_c_store(dataset)
        if "Status" not in status:
            answers.append([None, "aborted"])
            break
        answers.append([int(status.Status), str(status.get("ErrorComment", ""))])
    if assoc.is_established:
        assoc.release()
    return answers


def echo(port: int, calling: str, source: str | None = None):
    assoc = associate(port, calling, source=source)
    if assoc.is_established:
        assoc.release()
        return "accepted"
    return assoc.acceptor.primitive.diagnostic if assoc.is_rejected else "no answer"


def views(study_uid: str, names=("L-CC", "R-CC"), shrink: int = 16, **attributes):
    return [make_dataset(sample_pixels(v, shrink=shrink), v, StudyInstanceUID=study_uid, **attributes) for v in names]


def implicit(dataset):
    import copy  # noqa: PLC0415

    again = copy.deepcopy(dataset)
    again.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return again


def until(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def scp_scenarios(work: Path, log: io.StringIO) -> dict:
    from app.pacs import scp  # noqa: PLC0415
    from app.pacs.node import instances_digest, legacy_instances_digest  # noqa: PLC0415
    from app.pacs.scp import InboxLimits, StorageSCP, parse_senders, study_folder  # noqa: PLC0415

    seen: dict = {}

    senders = []

    def receiver(inbox: Path, allowed=("PACS",), limits=InboxLimits()) -> tuple[StorageSCP, int]:
        port = free_port()
        return StorageSCP("NODE", port, inbox, allowed=parse_senders(allowed), limits=limits,
                          on_kept=lambda folder, sender: senders.append(sender)), port

    def said(since: int) -> str:
        return log.getvalue()[since:]

    # the same study in explicit and in implicit VR little endian: the same digest
    study_uid = generate_uid()
    study = views(study_uid)
    for name, datasets in (("explicit", study), ("implicit", [implicit(d) for d in study])):
        server, port = receiver(work / name)
        try:
            seen[f"{name}_answers"] = store(port, datasets)
        finally:
            server.stop()
        folder = study_folder(work / name, study_uid)
        seen[f"{name}_digest"], seen[f"{name}_legacy"] = instances_digest(folder), legacy_instances_digest(folder)
    seen["senders"] = sorted(set(senders))  # as the node's "FAILED study … (sent by …)" names them

    # an allowed AE title from another host; instances refused, cut off, without pixels; a CT-only association
    mark = len(log.getvalue())
    server, port = receiver(work / "inbox", allowed=("PACS", "PINNED@127.0.0.2"),
                            limits=InboxLimits(max_instance_bytes=200 << 10))
    try:
        seen["pinned_elsewhere"] = echo(port, "PINNED")
        seen["pinned_home"] = echo(port, "PINNED", source="127.0.0.2")
        no_rows, no_columns = views(generate_uid(), ("L-CC", "R-CC"))
        no_rows.Rows = 0
        no_columns.Columns = 0
        not_mg = views(generate_uid(), ("L-CC",), Modality="CT")[0]
        seen["empty"] = store(port, [no_rows, no_columns])
        no_bits, no_frames = views(generate_uid(), ("L-CC", "R-CC"))
        no_bits.BitsAllocated = 0
        no_frames.NumberOfFrames = 0
        seen["impossible"] = store(port, [no_bits, no_frames])
        seen["empty_kept"] = len(list((work / "inbox").glob("*/*.dcm")))
        seen["not_mg"] = store(port, [not_mg])
        seen["too_big"] = store(port, views(generate_uid(), ("L-CC",), shrink=2))
        ct = associate(port, contexts=((CT_IMAGE, None),))
        seen["ct_only"] = {"established": ct.is_established, "accepted": len(ct.accepted_contexts)}
        if ct.is_established:
            ct.release()
        until(lambda: "proposed only" in said(mark), 5)
    finally:
        server.stop()
    seen["log_peers"] = said(mark)

    # a full inbox disk and a read-only one: each instance 0xA700 with the cause; logged once an association
    for name, options in (("full", "size=16k"), ("readonly", "size=1m")):
        inbox = work / f"inbox-{name}"
        mount_tmpfs(inbox, options)
        if name == "readonly":
            subprocess.run(["mount", "-o", "remount,ro", str(inbox)], check=True)
        mark = len(log.getvalue())
        server, port = receiver(inbox)
        try:
            seen[f"{name}_answers"] = store(port, views(generate_uid(), ("L-CC", "R-CC", "L-MLO"), shrink=8))
            until(lambda: "more instance(s)" in said(mark), 5)
        finally:
            server.stop()
        seen[f"{name}_log"] = said(mark)

    # connection floods: one host past its cap (one line at once, then one count at the interval's end), and
    # connections of many hosts that say nothing until the hello timeout (one summary line)
    scp.MAX_SILENT_PER_HOST, scp.NOTE_INTERVAL_S, scp.HELLO_TIMEOUT_S = 3, 2.0, 3.0
    mark = len(log.getvalue())
    server, port = receiver(work / "inbox-flood")
    held = []
    try:
        for _ in range(3):
            held.append(socket.create_connection(("127.0.0.1", port)))
        until(lambda: sum(a.requestor.primitive is None for a in server.server.active_associations) == 3, 5)
        for _ in range(6):  # past the cap: closed as they come
            extra = socket.create_connection(("127.0.0.1", port))
            extra.settimeout(5)
            try:
                extra.recv(1)
            except OSError:
                pass
            extra.close()
        seen["flood_at_once"] = said(mark)
        for host in range(10, 14):
            for _ in range(2):
                connection = socket.socket()
                connection.bind((f"127.0.0.{host}", 0))
                connection.connect(("127.0.0.1", port))
                held.append(connection)
        until(lambda: "ended without asking" in said(mark) and "more connection(s)" in said(mark), 15)
        seen["flood_later"] = said(mark)
    finally:
        for connection in held:
            connection.close()
        server.stop()
    # an association flood from a peer not on the allow-list: one line at once, then one count an interval
    mark = len(log.getvalue())
    server, port = receiver(work / "inbox-rejections")
    try:
        for number in range(8):  # a stranger that changes its AE title at each request is one flood
            assoc = associate(port, calling="STRANGER" if number < 7 else "STRANGER8")
            assert assoc.is_rejected
        seen["rejections_at_once"] = said(mark)
        until(lambda: "more association(s)" in said(mark), 15)
        seen["rejections_later"] = said(mark)
        seen["rejections_counted"] = [server.rejected, server.rejected_peers]
    finally:
        server.stop()
    return seen


def serve(out: Path, home: Path, logs: Path) -> dict:
    """``serve`` on ``out``: how it ended (stopped by SIGTERM if it came to listen)."""
    command = [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(free_port()), "--ae-title", "NODE",
               "--allow", "PACS", "--out", str(out), "--models", str(DEMO_MODEL), "--device", "cpu"]
    logs.mkdir(parents=True, exist_ok=True)
    stdout, stderr = logs / "serve.out", logs / "serve.err"
    started = time.monotonic()
    with stdout.open("w") as out_file, stderr.open("w") as err_file:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out_file, stderr=err_file,
                                   env={**os.environ, "MAMMO_READER_HOME": str(home)})
    until(lambda: process.poll() is not None or "listening as" in stdout.read_text(), 90)
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return {"rc": process.returncode, "stdout": stdout.read_text(), "stderr": stderr.read_text()[-2000:],
            "seconds": time.monotonic() - started}


def node_scenarios(work: Path) -> dict:
    from app.archive.unit import BatchOptions  # noqa: PLC0415
    from app.pacs.node import AiNode, NodeOptions  # noqa: PLC0415
    from app.pacs.scp import keep_instance, study_folder  # noqa: PLC0415
    from inference.weights import load_model_groups  # noqa: PLC0415

    seen: dict = {}
    home = work / "home"
    # serve on a read-only and on a full DIR: refused at start, saying why, before the models load
    for name, options in (("readonly", "size=1m"), ("full", "size=16k")):
        out = work / f"out-{name}"
        mount_tmpfs(out, options)
        if name == "readonly":
            subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        seen[f"serve_{name}"] = serve(out, home, work / f"logs-{name}")

    # a killed node's half-written results go at start-up
    out = work / "out-stale"
    results = out / "results"
    (results / "abc").mkdir(parents=True)
    (results / ".batch" / "done").mkdir(parents=True)
    stale = [results / "abc" / ".X.pdf.ubfpswz7.part", results / ".batch" / "done" / ".k.json.1234.part"]
    for path in stale:
        path.write_bytes(b"")
    (results / "abc" / "X.pdf").write_bytes(b"%PDF")
    node = AiNode(NodeOptions(ae_title="NODE", port=free_port(), out=out, allowed=()), [])
    printed = io.StringIO()
    real_stdout, sys.stdout = sys.stdout, printed
    try:
        node.start()
    finally:
        sys.stdout = real_stdout
        if node.scp is not None:
            node.scp.stop()
    seen["stale_left"] = [str(p.relative_to(out)) for p in stale if p.exists()]
    seen["stale_kept"] = (results / "abc" / "X.pdf").exists()
    seen["stale_said"] = printed.getvalue()

    # a second node on the DIR of a running one (here writing a result): refused before it touches anything there
    from app.pacs.node import AiNode as Node  # noqa: PLC0415
    from inference.errors import MammoError  # noqa: PLC0415
    from inference.files import atomic_path  # noqa: PLC0415

    out = work / "out-shared"
    first = Node(NodeOptions(ae_title="NODE", port=free_port(), out=out, allowed=()), [])
    printed = io.StringIO()
    real_stdout, sys.stdout = sys.stdout, printed
    try:
        first.start()
        try:
            with atomic_path(out / "results" / "12345" / "report.json") as temporary:  # what the unit does
                temporary.write_bytes(b"{}")
                second = Node(NodeOptions(ae_title="NODE", port=free_port(), out=out, allowed=()), [])
                try:
                    second.start()
                    seen["second_node"] = "started"
                    second.scp.stop()
                    second.release()
                except MammoError as error:
                    seen["second_node"] = str(error)
                seen["second_serve"] = serve(out, home, work / "logs-second")
                seen["second_left"] = sorted(p.name for p in (out / "results" / "12345").iterdir())
            seen["first_wrote"] = (out / "results" / "12345" / "report.json").read_text()
        except OSError as error:  # its temporary file was removed under it
            seen["first_wrote"] = f"{type(error).__name__}: {error.strerror}"
        stop = threading.Event()
        stop.set()
        first.run(stop)  # stops at once, letting DIR go
        third = Node(NodeOptions(ae_title="NODE", port=free_port(), out=out, allowed=()), [])
        third.start()  # DIR is free again
        third.scp.stop()
        third.release()
        seen["third_node"] = "started"
    finally:
        sys.stdout = real_stdout
    seen["shared_dir"] = str(out)

    # a study whose results do not fit on the disk: analysed again every retry_s, and written once it has room
    out = work / "out-retry"
    out.mkdir()
    mount_tmpfs(out / "results", "size=48k")
    groups = load_model_groups([str(DEMO_MODEL)])
    batch = BatchOptions(formats=("json", "pdf"), device="cpu")
    node = AiNode(NodeOptions(ae_title="NODE", port=0, out=out, allowed=(), batch=batch, retry_s=0.5), groups)
    study_uid = generate_uid()
    folder = study_folder(out, study_uid)
    for dataset in views(study_uid, ("L-CC", "L-MLO", "R-CC", "R-MLO"), shrink=8):
        keep_instance(folder, dataset)
    bad = study_folder(out, "1.2.3.404")  # a study that fails for its content: never retried by itself
    keep_instance(bad, views("1.2.3.404", ("L-CC",), shrink=8)[0])
    import app.pacs.node as node_module  # noqa: PLC0415

    analysed = []  # the studies the models ran on, in order
    process = node_module.process
    node_module.process = lambda item, *args, **kwargs: analysed.append(Path(item.path).name) or process(
        item, *args, **kwargs)
    printed = io.StringIO()
    real_stdout, sys.stdout = sys.stdout, printed
    try:
        node._take(folder)  # noqa: SLF001
        node._take(bad)  # noqa: SLF001
        seen["retry_due_at_once"] = [p.name for p in node._due()]  # noqa: SLF001
        time.sleep(0.6)
        seen["retry_due"] = [p.name for p in node._due()]  # noqa: SLF001
        for due in seen["retry_due"]:  # the disk still full: tried (the models not run), and not said again
            node._take(out / due)  # noqa: SLF001
        seen["retry_wait"] = node._rewrite_wait[folder]  # noqa: SLF001 - doubled
        time.sleep(0.6)
        seen["retry_due_early"] = [p.name for p in node._due()]  # noqa: SLF001 - not yet: the wait doubled
        subprocess.run(["mount", "-o", "remount,size=64m", str(out / "results")], check=True)
        time.sleep(0.5)
        for due in node._due():  # noqa: SLF001
            node._take(due)  # noqa: SLF001
        seen["retry_due_after"] = [p.name for p in node._due()]  # noqa: SLF001
    finally:
        sys.stdout = real_stdout
        node_module.process = process
    seen["retry_analysed"] = analysed
    seen["retry_said"] = printed.getvalue()
    seen["retry_folders"] = [folder.name, bad.name]
    seen["retry_results"] = sorted(p.suffix for p in (out / "results" / folder.name).iterdir())
    return seen


def main() -> None:
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("app.pacs").addHandler(handler)
    logging.getLogger("app.pacs").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        try:
            seen = scp_scenarios(work, log) if sys.argv[1] == "scp" else node_scenarios(work)
        finally:
            subprocess.run(f"grep -o ' {work}/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l", shell=True,
                           check=False)
    seen["threads"] = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
