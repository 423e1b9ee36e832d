"""Values pinned per host, for the tests that pin results to the last bit.

The last bits of a float result depend on the CPU: NumPy's float64 exp/log take AVX-512 code
where the CPU has it, MKL and FBGEMM pick kernels per CPU (AVX-512 or AVX2, Intel or AMD), OpenBLAS
per CPU family. A test that pins a fit's hash or its values to 1e-10 therefore holds one recorded
set per host (``host_key``: CPU and the numeric libraries' versions):

- on a host that has its own set, the result must equal it (``exact``);
- on a host with no set of its own, it must equal one of the recorded sets; where none matches,
  the test falls back to what holds across CPUs (a tolerance), or skips, naming the host and
  how to record its values, where there is no such fallback (a hash).

``LEGACY`` labels the sets recorded before host keys existed, on a host whose CPU was not
written down: it never counts as a host's own set.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

LEGACY = "recorded up to 2026-12-04, before host keys (x86_64, CPU not recorded)"
#: the CI host of 2026-12-05 (keys of the hosts whose sets are written in test files)
AMD_EPYC_ZEN2 = (
    "x86_64 AuthenticAMD family 23 model 49 (AMD EPYC), avx512 no;"
    " torch 2.13.0+cpu AVX2, numpy 2.4.6, scipy 1.17.1"
)


def host_key() -> str:
    """The CPU (vendor, family, model, AVX-512 or not) and the numeric libraries' versions:
    what decides the last bits of a float result."""
    import numpy as np
    import scipy
    import torch

    from learnops.hostinfo import cpu_info, cpu_model

    info = cpu_info()
    avx512 = "avx512f" in info.get("flags", "").split()
    return (
        f"{platform.machine()} {cpu_model(info)}, avx512 {'yes' if avx512 else 'no'};"
        f" torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()},"
        f" numpy {np.__version__}, scipy {scipy.__version__}"
    )


def match_recorded(recorded: Mapping[str, T], check: Callable[[T], None]) -> str | None:
    """Run ``check`` (it raises AssertionError on a mismatch) against this host's own set, which
    must pass; on a host without one, against each set until one passes. Returns the key of the
    set that matched, or None (a host with no set of its own that matches none)."""
    assert recorded, "no recorded values"
    here = host_key()
    if here in recorded:
        check(recorded[here])
        return here
    for key, values in recorded.items():
        try:
            check(values)
        except AssertionError:
            continue
        return key
    return None


def record_here(
    recorded: Mapping[str, T], values: T, agree: Callable[[T, T], None]
) -> dict[str, T]:
    """``recorded`` with ``values`` as this host's set, without the other hosts' sets that no
    longer agree with it (``agree(other, values)`` raises AssertionError): recorded before a
    change of the numbers, they are stale."""
    here = host_key()
    hosts = {here: values}
    for key, other in recorded.items():
        if key == here:
            continue
        try:
            agree(other, values)
        except AssertionError:
            print(f"dropped the stale set of {key}")
            continue
        hosts[key] = other
    return hosts


def unrecorded_host(what: str, how: str) -> str:
    """The reason a test gives when this host has no set of its own and matches none."""
    return (
        f"no pinned {what} for this host ({host_key()}) and none of the recorded sets"
        f" matches: {how}"
    )
