"""Run by test_batch_ray.py in a network namespace whose one link besides loopback is a veth pair with a default
route (a stand-in for a hospital LAN that reaches nothing): a local Ray instance as the batch starts it, one
task and one actor on it (workers running), then every listening TCP socket of the namespace. Prints one JSON
line: the node's address, the listening addresses, and whether the namespace has its route out."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ray  # noqa: E402

from app.archive.ray_engine import start_local_ray  # noqa: E402

LISTEN = "0A"


def _address(hex_address: str) -> str:
    """/proc/net/tcp{,6} writes an address as 32-bit words in host (little-endian) order."""
    words = [bytes.fromhex(hex_address[i:i + 8])[::-1] for i in range(0, len(hex_address), 8)]
    return str(ipaddress.ip_address(b"".join(words)))


def default_route() -> bool:
    """Whether this namespace has a default route (read from the kernel's table: no packet, no socket)."""
    return any(line.split()[1] == "00000000" for line in Path("/proc/net/route").read_text().splitlines()[1:])


def listening() -> list[str]:
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                found.append(_address(fields[1].split(":")[0]))
    return sorted(set(found))


@ray.remote
def _square(x: int) -> int:
    return x * x


@ray.remote
class _Counter:
    def ping(self) -> str:
        return "pong"


def main() -> None:
    start_local_ray({})
    try:
        node = ray._private.worker._global_node.node_ip_address  # noqa: SLF001
        assert ray.get(_square.remote(7)) == 49
        counter = _Counter.remote()
        assert ray.get(counter.ping.remote()) == "pong"
        print(json.dumps({"node": node, "listening": listening(), "default_route": default_route()}))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
