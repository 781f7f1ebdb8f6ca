"""Shared fixtures. Real MMD data comes from ../shared/assets (never committed); tests using it skip
cleanly when it is absent."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from paths import GENE, REPO, SAMPLE

# Test this checkout, whatever copy of the package an editable install elsewhere points at.
sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def gene_dir() -> Path:
    if not (GENE / "Gene_light.pmx").is_file():
        pytest.skip(f"real MMD data not found at {GENE}")
    return GENE


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def gl() -> str:
    """A headless OpenGL context in this process (skips the test when none can be made)."""
    from udpgen.render import gl_available

    ok, why = gl_available()
    if not ok:
        pytest.skip(f"no OpenGL context: {why}")
    return why
