"""learnops.hostinfo: the CPU named in benchmark records and host-keyed test values."""

from __future__ import annotations

from pathlib import Path

import pytest

from learnops import hostinfo

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 106
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu avx2 avx512f

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: another name, second processor
"""


def test_cpu_model_reads_the_first_processor(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text(CPUINFO)
    real = Path.read_text
    monkeypatch.setattr(
        Path,
        "read_text",
        lambda self, *a, **k: real(fake if str(self) == "/proc/cpuinfo" else self),
    )
    info = hostinfo.cpu_info()
    assert info["model name"].startswith("Intel(R) Xeon(R) Platinum 8375C")
    assert "avx512f" in info["flags"].split()
    assert hostinfo.cpu_model() == (
        "GenuineIntel family 6 model 106 (Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz)"
    )


def test_without_proc_cpuinfo_the_platform_names_the_processor(monkeypatch):
    def missing(self, *a, **k):
        raise FileNotFoundError(self)

    monkeypatch.setattr(Path, "read_text", missing)
    assert hostinfo.cpu_info() == {}
    monkeypatch.setattr(hostinfo.platform, "processor", lambda: "arm")
    assert hostinfo.cpu_model() == "arm"


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="no /proc/cpuinfo on this system")
def test_this_machine_has_a_vendor_and_model():
    assert "?" not in hostinfo.cpu_model().split(" (")[0]
