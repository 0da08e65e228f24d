"""The benchmark runs and reports every figure; the training speed-ups learn the same.

Nothing here asserts a timing: the targets are checked by running the benchmark
itself (see README.md, "Performance").
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from profile_rec.config import TrainingConfig
from profile_rec.mapping import MovieIndex

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = REPO / "benchmarks" / "benchmark.py"

# Row names, without the number of epochs some of them carry in parentheses.
EXPECTED_ROWS = [
    "Parse ratings.dat, users.dat, movies.dat",
    "Features: favourite genres + feature frame",
    "Profiles: KMeans fit",
    *(
        f"profile-rec train{flag} (default preset): {what}"
        for flag in ("", " --evaluation none")
        for what in ("wall time", "CPU time", "peak memory")
    ),
    *(
        f"Train --preset {preset}: {what}"
        for preset in ("card", "default")
        for what in (
            "train_model",
            "plain model.fit",
            "speed-up over plain fit",
            "final loss, train_model",
            "final loss, plain fit",
            "loss difference",
        )
    ),
    "recommend(), one person, warm: p50",
    "recommend(), one person, warm: p99",
    "recommend_batch(), 10,000 people",
    "Fresh process to first recommendation",
    "Space app start to ready (files cached)",
]
NUMBER = re.compile(r"^\d[\d,]*(\.\d+)?( s| ms| MB| %|x)?$")


def _load_benchmark():
    name = "profile_rec_benchmark"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARK)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look themselves up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_quick_benchmark_prints_every_row_with_a_number():
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cells = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| Measurement")
    ]
    values = {re.sub(r" \(\d+ epochs\)$", "", name): value for name, value, _ in cells}
    assert list(values) == EXPECTED_ROWS
    app_runs = (REPO / "space_app" / "app.py").is_file() and bool(
        importlib.util.find_spec("gradio")
    )
    for name, value in values.items():
        if name.startswith("Space app") and not app_runs:
            assert value == "n/a"
        else:
            assert NUMBER.match(value), f"{name}: {value!r}"


def _tiny_problem(seed=0):
    rng = np.random.default_rng(seed)
    index = MovieIndex(np.arange(10, 410, 10))
    profiles = rng.integers(0, 4, 3_000)
    movies = rng.choice(index.movie_ids, 3_000)
    ratings = (1 + (profiles * 7 + movies // 10) % 5).astype("float32")
    return index, profiles, movies, ratings


@pytest.mark.parametrize("xla", [True, False], ids=["xla", "no-xla"])
@pytest.mark.parametrize("preset", ["card", "default"])
def test_train_model_learns_what_a_plain_fit_learns(preset, xla, monkeypatch):
    model_module = pytest.importorskip("profile_rec.model")
    keras = model_module.keras
    if xla:  # a tiny run would skip XLA as not worth compiling
        monkeypatch.setattr(model_module, "_MIN_STEPS_FOR_XLA", 0)
    config = TrainingConfig.preset(
        preset, embedding_dim=8, epochs=4, batch_size=64, steps_per_execution=8
    )
    index, profiles, movies, ratings = _tiny_problem()
    rng = np.random.default_rng(1)
    tables = (rng.random((4, 3)), rng.random((index.n_rows, 3)))

    trained = {}
    for how in ("train_model", "plain"):
        keras.utils.set_random_seed(config.seed)
        model = model_module.build_model(
            4, index, config, mean_rating=3.0, genre_tables=tables
        )
        if how == "plain":
            history = _load_benchmark().plain_fit(
                model, profiles, movies, ratings, config
            )
        else:
            history = model_module.train_model(
                model, profiles, movies, ratings, config, verbose=0
            )
        trained[how] = (history, model_module.export_weights(model))

    (fast, fast_weights), (plain, plain_weights) = trained.values()
    assert sorted(fast) == sorted(plain)
    for key in plain:
        np.testing.assert_allclose(fast[key], plain[key], rtol=1e-4, err_msg=key)
    for name in plain_weights:
        np.testing.assert_allclose(
            fast_weights[name], plain_weights[name], atol=1e-4, err_msg=name
        )
    # The loss fell: this compared two real training runs.
    assert plain["loss"][-1] < 0.9 * plain["loss"][0]
