"""Reading a screening batch on the workstation: pixels after the Next key, the AI ready on arrival, GUI stalls.

    python bench/bench_reading.py [--exams 6] [--dwell 5] [--prefetch 2] [--shape 2000x1200]

Writes ``--exams`` synthetic four-view MG DICOM exams (the phantom) into a folder, opens the workstation
offscreen on that folder as a worklist with the built-in demo model (blind first, as shipped), and presses
Next exam every ``--dwell`` seconds after each exam's pixels are on screen. A 10 ms QTimer probes the GUI
thread all along: the longest gap between two ticks is the longest stall. Prints the CPU, then a last line of
JSON: ``{"exams", "pixels_ms_median", "ai_ready_on_arrival", "longest_stall_ms"}``. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "none of avx2/avx512"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def watch_stalls(ticks: list[float], over: float = 0.1) -> None:
    """A daemon thread that samples the GUI thread's stack while it has not ticked for ``over`` seconds and
    prints the innermost frames of the project's code once per stall."""
    import threading  # noqa: PLC0415
    import traceback  # noqa: PLC0415

    gui = threading.main_thread().ident

    def watch() -> None:
        reported = 0.0
        while True:
            time.sleep(0.02)
            if not ticks or ticks[-1] == reported:
                continue
            late = time.perf_counter() - ticks[-1]
            if late > over:
                reported = ticks[-1]
                frame = sys._current_frames().get(gui)
                stack = traceback.extract_stack(frame) if frame is not None else []
                ours = [f for f in stack if "/app/" in f.filename or "/inference/" in f.filename] or stack[-3:]
                print(f"  stall > {1000 * over:.0f} ms, {ticks[-1] - ticks[0]:.1f} s in, at:", " <- ".join(
                    f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(ours[-4:])), flush=True)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exams", type=int, default=6)
    parser.add_argument("--dwell", type=float, default=5.0, help="seconds on each exam before Next")
    parser.add_argument("--prefetch", type=int, default=2, help="exams prefetched ahead (the preference)")
    parser.add_argument("--shape", default="", help="rows x cols of each synthetic view (default: the phantom's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--why", action="store_true",
                        help="print where the GUI thread was during each stall over 100 ms (a sampling watchdog)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_reading_"))
    os.environ["MAMMO_READER_HOME"] = str(work / "home")

    import torch  # noqa: PLC0415
    from PySide6.QtCore import QTimer  # noqa: PLC0415
    from PySide6.QtWidgets import QApplication  # noqa: PLC0415

    from app.demo import demo_model_path  # noqa: PLC0415
    from app.settings import AppSettings  # noqa: PLC0415
    from app.study.store import Store  # noqa: PLC0415
    from app.ui.workstation.main_window import MainWindow  # noqa: PLC0415
    from inference.intake.phantom import generate_exam, write_dicom_exam  # noqa: PLC0415

    print(f"CPU: {cpu_model()}; flags: {cpu_flags()}; {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; device {args.device}")
    kwargs = {"shape": tuple(int(v) for v in args.shape.split("x"))} if args.shape else {}
    for number in range(args.exams):
        write_dicom_exam(generate_exam(700 + number, **kwargs), work / "batch" / f"exam{number:03d}")
    model = demo_model_path()
    if model is None:
        raise SystemExit("the demo model (resources/demo/model.pt) is missing")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    store = Store(work / "home" / "store.sqlite")
    settings = AppSettings(device=args.device, prefetch_exams=args.prefetch, blind_first=True, auto_run=True)
    window = MainWindow(settings, store, model_path=str(model))
    window.resize(1600, 1000)
    window.show()
    started = time.perf_counter()
    while time.perf_counter() - started < 1.0:  # the window's start-up (its first paints) is not the reading
        app.processEvents()
        time.sleep(0.01)

    ticks: list[float] = []
    probe = QTimer()
    probe.setInterval(10)
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    pressed: dict[str, float] = {}
    pixels_ms: list[float] = []
    ready: list[bool] = []
    controller = window.worklist

    def on_shown() -> None:
        if "at" in pressed:
            pixels_ms.append(1000 * (time.perf_counter() - pressed.pop("at")))
            QTimer.singleShot(int(args.dwell * 1000), press_next)

    def on_arrived(index: int, ai_ready: bool) -> None:
        ready.append(ai_ready)
        print(f"  exam {index + 1}: AI {'ready on arrival' if ai_ready else 'not ready on arrival'}"
              f"{f', {ticks[-1] - ticks[0]:.1f} s in' if ticks else ''}", flush=True)

    def press_next() -> None:
        if len(pixels_ms) >= args.exams:
            app.quit()
            return
        pressed["at"] = time.perf_counter()
        controller.next()

    window.examShown.connect(on_shown)
    controller.arrived.connect(on_arrived)
    probe.start()
    if args.why:
        watch_stalls(ticks)
    pressed["at"] = time.perf_counter()  # the first exam: opened with the worklist
    controller.open_source(work / "batch")
    app.exec()
    probe.stop()
    window.close()
    store.close()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    later = pixels_ms[1:] or pixels_ms
    print(f"pixels after Next (ms): {', '.join(f'{v:.0f}' for v in pixels_ms)} (the first includes opening)")
    print(json.dumps({"exams": len(pixels_ms), "pixels_ms_median": round(statistics.median(later), 1),
                      "ai_ready_on_arrival": sum(ready), "longest_stall_ms": round(1000 * max(gaps), 1)}))


if __name__ == "__main__":
    main()
