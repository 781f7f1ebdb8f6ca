"""Fixtures of the conr tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: these models are tiny, and spinning OpenMP threads on a shared machine can make a
    step many times slower than its single-threaded run."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
