"""The Ray engine: the unit of work on Ray Data.

Three stages stream one exam at a time: decoding and ``prepare_view`` as CPU tasks; the models in a pool of
actors that load them once (``num_gpus`` each on CUDA, CPU actors otherwise); writing the files and table
rows as CPU tasks. Ray Data's streaming executor applies backpressure between the stages, so neither the
driver nor the object store ever holds the archive; only each exam's small outcome comes back to the driver.

A worker that dies (a node lost, an actor killed) is replaced and its exam retried by Ray; bad input is not
retried, it is an outcome like any other. Every node needs the project installed (``pip install -e
'.[cluster]'``) and the model files and exams at the same paths (a shared file system).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import pickle
import shutil
import socket
import tempfile
import threading
from pathlib import Path

from app.archive.ledger import Ledger
from app.archive.table import BOOKKEEPING
from app.archive.unit import Analysed, BatchOptions, Decoded, Outcome, analyse, decode, write
from app.archive.sources import ExamItem
from inference.errors import MammoError
from inference.files import hide_file_times, write_text_atomic

logger = logging.getLogger(__name__)

MISSING_RAY = ("--engine ray needs Ray, an optional extra of the project: pip install -e '.[cluster]' "
               "(the local engine, the default, needs nothing more)")


DECODE_MEMORY = 2 << 30  # bytes: a worker with torch and a four-view exam of 4000 x 3000 images, decoded and prepared


def require_ray() -> None:
    try:
        import ray  # noqa: F401, PLC0415
        import ray.data  # noqa: F401, PLC0415
    except ImportError as error:
        raise MammoError(MISSING_RAY) from error


def _item(row: dict) -> ExamItem:
    return ExamItem(str(row["exam_id"]), str(row["location"]), str(row.get("opens") or ""),
                    tuple(json.loads(row.get("files") or "[]")))


def _decode_row(row: dict, families: tuple[str, ...], options: BatchOptions) -> dict:
    from inference.memory import reuse_freed_memory  # noqa: PLC0415

    reuse_freed_memory()  # once per worker process (idempotent), as the model actors do
    decoded = decode(_item(row), families, options)
    if decoded.failure:
        return {**row, "payload": b"", "failure": decoded.failure}
    # the prepared views and the exam travel to the next stage through the object store
    return {**row, "payload": pickle.dumps((decoded.exam, decoded.prepared, decoded.facts), protocol=5), "failure": ""}


class ModelActor:
    """Holds the models (loaded once per actor) and runs them on each prepared exam."""

    def __init__(self, model_sources: list[str], percent_t: float | None, options: BatchOptions, out: str) -> None:
        from inference.memory import reuse_freed_memory  # noqa: PLC0415
        from inference.weights import load_model_groups  # noqa: PLC0415

        # as main.py does: the image-sized intermediates come from a kept heap, not page-faulted in anew on
        # every layer (without it an exam took 3.2 s in the actor against 2.7 s in the local engine)
        reuse_freed_memory()
        self.groups = load_model_groups(model_sources, percent_t=percent_t)
        self.options = options
        # who is working, for an operator (and the tests) to find: host, PID and how many exams it has
        # analysed, no patient data
        folder = Path(out) / BOOKKEEPING / "workers"
        folder.mkdir(parents=True, exist_ok=True)
        self.record = folder / f"{socket.gethostname()}-{os.getpid()}.json"
        self.analysed = 0
        self._tell()

    def _tell(self) -> None:
        try:
            write_text_atomic(self.record, json.dumps({
                "host": socket.gethostname(), "pid": os.getpid(), "analysed": self.analysed,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}))
            if self.options.deidentify:  # rewritten after each exam: its true time named when that one was done
                hide_file_times([self.record, self.record.parent])
        except OSError as error:  # a note for the operator: never the reason an analysed exam fails
            logging.getLogger(__name__).warning("the worker record %s could not be written (%s)", self.record, error)

    def __call__(self, row: dict) -> dict:
        item = _item(row)
        if row["failure"]:
            return {**row, "payload": b"", "seconds": 0.0}
        exam, prepared, facts = pickle.loads(row["payload"])  # noqa: S301 - our own stage's output, within the batch
        analysed = analyse(Decoded(item, exam, prepared, facts=facts), self.groups, self.options)
        self.analysed += 1
        self._tell()
        if analysed.failure:
            return {**row, "payload": b"", "failure": analysed.failure, "seconds": 0.0}
        return {**row, "payload": pickle.dumps((exam, analysed.result, facts), protocol=5), "seconds": analysed.seconds}


def _write_row(row: dict, out: str, options: BatchOptions, record: dict) -> dict:
    item = _item(row)
    if row["failure"]:
        analysed = Analysed(item, failure=str(row["failure"]))
    else:
        exam, result, facts = pickle.loads(row["payload"])  # noqa: S301 - our own stage's output, within the batch
        analysed = Analysed(item, exam, result, float(row["seconds"]), facts=facts)
    outcome = write(analysed, Path(out), options, record)
    return {"exam_id": outcome.exam_id, "location": outcome.location, "status": outcome.status,
            "reason": outcome.reason, "files": json.dumps(list(outcome.files)), "seconds": outcome.seconds,
            "images": json.dumps(list(outcome.images))}


def _workers(requested: int | None, gpus_per_worker: float) -> int:
    """How many model actors: as asked, else one per GPU share, else half the CPUs. Each actor holds one
    CPU; at least one CPU must stay free for decoding and writing, or the pipeline would wait forever."""
    import ray  # noqa: PLC0415

    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 1))
    if gpus_per_worker > 0 and resources.get("GPU", 0) < gpus_per_worker:
        raise MammoError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has {resources.get('GPU', 0):g} "
                         "GPU(s)")
    if requested:
        count = int(requested)
    elif gpus_per_worker > 0:
        count = max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    else:
        count = max(1, cpus // 2)
    _refuse_all_cpus(count, cpus)
    return count


def _refuse_all_cpus(count: int, cpus: int) -> None:
    if count >= cpus:
        raise MammoError(f"{count} model worker(s) would hold all {cpus} CPU(s) of the Ray cluster and leave none "
                         f"to decode and write; use --workers {max(1, cpus - 1)} or fewer")


_PROCESS_SETTINGS = threading.Lock()  # start_local_ray swaps HOME and Ray's cluster switch for the process
_RAY_HOME: list[Path] = []  # this process's home for the local Ray instances it starts (see start_local_ray)


def _ray_home() -> Path:
    """One private folder per process, removed when it exits: Ray writes its session token there once per
    process and expects to find it again for every instance the process starts."""
    if not _RAY_HOME:
        home = Path(tempfile.mkdtemp(prefix="mammo-reader-ray-home-"))  # 0700
        (home / "ray_bootstrap_config.yaml").write_text("{}\n", encoding="utf-8")
        atexit.register(shutil.rmtree, home, True)
        _RAY_HOME.append(home)
    return _RAY_HOME[0]


def start_local_ray(init: dict) -> None:
    """A local Ray instance that keeps to this machine: its node address is loopback, and its own processes
    get a home folder of their own (private, temporary: ``_ray_home``; Ray keeps its session token there)
    holding an empty autoscaler config. Ray 2.x's usage-stats module (started
    even with usage stats off and no dashboard) otherwise asks the cloud metadata address 169.254.169.254
    and resolves metadata.google.internal through the site's DNS at every start, to name its cloud; it skips
    that when ``~/ray_bootstrap_config.yaml`` exists. The workers keep that home (Ray's session token is
    there) and are told the user's settings folder (``MAMMO_READER_HOME``, through ``runtime_env``): what they
    read there (the de-identification key) is what the local engine reads.

    Loopback only: ``ray.init`` replaces a node address of 127.0.0.1 by the address it finds "from the
    perspective" of 8.8.8.8 (a UDP socket towards it), and its GCS, raylet and workers then listen on every
    interface — on a machine with a network the "local" instance took the LAN address and listened there. Ray
    keeps loopback only with its cluster switch off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read by this
    process's ``ray_constants`` and by every process it starts); it is off while the instance starts and its
    processes keep it. tests/archive checks it in a network namespace with a default route (a LAN stand-in
    that reaches nothing), and every connection of a Ray run under strace: loopback and Unix sockets only."""
    import ray  # noqa: PLC0415
    from ray._private import ray_constants  # noqa: PLC0415

    from app.settings import config_dir  # noqa: PLC0415

    init = dict(init)
    home = _ray_home()
    runtime_env = dict(init.pop("runtime_env", None) or {})
    env_vars = dict(runtime_env.get("env_vars") or {})
    env_vars.setdefault("MAMMO_READER_HOME", str(config_dir()))  # the user's, decided with the user's home
    runtime_env["env_vars"] = env_vars
    env_vars[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"  # the workers too (see below)
    saved = {name: os.environ.get(name) for name in ("HOME", ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR)}
    cluster = ray_constants.ENABLE_RAY_CLUSTER
    with _PROCESS_SETTINGS:  # what follows is process-wide: one start at a time
        os.environ["HOME"] = str(home)  # read by the processes ray.init starts (Ray keeps its token there)
        os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"  # their node address: loopback, not the LAN's
        ray_constants.ENABLE_RAY_CLUSTER = False  # this process's: read when ray.init resolves 127.0.0.1
        try:
            ray.init(include_dashboard=False, logging_level=logging.WARNING, _node_ip_address="127.0.0.1",
                     runtime_env=runtime_env, **init)
        except BaseException:
            ray.shutdown()  # whatever of it started
            raise
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = cluster  # a cluster joined later in this process: as before
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def run_on_ray(
    ledger: Ledger,
    model_sources: list[str],
    groups,
    out: Path,
    options: BatchOptions,
    record: dict,
    *,
    percent_t: float | None = None,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    init: dict | None = None,
) -> None:
    """``ledger.todo`` on Ray: joins ``address`` (or ``RAY_ADDRESS``), else starts a local instance, which
    is shut down at the end (a joined cluster is left as it was)."""
    import ray  # noqa: PLC0415
    import ray.data  # noqa: PLC0415

    from inference.pipeline import model_families  # noqa: PLC0415

    started_here = not ray.is_initialized()
    if started_here:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        local = address is None and not os.environ.get("RAY_ADDRESS")
        if local and workers and (init or {}).get("num_cpus"):  # said at once, before an instance starts
            _refuse_all_cpus(int(workers), int(init["num_cpus"]))
        try:
            if local:
                start_local_ray(init or {})
            else:
                ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, **(init or {}))
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise MammoError(f"Ray cluster {address or 'local'}: cannot start or join it ({error})") from error
    try:
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # its plan and timings: in its own log files
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the batch prints its own line: done, failed, per minute, ETA
        count = _workers(workers, gpus_per_worker)
        rows = [{"exam_id": i.exam_id, "location": i.location, "opens": i.opens, "files": json.dumps(list(i.files))}
                for i in ledger.todo]
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
        # the decode tasks ask for memory for an exam's images and prepared views; that also keeps Ray
        # Data from fusing them into the model actors (it fuses stages whose resource requests match)
        dataset = dataset.map(functools.partial(_decode_row, families=model_families(groups), options=options),
                              num_cpus=1, memory=DECODE_MEMORY)
        actor_resources = {"num_gpus": gpus_per_worker, "num_cpus": 1} if gpus_per_worker > 0 else {"num_cpus": 1}
        # Ray Data restarts a lost actor and retries its exam (max_restarts = max_task_retries = -1, its
        # default for actor pools; tests/archive kills one to hold it to that)
        dataset = dataset.map(ModelActor, fn_constructor_kwargs={
            "model_sources": model_sources, "percent_t": percent_t, "options": options, "out": str(out)},
            compute=ray.data.ActorPoolStrategy(size=count), **actor_resources)
        dataset = dataset.map(functools.partial(_write_row, out=str(out), options=options, record=record),
                              num_cpus=1)
        for row in dataset.iter_rows():
            ledger.add(Outcome(str(row["exam_id"]), str(row["location"]), str(row["status"]), str(row["reason"]),
                               tuple(json.loads(row["files"])), float(row["seconds"]),
                               images=tuple(json.loads(row["images"]))))
    finally:
        if started_here:
            ray.shutdown()  # the pool's actors go with it, and their CPU/GPU reservations
