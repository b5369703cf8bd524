"""Run in a loopback-only network namespace by test_batch_ray.py: the same archive through the local engine
and through Ray (a local instance with two CPUs and one logical GPU), killing the model actor by its PID
while the Ray run is under way, then the Ray run once more. Prints one JSON line of what it saw."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.archive.run import run_batch  # noqa: E402
from app.archive.sources import read_batch_source  # noqa: E402
from app.archive.unit import BatchOptions  # noqa: E402
from inference.errors import MammoError  # noqa: E402


def journal_done(out: Path) -> list[str]:
    path = out / ".batch" / "journal.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [row[1] for row in csv.reader(handle) if len(row) > 2 and row[2] == "done"]


def summary_of(summary) -> dict:
    return {"done": sorted(o.exam_id for o in summary.done), "skipped": sorted(o.exam_id for o in summary.skipped),
            "failed": {o.exam_id: o.reason for o in summary.failed}}


def main() -> None:
    source, local_out, ray_out, model = sys.argv[1:5]
    items = read_batch_source(source)
    options = BatchOptions(formats=("json", "sr"), device="auto")
    seen: dict = {}
    seen["local"] = summary_of(run_batch(items, [model], local_out, options))

    ray_out = Path(ray_out)
    ray_options = {"workers": 1, "gpus_per_worker": 1, "init": {"num_cpus": 2, "num_gpus": 1}}
    outcome: dict = {}

    def batch() -> None:
        outcome["summary"] = run_batch(items, [model], ray_out, options, engine="ray", ray_options=ray_options)

    started = time.perf_counter()
    worker = threading.Thread(target=batch)
    worker.start()
    killed = None
    workers = ray_out / ".batch" / "workers"
    while worker.is_alive() and killed is None:
        records = [json.loads(p.read_text()) for p in workers.glob("*.json")] if workers.exists() else []
        # mid-run by the actor's own count: two exams analysed and at least three left for it, which it cannot
        # reach before the kill (the journal lags the actor by the write stage: killed at two journaled exams,
        # the actor had once analysed them all, and nothing was left for a replacement to do)
        if records and 2 <= records[0]["analysed"] <= len(items) - 4:
            killed = records[0]["pid"]
            seen["analysed_before_kill"] = records[0]["analysed"]
            seen["done_before_kill"] = len(journal_done(ray_out))
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    worker.join()
    seen["ray_seconds"] = time.perf_counter() - started
    seen["ray"] = summary_of(outcome["summary"])
    seen["killed"] = killed
    seen["workers"] = [json.loads(p.read_text()) for p in sorted(workers.glob("*.json"))]
    seen["journal_done"] = journal_done(ray_out)
    seen["rerun"] = summary_of(run_batch(items, [model], ray_out, options, engine="ray", ray_options=ray_options))
    try:  # two CPU actors on two CPUs would leave nothing to decode with: said, not waited on forever
        run_batch(items, [model], ray_out, options, engine="ray", force=True,
                  ray_options={"workers": 2, "init": {"num_cpus": 2}})
        seen["too_many_workers"] = ""
    except MammoError as error:
        seen["too_many_workers"] = str(error)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
