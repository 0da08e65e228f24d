"""Fixtures shared by every test module, and an environment sealed off from the user's.

The environment is set when pytest imports this file, before any test module
imports huggingface_hub, which reads these variables once, at import time.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_SCRATCH = Path(tempfile.mkdtemp(prefix="profile-rec-tests-"))
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Always replaced, never defaulted: a developer's own Hub token and cache, or their
# downloaded MovieLens, must not leak into the tests.
os.environ["HF_HOME"] = str(_SCRATCH / "hf-home")
os.environ["PROFILE_REC_CACHE"] = str(_SCRATCH / "profile-rec-cache")

import pytest  # noqa: E402

from profile_rec.synthetic import write_movielens_1m, write_movielens_100k  # noqa: E402

# The Hub-compatible test server and its ``hub_server`` fixture.
pytest_plugins = ["hub_server"]

#: A small but complete training configuration for tests.
TINY_TRAINING = {
    "n_profiles": 4,
    "embedding_dim": 8,
    "epochs": 3,
    "batch_size": 64,
    "steps_per_execution": 4,
}


@pytest.fixture(scope="session")
def ml1m_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated ML-1M folder: 60 users, 40 movies (38 rated), 2,000 ratings.

    Shared by the whole session, so tests must not change it. The same release,
    zipped, is at ``ml1m_dir.parent / "ml-1m.zip"`` (see the ``ml1m_zip`` fixture).
    """
    root = tmp_path_factory.mktemp("generated-ml-1m")
    write_movielens_1m(
        root / "ml-1m",
        n_users=60,
        n_movies=40,
        n_ratings=2_000,
        seed=0,
        zip_path=root / "ml-1m.zip",
    )
    return root / "ml-1m"


@pytest.fixture(scope="session")
def ml1m_zip(ml1m_dir: Path) -> Path:
    """``ml1m_dir`` as the official zip lays it out: ``ml-1m/<file>.dat`` members."""
    return ml1m_dir.parent / "ml-1m.zip"


@pytest.fixture(scope="session")
def ml100k_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated ML-100K folder: 50 users, 60 movies (57 rated), 1,500 ratings.

    Shared by the whole session, so tests must not change it.
    """
    return write_movielens_100k(
        tmp_path_factory.mktemp("generated-ml-100k") / "ml-100k",
        n_users=50,
        n_movies=60,
        n_ratings=1_500,
        seed=0,
    )


def train_tiny(data_dir: Path, out: Path, *, seed: int = 0) -> Path:
    """Train a small model on ``data_dir`` and save its artifact folder at ``out``."""
    from profile_rec.config import TrainingConfig
    from profile_rec.data import load_movielens
    from profile_rec.training import train

    config = TrainingConfig.preset("default", seed=seed, **TINY_TRAINING)
    recommender = train(load_movielens(data_dir), config, verbose=0)
    return recommender.save_pretrained(out)


@pytest.fixture(scope="session")
def artifacts_dir(ml1m_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained artifact folder (tiny model on ``ml1m_dir``); treat it as read-only."""
    return train_tiny(ml1m_dir, tmp_path_factory.mktemp("trained") / "artifacts")
