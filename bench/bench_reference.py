"""Mammo Reader against the published reference code: GMIC and GLAM, one view, alternated processes.

    python bench/bench_reference.py --gmic GMIC_CHECKOUT --glam GLAM_SRC_PARENT [--rounds 3] [--calls 5]

The reference code is not part of this project (it is AGPL): check out nyukat/GMIC into a scratch folder outside
this repository (``GMIC_CHECKOUT/src/modeling/gmic.py``), and GLAM's ``src/modeling`` (``glam.py`` from nyukat/GLAM
with the ``modules.py``, ``common_functions.py``, ``resnet_pytorch.py`` and ``layers.py`` it imports) under
``GLAM_SRC_PARENT/src/modeling``. This script supplies what current torch lacks for them: a ``torchvision``
holding only the 3 x 3 convolution helper (torchvision cannot be installed beside the CPU torch here), and a
window search with floor division (the references divide integer tensors with ``/``, floor division in the torch
they were written for). Before timing, each reference's forward is checked against its shared oracle.

Each round runs, each in a fresh process: the reference, Mammo Reader exact, Mammo Reader fast (GMIC, then GLAM).
A process makes one warm-up call and prints the median of ``--calls`` calls; the table gives the median of the
rounds' medians and each ratio to the reference. The reference runs with glibc's malloc as it is, Mammo Reader with
``reuse_freed_memory()`` as ``main.py`` runs. Measures: GMIC's and GLAM's forward on the exam-0 L-CC oracle input,
and GMIC's single-view ``analyze_exam`` on the L-CC PNG (preprocessing included). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAMMO_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

GMIC_PARAMETERS = {"cam_size": (46, 30), "K": 6, "crop_shape": (256, 256), "post_processing_dim": 256,
                   "num_classes": 2, "use_v1_global": False, "percent_t": 0.02, "device_type": "cpu",
                   "gpu_number": 0}
GLAM_PARAMETERS = {"cam_size": (184, 120), "top_k_per_class": 1, "crop_shape": (512, 512), "percent_k": 0.03,
                   "detection_pooling_percent_k": 0.3, "device_type": "cpu", "gpu_number": 0}
STUB = '''import torch.nn as nn


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups,
                     bias=False, dilation=dilation)
'''


def _window_search(image, window_shape, pooling_logic="avg"):
    """The upper-left cell of the window with the largest mean (first in row-major order on ties), as the
    references compute it, with the floor division their torch did."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    pooled = F.avg_pool2d(image, window_shape, stride=1)
    n, c, _, width = pooled.shape
    flat = pooled.reshape(n, c, -1).argmax(-1)
    rows = torch.div(flat, width, rounding_mode="floor")
    return torch.stack([rows, flat - rows * width], dim=-1)


def _reference_model(family: str, checkout: Path, stub: Path):
    import torch  # noqa: PLC0415

    sys.path[:0] = [str(stub), str(checkout)]
    shared = SHARED / "reference" / family
    state = torch.load(shared / "seeded_state_dict.pt", weights_only=True)
    if family == "gmic":
        from src.modeling import gmic  # noqa: PLC0415
        from src.utilities import tools  # noqa: PLC0415

        tools.get_max_window = _window_search
        model = gmic.GMIC(dict(GMIC_PARAMETERS))
        own = {k for k in model.state_dict()}
        # the published code named the fusion layer fusion_dnn, an earlier snapshot fusion_network
        state = {(k if k in own else k.replace("fusion_dnn", "fusion_network")): v for k, v in state.items()}
    else:
        from src.modeling import common_functions, glam  # noqa: PLC0415

        common_functions.get_max_window = _window_search
        model = glam.MILSingleImageModel(dict(GLAM_PARAMETERS))
    model.load_state_dict(state)
    return model.eval()


def _oracle_input():
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    golden = np.load(SHARED / "reference" / "gmic" / "golden_exam0_L-CC.npz")
    return torch.from_numpy(golden["input"])[None, None]


def child(kind: str, family: str, measure: str, calls: int, checkout: str, stub: str) -> dict:
    """One process's median of ``calls`` calls after a warm-up, and its deviation from the oracle."""
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from timing import median_time  # noqa: PLC0415

    x = _oracle_input()
    golden = np.load(SHARED / "reference" / family / "golden_exam0_L-CC.npz")
    key = "y_fusion" if family == "gmic" else "y_global"
    if kind == "reference":
        model = _reference_model(family, Path(checkout), Path(stub))

        def call():
            with torch.no_grad():
                return model(x)

        deviation = float(np.abs(call().numpy() - golden[key]).max())
        return {"seconds": median_time(call, calls), "deviation": deviation}

    from inference.families.common import numerics, runnable  # noqa: PLC0415
    from inference.memory import reuse_freed_memory  # noqa: PLC0415
    from inference.weights import load_model  # noqa: PLC0415

    reuse_freed_memory()
    loaded = load_model(SHARED / "reference" / family / "seeded_state_dict.pt",
                        **({"percent_t": 0.02} if family == "gmic" else {}))
    device = torch.device("cpu")
    if measure == "analyze":
        import cv2  # noqa: PLC0415

        from inference.intake.views import View  # noqa: PLC0415
        from inference.pipeline import analyze_exam  # noqa: PLC0415

        image = cv2.imread(str(SHARED / "data" / "gmic-exam0" / "0_L-CC.png"), cv2.IMREAD_UNCHANGED)
        run = lambda: analyze_exam({View.L_CC: image}, loaded, device="cpu", mode=kind)  # noqa: E731
        return {"seconds": median_time(run, calls), "deviation": None}
    from inference.families.glam.family import GLAMFamily  # noqa: PLC0415
    from inference.families.gmic.family import GMICFamily  # noqa: PLC0415

    model = runnable(loaded.model, device, kind, (GMICFamily if family == "gmic" else GLAMFamily).fast)
    x = x.contiguous(memory_format=torch.channels_last)

    def forward():
        with numerics(device, kind):
            return model(x)

    out = forward()
    value = out.y_fusion if family == "gmic" else out.y_global
    deviation = float(np.abs(value.float().numpy() - golden[key]).max())
    return {"seconds": median_time(forward, calls), "deviation": deviation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gmic", type=Path, help="a checkout of nyukat/GMIC (holding src/modeling/gmic.py)")
    parser.add_argument("--glam", type=Path, help="the folder holding GLAM's src/modeling")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "FAMILY", "MEASURE"), help=argparse.SUPPRESS)
    parser.add_argument("--stub", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, family, measure = args.child
        checkout = args.gmic if family == "gmic" else args.glam
        print(json.dumps(child(kind, family, measure, args.calls, str(checkout or ""), args.stub)))
        return
    from inference.cpu import cpu_flags_text  # noqa: PLC0415

    import torch  # noqa: PLC0415

    plan = []
    for family, checkout, measures in (("gmic", args.gmic, ("forward", "analyze")), ("glam", args.glam, ("forward",))):
        if checkout is None:
            print(f"{family}: no reference folder given (--{family}); skipped")
            continue
        if not checkout.is_dir():
            sys.exit(f"{checkout}: no such folder (--{family})")
        plan += [(family, measure) for measure in measures]
    print(f"{cpu_flags_text()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.rounds} rounds of alternated processes, each the median of {args.calls} calls after a warm-up")
    times: dict[tuple[str, str, str], list[float]] = {}
    deviations: dict[tuple[str, str, str], float | None] = {}
    with tempfile.TemporaryDirectory() as stub:
        (Path(stub) / "torchvision" / "models").mkdir(parents=True)
        (Path(stub) / "torchvision" / "__init__.py").write_text("")
        (Path(stub) / "torchvision" / "models" / "__init__.py").write_text("")
        (Path(stub) / "torchvision" / "models" / "resnet.py").write_text(STUB)
        for _ in range(args.rounds):
            for family, measure in plan:
                kinds = ("reference", "exact", "fast") if measure == "forward" else ("exact", "fast")
                for kind in kinds:
                    command = [sys.executable, __file__, "--child", kind, family, measure, "--calls",
                               str(args.calls), "--stub", stub]
                    command += [f"--{family}", str(args.gmic if family == "gmic" else args.glam)]
                    done = subprocess.run(command, capture_output=True, text=True, check=False)
                    if done.returncode:
                        sys.exit(f"{kind} {family} {measure} failed:\n{done.stderr[-2000:]}")
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    if kind == "reference" and result["deviation"] > 1e-5:  # not the code the oracle came from
                        sys.exit(f"the {family} reference is {result['deviation']:.2e} off its oracle: check the "
                                 "checkout")
                    times.setdefault((family, measure, kind), []).append(result["seconds"])
                    deviations[(family, measure, kind)] = result["deviation"]
    print("\n| measure | reference | exact | fast |\n| --- | --- | --- | --- |")
    for family, measure in plan:
        reference = statistics.median(times.get((family, "forward", "reference"), [float("nan")]))
        cells = []
        for kind in ("reference", "exact", "fast"):
            if (family, measure, kind) not in times:
                cells.append("—")
                continue
            value = statistics.median(times[(family, measure, kind)])
            cells.append(f"{value:.3f} s" + ("" if kind == "reference" else f" ({value / reference:.2f}×)"))
        print(f"| {family.upper()} {measure}, one view | " + " | ".join(cells) + " |")
    if any(measure == "analyze" for _, measure in plan):  # as the table has it
        print("(the analyze row's ratios are to the reference's forward: it has no preprocessing of its own)")
    print("\nlargest deviation from the oracle (y_fusion / y_global, L-CC):")
    for (family, measure, kind), deviation in sorted(deviations.items()):
        if deviation is not None:
            print(f"  {family} {kind}: {deviation:.2e}")
    print("\neach process's median (s):")
    for key, values in sorted(times.items()):
        print(f"  {' '.join(key)}: " + ", ".join(f"{v:.3f}" for v in values))


if __name__ == "__main__":
    main()
