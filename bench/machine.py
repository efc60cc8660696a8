"""Facts about the machine a benchmark ran on, and /proc readings of other processes."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MachineFacts:
    nproc: int
    cpu_model: str
    load_avg: tuple[float, float, float]
    memory_gib: float
    python: str
    kernel: str

    def lines(self) -> list[str]:
        load = " ".join(f"{x:.2f}" for x in self.load_avg)
        return [
            f"- nproc: {self.nproc}",
            f"- CPU: {self.cpu_model}",
            f"- load average at start (1/5/15 min): {load}",
            f"- memory: {self.memory_gib:.1f} GiB",
            f"- Python {self.python}, kernel {self.kernel}",
        ]


def machine_facts() -> MachineFacts:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    one, five, fifteen = os.getloadavg()
    return MachineFacts(
        nproc=os.cpu_count() or 0,
        cpu_model=model,
        load_avg=(one, five, fifteen),
        memory_gib=mem_kib / 1024 / 1024,
        python=platform.python_version(),
        kernel=platform.release(),
    )


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (not its children), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # after the comm field: state is fields[0]; utime is field 14 of the full line, index 11 here
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot, from the first line of /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
