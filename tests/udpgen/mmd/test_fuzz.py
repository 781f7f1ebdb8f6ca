"""Property tests: truncated or corrupted MMD files give FormatError and nothing else, quickly.

Never an IndexError, struct.error, UnicodeDecodeError, MemoryError or a hang.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paths import GENE, SAMPLE
from mmd_fixtures import make_model
from udpgen.errors import FormatError
from udpgen.mmd import parse
from udpgen.mmd.pmx_writer import pmx_bytes

FILES = {
    "gene.pmx": GENE / "Gene_light.pmx",
    "gene.pmd": GENE / "Gene.pmd",
    "stand.vmd": GENE / "motion" / "stand.vmd",
    "laugh.vmd": GENE / "motion" / "02_laugh.vmd",
    "sample.pmx": SAMPLE / "sample.pmx",
    "wave.vmd": SAMPLE / "wave.vmd",
}
_cache: dict[str, bytes] = {}


def _data(name: str) -> bytes:
    if name == "synthetic.pmx":
        return _cache.setdefault(name, pmx_bytes(make_model(n_vertices=50, version=2.1)))
    path: Path = FILES[name]
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return _cache.setdefault(name, path.read_bytes())


def _only_format_errors(data: bytes) -> None:
    t = time.perf_counter()
    try:
        parse(data, "fuzzed")
    except FormatError as e:
        assert str(e).startswith("fuzzed: ")
    assert time.perf_counter() - t < 1.0, "one case took over a second"


NAMES = ["synthetic.pmx", *FILES]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(frac=st.floats(0, 1, exclude_max=True))
def test_truncated_anywhere(name, frac):
    # VMD and PMD files may legitimately end after any optional section, so a cut can parse.
    data = _data(name)
    _only_format_errors(data[:int(frac * len(data))])


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
       head=st.booleans())
def test_flipped_bytes(name, flips, head):
    data = bytearray(_data(name))
    # Half the cases aim at the first 4 KiB, where the headers and counts live.
    span = min(len(data), 4096) if head else len(data)
    for frac, xor in flips:
        data[int(frac * span)] ^= xor
    _only_format_errors(bytes(data))
