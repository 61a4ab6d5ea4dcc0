"""A real two-node Ray cluster on 127.0.0.1 for the ``--cluster`` tests, and its clean stop.

:class:`LocalRayCluster` runs ``ray start --head --block`` (1 CPU) and one more node with
``ray start --address HEAD --block`` (1 CPU): 2 CPUs on 2 nodes, dashboard off, a bounded
object store, every port chosen free at run time and every temporary file under the
test's own folder. Each ``--block`` process leads a process session of its own; stopping
the cluster signals those sessions (and then kills any process still naming the
cluster's folder), so it never touches another Ray instance on the machine the way a
plain ``ray stop`` would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")
_PORT_FLAGS = (
    "--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port",
)


def free_ports(n: int) -> list[int]:
    """*n* distinct ports free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _worker_range() -> tuple[int, int]:
    """A block of 200 ports for the workers, away from the ephemeral range's busy start."""
    for _ in range(50):
        base = 20000 + (os.getpid() * 7919 + int(time.time() * 1000)) % 9000
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", base))
            return base, base + 199
        except OSError:
            continue
        finally:
            probe.close()
    return 29000, 29199


class LocalRayCluster:
    """Start with :meth:`start`, stop with :meth:`stop` (idempotent)."""

    def __init__(self, root: Path, *, object_store_mb: int = 200, cpus: tuple[int, int] = (1, 1)) -> None:
        self.root = root
        self.object_store_mb = object_store_mb
        self.cpus = cpus
        self.procs: list[subprocess.Popen[bytes]] = []
        self.address = ""
        self.logs = root / "logs"

    def _node_args(self, ports: list[int], cpus: int, worker_ports: tuple[int, int]) -> list[str]:
        args = [f"{flag}={port}" for flag, port in zip(_PORT_FLAGS, ports, strict=True)]
        return [
            *args, "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--num-gpus=0",
            f"--object-store-memory={self.object_store_mb * 2**20}", "--disable-usage-stats",
            f"--min-worker-port={worker_ports[0]}", f"--max-worker-port={worker_ports[1]}",
        ]

    def _spawn(self, name: str, args: list[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        self.procs.append(subprocess.Popen([str(RAY), "start", *args], stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, env=env))

    def start(self, timeout: float = 90.0) -> str:
        """Start both nodes; return the head's address once both are up."""
        self.root.mkdir(parents=True, exist_ok=True)
        gcs, *head_ports = free_ports(1 + len(_PORT_FLAGS))
        lo, hi = _worker_range()
        self.address = f"127.0.0.1:{gcs}"
        self._spawn("head", [
            "--head", f"--port={gcs}", "--include-dashboard=false",
            f"--temp-dir={self.root / 'tmp'}", *self._node_args(head_ports, self.cpus[0], (lo, lo + 99)),
        ])
        self._wait_port(gcs, timeout)
        worker_ports = free_ports(len(_PORT_FLAGS))
        self._spawn("worker", [f"--address={self.address}", *self._node_args(worker_ports, self.cpus[1], (lo + 100, hi))])
        self._wait_nodes(2, timeout)
        return self.address

    def add_node(self, cpus: int = 1, timeout: float = 90.0) -> subprocess.Popen[bytes]:
        """Start one more node on this cluster (its own process session); return its ``ray start`` process."""
        lo, hi = _worker_range()
        alive = sum(1 for p in self.procs if p.poll() is None)
        self._spawn(f"node{len(self.procs)}", [f"--address={self.address}",
                                                *self._node_args(free_ports(len(_PORT_FLAGS)), cpus, (lo, hi))])
        self._wait_nodes(alive + 1, timeout)
        return self.procs[-1]

    def kill_node(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill a node at once - raylet, object store and its workers - as a lost machine would go."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def _wait_port(self, port: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"ray start exited: {self.log_tail()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the Ray head did not listen on {port} within {timeout:.0f} s: {self.log_tail()}")

    def _wait_nodes(self, n: int, timeout: float) -> None:
        code = (
            "import ray,sys,time\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            f"end=time.monotonic()+{timeout}\n"
            f"while sum(1 for x in ray.nodes() if x['Alive'])<{n} and time.monotonic()<end: time.sleep(0.3)\n"
            f"sys.exit(0 if sum(1 for x in ray.nodes() if x['Alive'])>={n} else 1)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout + 30)
        if proc.returncode != 0:
            raise RuntimeError(f"the Ray cluster did not reach {n} nodes: {proc.stderr[-2000:]} {self.log_tail()}")

    def log_tail(self) -> str:
        """The last lines of the nodes' logs (for error messages)."""
        out = []
        for f in sorted(self.logs.glob("*.log")):
            out.append(f"[{f.name}] " + f.read_text(errors="replace")[-1500:])
        return "\n".join(out)

    def worker_pids(self, task_name: str, node: subprocess.Popen[bytes] | None = None) -> list[int]:
        """PIDs of this cluster's (or one *node*'s) worker processes running a task named *task_name* now."""
        mine = {p.pid for p in self.procs} if node is None else {node.pid}
        table = _processes()
        out = []
        for pid, (ppid, cmd) in table.items():
            if not cmd.startswith(f"ray::{task_name}"):
                continue
            up, seen = ppid, 0
            while up and up not in mine and seen < 20:  # walk up to one of our `ray start` processes
                up, seen = table.get(up, (0, ""))[0], seen + 1
            if up in mine:
                out.append(pid)
        return out

    def stop(self) -> None:
        """Stop this cluster's processes, and only them."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        end = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:  # whatever is left of each node's session
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        root = str(self.root)
        for pid, (_, cmd) in _processes().items():
            if root in cmd and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.procs.clear()


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process (Linux /proc)."""
    out: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = (ppid, cmd)
    return out
