"""Memory and disk: this process's resident memory (now, its peak, sampled while work runs) and a folder's size."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

__all__ = ["RssSampler", "folder_mb", "max_rss_mb", "rss_mb"]


def rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return max_rss_mb()


def max_rss_mb() -> float:
    """The highest resident memory this process has had, in MiB (getrusage; the kernel's own peak)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


class RssSampler:
    """Samples this process's RSS in a background thread; `peak_mb` is the highest value seen.

    Example:
        >>> with RssSampler() as rss:
        ...     work()
        >>> rss.peak_mb, rss.start_mb
    """

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.start_mb = self.peak_mb = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __enter__(self) -> RssSampler:
        self.start_mb = self.peak_mb = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())


def folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20, 2)
