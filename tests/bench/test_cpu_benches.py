"""The CPU benches the docs quote, run small, so that a change of an interface they call cannot leave them
broken (bench_batch's progress callback and bench_load's two-patient "exam" did, unnoticed). Their figures
are not checked: speed is measured by hand, never asserted."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import require_shared
from tests.helpers import run_isolated

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_bench_load_runs_through():
    require_shared()
    done = run_isolated([str(BENCH / "bench_load.py"), "--runs", "1"], timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "4-view PNG exam:" in done.stdout and done.stdout.count("1-view CBIS-DDSM RLE exam") == 2


def test_bench_batch_runs_through_on_the_local_engine():
    demo = BENCH.parent / "resources" / "demo" / "model.pt"  # the script's path, not the published size's speed
    done = run_isolated([str(BENCH / "bench_batch.py"), "--exams", "2", "--shape", "400x300", "--no-ray", "--model",
                         str(demo)], timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "exams/min" in done.stdout and "local, 1 thread" in done.stdout


def test_bench_reference_alternates_the_processes_and_checks_the_reference_against_its_oracle(tmp_path):
    """The reference code is never in this repository: a stand-in checkout (this project's GMIC under the
    reference's module names) runs the script's whole path (the torchvision stub, the window search it
    supplies, the oracle check, the alternated processes and the table); one that is off its oracle is refused."""
    require_shared()
    checkout = tmp_path / "GMIC"
    (checkout / "src" / "modeling").mkdir(parents=True)
    (checkout / "src" / "utilities").mkdir()
    for package in ("src", "src/modeling", "src/utilities"):
        (checkout / package / "__init__.py").write_text("")
    (checkout / "src" / "utilities" / "tools.py").write_text("def get_max_window(*args):\n    raise AssertionError\n")
    shift = "0.0"
    (checkout / "src" / "modeling" / "gmic.py").write_text(f'''
import torch
from pathlib import Path
from torchvision.models.resnet import conv3x3  # the script's stub
from inference.weights import load_model

class GMIC(torch.nn.Module):
    def __init__(self, parameters):
        super().__init__()
        assert parameters["K"] == 6 and parameters["cam_size"] == (46, 30)
        path = Path(__file__).resolve().parents[0] / "weights.pt"
        self.inner = load_model(path.read_text(), percent_t=parameters["percent_t"]).model
        conv3x3(1, 1)

    def load_state_dict(self, state):
        assert "fusion_dnn.weight" in state or "fusion_network.weight" in state

    def forward(self, x):
        return self.inner(x).y_fusion + {shift}
''')
    from tests.conftest import SHARED

    (checkout / "src" / "modeling" / "weights.pt").write_text(str(SHARED / "reference/gmic/seeded_state_dict.pt"))
    command = [str(BENCH / "bench_reference.py"), "--gmic", str(checkout), "--rounds", "1", "--calls", "1"]
    done = run_isolated(command, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "glam: no reference folder given" in done.stdout
    assert "| GMIC forward, one view |" in done.stdout and "| GMIC analyze, one view | — |" in done.stdout
    assert "gmic reference: " in done.stdout and "gmic exact: " in done.stdout
    gmic = (checkout / "src" / "modeling" / "gmic.py")
    gmic.write_text(gmic.read_text().replace("+ 0.0", "+ 0.001"))
    done = run_isolated(command, timeout=600)
    assert done.returncode != 0 and "the gmic reference is 1.00e-03 off its oracle" in done.stderr
