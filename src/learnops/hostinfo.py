"""The CPU a process runs on, for benchmark records and host-keyed test values."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_info() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (vendor_id, cpu family, model, model name,
    flags, ...); empty where there is no /proc/cpuinfo."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip():
            info.setdefault(key.strip(), value.strip())
    return info


def cpu_model(info: dict[str, str] | None = None) -> str:
    """Vendor, family, model and name (timings and the last bits of vectorized float sums depend
    on them), e.g. ``AuthenticAMD family 23 model 49 (AMD EPYC)``; the platform's processor
    string where /proc/cpuinfo is missing."""
    info = cpu_info() if info is None else info
    if not info:
        return platform.processor() or platform.machine()
    return (
        f"{info.get('vendor_id', '?')} family {info.get('cpu family', '?')} model"
        f" {info.get('model', '?')} ({info.get('model name', '?')})"
    )
