"""Shared fixtures. Real MMD data comes from ../shared/assets (never committed); tests using it skip
cleanly when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CONR_SHARED", REPO.parent / "shared"))
GENE = SHARED / "assets" / "gene"
SAMPLE = REPO / "assets" / "sample"


@pytest.fixture(scope="session")
def gene_dir() -> Path:
    if not (GENE / "Gene_light.pmx").is_file():
        pytest.skip(f"real MMD data not found at {GENE}")
    return GENE


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE
