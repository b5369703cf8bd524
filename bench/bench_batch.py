"""Archive batch throughput: exams per minute of the local engine and of Ray on this machine, and what Ray
adds: once (its start-up, the actors' models, the first decode) and per exam in the steady state (between
the first and the last exam finished).

    python bench/bench_batch.py [--exams 6] [--shape 1600x1000] [--model ../shared/reference/gmic/seeded_state_dict.pt]
                                [--ray-workers 1,2] [--no-ray]

The model is the published-size GMIC with the oracles' seeded weights; the exams are synthetic four-view MG
DICOM exams (the phantom). Every configuration runs the same exams into a fresh folder. Timing is reported,
never asserted. Where nothing else reaches this machine, run it in a loopback-only network namespace:
``unshare -n sh -c 'ip link set lo up && exec python bench/bench_batch.py'``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.archive.run import run_batch  # noqa: E402
from app.archive.sources import read_batch_source  # noqa: E402
from app.archive.unit import BatchOptions  # noqa: E402
from inference.intake.phantom import generate_exam, write_dicom_exam  # noqa: E402


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "none of avx2/avx512"


def timed_batch(items, model: str, out: Path, **kw) -> tuple[float, int, float]:
    """(seconds in all, exams done, steady seconds per exam: between the first and the last exam finished,
    which leaves out what an engine pays once — its start, the models' loading, the first decode)."""
    finished: list[float] = []
    started = time.perf_counter()
    summary = run_batch(items, [model], out, BatchOptions(formats=("json",), device="auto"), percent_t=0.02,
                        progress=lambda *_a, final=False, **_k: None if final else finished.append(time.perf_counter()),
                        **kw)
    seconds = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(f"failed: {summary.failed[0].reason}")
    steady = (finished[-1] - finished[0]) / (len(finished) - 1) if len(finished) > 1 else seconds
    return seconds, len(summary.done), steady


def line(name: str, seconds: float, done: int, steady: float) -> str:
    return (f"  {name:<24} {seconds / done:6.2f} s/exam  {60 * done / seconds:6.1f} exams/min;  steady "
            f"{steady:5.2f} s/exam ({60 / steady:5.1f} exams/min), once {seconds - steady * done:5.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exams", type=int, default=6)
    parser.add_argument("--shape", default="1600x1000", help="rows x cols of each synthetic view")
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "shared" / "reference" / "gmic"
                                               / "seeded_state_dict.pt"))
    parser.add_argument("--ray-workers", default="1", help="model actors to try (comma-separated; each holds a "
                        "CPU, and one CPU must stay free to decode and write)")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    rows, cols = (int(v) for v in args.shape.split("x"))
    import torch  # noqa: PLC0415

    print(f"CPU flags: {cpu_flags()}; {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; CUDA: {torch.cuda.is_available()}")
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        for number in range(args.exams):
            write_dicom_exam(generate_exam(900 + number, shape=(rows, cols)), work / "archive" / f"exam{number}")
        items = read_batch_source(work / "archive")
        print(f"{len(items)} exams of 4 views {rows}x{cols}, model {Path(args.model).name}")
        results = {}
        results["local"] = timed_batch(items, args.model, work / "local")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        results["local, 1 thread"] = timed_batch(items, args.model, work / "local-1")
        torch.set_num_threads(threads)
        for name, measured in results.items():
            print(line(name, *measured))
        if args.no_ray:
            return
        import ray  # noqa: PLC0415

        from app.archive.ray_engine import start_local_ray  # noqa: PLC0415

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        started = time.perf_counter()
        start_local_ray({})  # as the batch starts it: loopback only, its own home
        ray.shutdown()
        print(f"  Ray start-up + shut-down of a local instance alone: {time.perf_counter() - started:.1f} s")
        local_steady = results["local, 1 thread"][2]
        for workers in (int(w) for w in args.ray_workers.split(",")):
            seconds, done, steady = timed_batch(items, args.model, work / f"ray-{workers}", engine="ray",
                                                ray_options={"workers": workers})
            print(line(f"ray, {workers} actor(s)", seconds, done, steady))
            print(f"    steady exams/min against the local engine with one thread per actor: "
                  f"{local_steady * workers / steady:.2f}x; per exam {steady * workers - local_steady:+.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
