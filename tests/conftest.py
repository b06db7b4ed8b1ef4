import os
from pathlib import Path

import pytest
import torch

# No test may reach the internet; Hub behaviour is tested against the local test server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = REPOSITORY.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The project's real data files, kept beside the repository and never copied into it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the repository on development machines)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and the suite's two workers share two cores: two threads each run many
    times slower. (Processes a test starts choose their own.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
