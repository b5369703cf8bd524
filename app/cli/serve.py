"""``python main.py serve --port P --allow AET[@HOST] … --out DIR``: the headless DICOM AI node.

SIGTERM (and Ctrl+C) stop it cleanly: it stops listening, aborts the associations still open, abandons the
study in analysis (the unit's writes are atomic, its marker comes last: a restart analyses it) and exits 0.
A DIR it cannot write in (read-only, full), or that another node uses, is refused before anything else, with the
reason (exit 1); the node holds DIR's lock for as long as it runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from app.cli.batch import formats_of
from app.cli.common import model_sources


def run(args: argparse.Namespace) -> int:
    from app.archive.unit import BatchOptions  # noqa: PLC0415
    from app.pacs.node import AiNode, NodeOptions, NodeStopping, check_out_folder, hold_out_folder  # noqa: PLC0415
    from app.pacs.nodes import DEFAULT_AE_TITLE, parse_address  # noqa: PLC0415
    from app.pacs.scp import InboxLimits, parse_senders  # noqa: PLC0415
    from inference.errors import MammoError  # noqa: PLC0415
    from inference.weights import load_model_groups  # noqa: PLC0415

    formats = formats_of(args.format)
    if formats is None:
        return 2
    allowed = parse_senders(args.allow or [])
    if not allowed:
        print("error: no sender is allowed, so nobody could send a study; name them with --allow AET[@HOST]",
              file=sys.stderr)
        return 2
    ae_title = args.ae_title or DEFAULT_AE_TITLE
    destination = None
    if args.send:
        if not {"sr", "seg", "epdf"} & set(formats):
            print("error: --send stores the SR, SEG and Encapsulated PDF; add sr, seg and/or epdf to --format",
                  file=sys.stderr)
            return 2
        destination, study = parse_address(args.send, ae_title)
        if study is not None:
            print(f"error: --send takes a node, not a study: {args.send}", file=sys.stderr)
            return 2
    for name, value in (("--quiet-s", args.quiet_s), ("--max-instance-mb", args.max_instance_mb),
                        ("--quota-gb", args.quota_gb), ("--retry-s", args.retry_s)):
        if not value > 0:
            print(f"error: {name} must be more than 0", file=sys.stderr)
            return 2
    try:
        # DIR's lock first, for the node's whole life: a second node on DIR is refused before it probes or cleans
        # up anything there (it removed the running node's half-written results)
        folder_lock = hold_out_folder(Path(args.out))
        check_out_folder(Path(args.out))  # before the models load: said at once
    except MammoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    batch = BatchOptions(formats=tuple(formats), page_size=args.page_size, mode=args.mode or "exact",
                         device=args.device or "auto", allow_missing_views=args.allow_missing_views,
                         ae_title=ae_title)
    limits = InboxLimits(max_instance_bytes=int(args.max_instance_mb * (1 << 20)),
                         quota_bytes=int(args.quota_gb * (1 << 30)))
    options = NodeOptions(ae_title=ae_title, port=args.port, out=Path(args.out), allowed=allowed, bind=args.bind,
                          limits=limits, quiet_s=args.quiet_s, retry_s=args.retry_s, send=destination, batch=batch,
                          keep_s=args.keep_hours * 3600)
    node = AiNode(options, load_model_groups(model_sources(args), percent_t=args.percent_t), folder_lock=folder_lock)
    stop = threading.Event()

    def stopping(signum, frame) -> None:  # noqa: ARG001
        stop.set()
        if node.busy:  # abandon the study in analysis (or its send): nothing half-written stays
            raise NodeStopping()

    sys.stdout.reconfigure(line_buffering=True)  # a service's log: each line as it happens
    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    try:
        node.start()
    except MammoError as error:  # DIR became unwritable while the models loaded
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot listen on {args.bind}:{args.port} ({error.strerror or error})", file=sys.stderr)
        return 1
    try:
        node.run(stop)
    except NodeStopping:
        pass
    print("stopped", flush=True)
    return 0
