"""Shared fixtures: put the project root on sys.path and keep runs out of the repo."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore:No ccache found")  # Paddle, at import


@pytest.fixture
def outdirs(tmp_path):
    """Flags that send a run's logs and checkpoints into a temporary folder."""
    return dict(logdir=str(tmp_path / "exp"), param_dir=str(tmp_path / "param"))
