"""CPU accounting for ``bench/load.py``: the whole machine from ``/proc/stat``, and the server
alone (the web server's processes and the PostgreSQL backends serving the benchmark's database)
from ``/proc/<pid>/stat``, which other people's work on a shared machine cannot pollute."""

import os
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU-seconds all cores spent busy since boot (everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICK


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _stat(pid: int) -> list[str] | None:
    try:
        # The command name may hold spaces and parentheses: split after its closing one.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu_s(pid: int) -> float | None:
    fields = _stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def _postgres_backends(database: str) -> list[int]:
    """PostgreSQL names each backend process ``postgres: [<cluster>:] <user> <database> …``
    (Debian's clusters add their name, e.g. ``15/main:``)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        words = title.replace(b"\0", b" ").split()
        if words[:1] == [b"postgres:"] and database.encode() in words[2:4]:
            found.append(int(entry.name))
    return found


class CpuMeter:
    """Samples the server's processes once a second while the load runs, so a process that ends
    during the window (a closed database connection) still counts with its last reading."""

    def __init__(self, server_pid: int, database: str | None):
        self.server_pid = server_pid
        self.database = database
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _processes(self) -> list[tuple[str, int]]:
        found = [("web", self.server_pid)] + [("web", p) for p in _children(self.server_pid)]
        if self.database:
            found += [("postgres", p) for p in _postgres_backends(self.database)]
        return found

    def _sample(self, *, baseline: bool) -> None:
        for key in self._processes():
            cpu = process_cpu_s(key[1])
            if cpu is None:
                continue
            if key not in self.first:
                # Known before the window: count from now. Born during it: count all of it.
                self.first[key] = cpu if baseline else 0.0
            self.last[key] = cpu

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self._sample(baseline=False)

    def start(self) -> None:
        self.machine_start = machine_busy_s()
        self.client_start = sum(os.times()[:2])
        self.wall_start = time.perf_counter()
        self._sample(baseline=True)
        self.thread.start()

    def finish(self) -> dict:
        self._sample(baseline=False)
        self.stop.set()
        self.thread.join()
        by_kind = {"web": 0.0, "postgres": 0.0}
        for key, value in self.last.items():
            by_kind[key[0]] += value - self.first[key]
        machine = machine_busy_s() - self.machine_start
        client = sum(os.times()[:2]) - self.client_start
        server = by_kind["web"] + by_kind["postgres"]
        return {
            "wall_s": time.perf_counter() - self.wall_start,
            "machine_s": machine,
            "server_s": server,
            "web_s": by_kind["web"],
            "postgres_s": by_kind["postgres"],
            "client_s": client,
            # Everything else on the machine: PostgreSQL's own background processes, the kernel,
            # and other people's work on a shared machine.
            "other_s": machine - server - client,
            "processes": len(self.last),
        }
