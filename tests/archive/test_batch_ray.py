"""The archive batch on Ray Data: a local Ray instance (two CPUs, one logical GPU, usage stats off, no
dashboard) inside a loopback-only network namespace. The same files and numbers as the local engine; the
model actor SIGKILLed by its PID mid-run is replaced and every exam is done exactly once; a rerun skips
everything; the broken exam is in failures.csv and the rest are done; and no process of the run tries to reach
an address other than loopback (strace watches every connect)."""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import re
import shutil

import pyarrow.parquet as pq
import pytest

from tests.archive.conftest import DEMO_MODEL, GOOD, lan_stand_in, loopback_only
from tests.conftest import ROOT

PROBE = Path(__file__).with_name("ray_probe.py")
LAN_PROBE = Path(__file__).with_name("ray_lan_probe.py")
TIMESTAMPS = ("Read on", "Reported on")  # the header's time of the report; everything else must agree


@pytest.fixture(scope="module")
def ray_run(archive, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    local, on_ray = folder / "local", folder / "ray"
    # one thread everywhere: Ray gives each actor one CPU, and a different thread count changes float
    # rounding in the convolutions (4e-7 seen): with the same count the numbers are bit-identical
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    if shutil.which("strace") is None:
        pytest.fail("strace is needed to watch the Ray run's connections (Debian: strace; tests/run.sh installs it)")
    trace = folder / "connections.strace"
    # every connect() of every process of the run (driver, Ray's own processes, workers), filtered in the kernel
    watched = ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect", "-o", str(trace)]
    done = subprocess.run(loopback_only([*watched, sys.executable, str(PROBE), str(archive), str(local),
                                         str(on_ray), str(DEMO_MODEL)]), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), local, on_ray, trace


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in folder.rglob("*")
            if p.is_file() and ".batch" not in p.parts and p.suffix != ".parquet"
            and p.name not in ("failures.csv", ".batch.lock")}


def _report(path: Path) -> dict:
    document = json.loads(path.read_text())
    assert sum(bool(document["header"].pop(key, None)) for key in TIMESTAMPS) == 1  # "Read on" or "Reported on"
    return document


def test_ray_gives_the_files_and_numbers_of_the_local_engine(ray_run):
    seen, local, on_ray, _trace = ray_run
    assert seen["local"]["done"] == seen["ray"]["done"] == GOOD
    local_files, ray_files = _files(local), _files(on_ray)
    assert local_files.keys() == ray_files.keys() and len(local_files) == 8 * 3  # json, maps, SR per exam
    for name, path in local_files.items():
        if name.endswith(".json"):
            assert _report(path) == _report(ray_files[name]), name
        elif name.endswith(".npz"):
            assert path.read_bytes() == ray_files[name].read_bytes(), name
    columns = ["exam_id", "level", "view", "breast", "model_id", "model_key", "kind", "class", "probability",
               "counted", "mode", "device"]

    def table(folder):
        rows = pq.read_table(folder / "scores.parquet", columns=columns).to_pylist()
        return sorted(tuple(r.values()) for r in rows)

    assert table(local) == table(on_ray)  # exact: the same float64 values


def test_a_killed_actor_is_replaced_and_every_exam_is_done_exactly_once(ray_run):
    seen, _, on_ray, _trace = ray_run
    assert seen["killed"] is not None and 2 <= seen["analysed_before_kill"] < len(GOOD) - 2
    assert seen["done_before_kill"] < len(GOOD)
    pids = [w["pid"] for w in seen["workers"]]
    assert seen["killed"] in pids and len(pids) >= 2, "the killed actor was not replaced"
    # the logical GPU reached the actors: Ray scheduled them on it and made it visible to them
    assert all(w["cuda_visible_devices"] == "0" for w in seen["workers"])
    assert sorted(seen["journal_done"]) == GOOD, "an exam was done twice or not at all"
    rows = pq.read_table(on_ray / "scores.parquet").to_pylist()
    keyed = [(r["exam_id"], r["level"], r["view"], r["breast"], r["kind"], r["class"]) for r in rows]
    assert len(keyed) == len(set(keyed)) and {r["exam_id"] for r in rows} == set(GOOD)


def test_a_rerun_skips_everything_and_the_bad_exam_is_recorded(ray_run):
    seen, _, on_ray, _trace = ray_run
    assert seen["rerun"]["skipped"] == GOOD and not seen["rerun"]["done"]
    for run in ("local", "ray", "rerun"):
        assert list(seen[run]["failed"]) == ["zz_bad"] and "not a DICOM image" in seen[run]["failed"]["zz_bad"]
    with (on_ray / "failures.csv").open(newline="") as handle:
        failures = list(csv.DictReader(handle))
    assert [f["exam_id"] for f in failures] == ["zz_bad"] and "x.dcm" in failures[0]["reason"]


def test_model_workers_that_would_hold_every_cpu_are_refused_with_the_reason(ray_run):
    seen, _, _, _trace = ray_run
    assert "2 model worker(s) would hold all 2 CPU(s)" in seen["too_many_workers"]
    assert "--workers 1" in seen["too_many_workers"]


def test_a_local_ray_instance_tries_no_address_but_loopback(ray_run):
    """Issue 31: every connection of the whole run — the driver, Ray's own processes (GCS, raylet, the usage-stats
    module), the workers — goes to loopback or a Unix socket. Ray 2.x's usage-stats module asks the cloud
    metadata address 169.254.169.254 and the site's DNS at start unless its home holds an autoscaler config;
    the batch gives its local instance one (app.archive.ray_engine.start_local_ray)."""
    *_rest, trace = ray_run
    text = trace.read_text()
    targets = re.findall(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', text)
    addresses = {a or b for a, b in targets}
    assert addresses, "strace saw no connection at all: the watch did not work"
    outside = {a for a in addresses if not (a.startswith("127.") or a in ("::1", "::ffff:127.0.0.1"))}
    assert not outside, f"the Ray run tried to reach {sorted(outside)}"
    _seen, _local, on_ray, _trace = ray_run
    assert not list(on_ray.rglob("auth_token")) and not list(on_ray.rglob("ray_bootstrap_config.yaml"))


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def test_on_a_machine_with_a_network_the_local_instance_keeps_to_loopback(tmp_path):
    """ray.init turned the node address 127.0.0.1 into the machine's network address (found with a UDP socket
    towards 8.8.8.8), and its GCS, raylet and workers listened on every interface: on a workstation in a
    hospital network the "local" batch engine was reachable from that network. Seen only where the machine
    has a route out, hence the LAN stand-in (a namespace whose veth pair reaches nothing)."""
    if shutil.which("strace") is None:
        pytest.fail("strace is needed to watch the Ray run's connections (Debian: strace; tests/run.sh installs it)")
    trace = tmp_path / "connections.strace"
    watched = ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect", "-o", str(trace)]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(lan_stand_in([*watched, sys.executable, str(LAN_PROBE)]), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["default_route"]  # the stand-in is in place: Ray would find the 10.99.0.2 address
    assert seen["node"] == "127.0.0.1"
    assert seen["listening"] and all(_loopback(a) for a in seen["listening"]), seen["listening"]
    targets = re.findall(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', trace.read_text())
    addresses = {a or b for a, b in targets}
    assert addresses and all(_loopback(a) for a in addresses), sorted(addresses)
