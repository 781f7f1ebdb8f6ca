"""Where the tests find their data (a module of its own: tests/ and tests/conr/ both have a conftest)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CONR_SHARED", REPO.parent / "shared"))
GENE = SHARED / "assets" / "gene"
SAMPLE = REPO / "assets" / "sample"
