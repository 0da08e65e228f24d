"""How fast profile-rec trains and recommends, on data shaped like MovieLens 1M.

Generates a synthetic release with ML-1M's sizes (6,040 users, 3,883 movies of
which 3,706 are rated, 1,000,209 ratings) and its exact file formats into a
temporary folder, then measures every stage and prints one Markdown table of
medians::

    .venv/bin/python benchmarks/benchmark.py            # full size, about 5 min
    .venv/bin/python benchmarks/benchmark.py --train-repeats 3   # about 15 min
    .venv/bin/python benchmarks/benchmark.py --quick    # small data, one run each

Training is timed twice, side by side: through ``profile_rec.model.train_model``
and through a plain ``model.fit`` of the same model (no ``steps_per_execution``,
no XLA), started from the same seed, so the speed-up and the loss difference
compare like with like. Subprocesses (``profile-rec train``, a fresh interpreter
that recommends, the Space app) are timed from start to finish, with their peak
memory read from the kernel's accounting of that child. Everything started here
listens on 127.0.0.1 only, runs under a time limit, and is stopped before exit.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "space_app" / "app.py"

# ML-1M's sizes; --quick uses a release small enough for a smoke test.
FULL_SIZE = {"n_users": 6_040, "n_movies": 3_883, "n_ratings": 1_000_209}
QUICK_SIZE = {"n_users": 300, "n_movies": 400, "n_ratings": 30_000}
PERSON = {
    "age": 25,
    "gender": "F",
    "occupation": "programmer",
    "genres": ["Comedy", "Romance"],
}
N_BATCH_PEOPLE = 10_000

# Seconds before a stuck child is killed: training, or the app coming up.
TRAIN_TIMEOUT = 900
START_TIMEOUT = 120

# What a fresh interpreter runs to time the first recommendation; it exits with 3
# if anything it did imported TensorFlow or Keras.
_COLD_START = textwrap.dedent(
    """
    import sys
    from profile_rec import ProfileRecommender

    model = ProfileRecommender.from_pretrained(sys.argv[1])
    model.recommend(age=25, gender="F", occupation="programmer", genres=["Comedy"])
    heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
    if heavy:
        print("imported", *heavy)
        sys.exit(3)
    """
)


@dataclass
class Row:
    """One line of the result table."""

    name: str
    value: float | None
    unit: str
    target: str = ""

    def formatted(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "x":
            return f"{self.value:.1f}x"
        if self.unit == "%":
            return f"{self.value:.3f} %"
        if self.unit == "":
            return f"{self.value:.4f}"
        if self.unit == "MB":
            return f"{self.value:,.0f} MB"
        digits = 3 if self.value < 1 else 2 if self.value < 10 else 1
        return f"{self.value:.{digits}f} {self.unit}"


@dataclass
class Finished:
    """A child process that ran to the end."""

    seconds: float
    #: User plus system CPU time: less swayed than wall time by other jobs.
    cpu_seconds: float
    peak_mb: float
    returncode: int
    output: str


# Measuring


def median_seconds(function: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_child(command: list[str], *, timeout: float) -> Finished:
    """Run ``command`` to the end; its wall time and its own peak resident memory.

    ``os.wait4`` returns the resource usage of exactly this child (and whatever it
    waited for), unlike ``RUSAGE_CHILDREN``, which keeps the maximum over every
    child so far.
    """
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read().decode("utf-8", "replace")
    cpu_seconds = usage.ru_utime + usage.ru_stime
    # Linux reports ru_maxrss in KiB.
    return Finished(
        seconds, cpu_seconds, usage.ru_maxrss / 1024, process.returncode, output
    )


def check_finished(finished: Finished, what: str) -> Finished:
    if finished.returncode != 0:
        tail = "\n".join(finished.output.splitlines()[-20:])
        raise RuntimeError(
            f"{what} failed with exit code {finished.returncode}:\n{tail}"
        )
    return finished


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_app_start(artifacts: Path) -> float:
    """Seconds from starting the Space app to its page answering on 127.0.0.1."""
    port = free_port()
    app_env = {k: v for k, v in os.environ.items() if k != "MODEL_REVISION"}
    app_env |= {
        "MODEL_REPO": str(artifacts),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
    }
    url = f"http://127.0.0.1:{port}/"
    # No proxy from the environment may stand between us and 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(APP)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=app_env,
        )
        try:
            while time.perf_counter() - started < START_TIMEOUT:
                if process.poll() is not None:
                    log.seek(0)
                    tail = log.read().decode("utf-8", "replace")[-2000:]
                    raise RuntimeError(f"The Space app exited early:\n{tail}")
                try:
                    with opener.open(url, timeout=1) as response:
                        if response.status == 200:
                            return time.perf_counter() - started
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                time.sleep(0.05)
            raise RuntimeError(
                f"The Space app did not answer within {START_TIMEOUT} s."
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# Stages


def measure_data(data_dir: Path, repeats: int) -> tuple[list[Row], Any]:
    from profile_rec.config import TrainingConfig
    from profile_rec.data import load_movielens
    from profile_rec.profiles import (
        favourite_genres,
        make_profile_pipeline,
        user_feature_frame,
    )

    data = load_movielens(data_dir)
    config = TrainingConfig.preset("default")
    parse = median_seconds(lambda: load_movielens(data_dir), repeats)

    def features():
        favourites = favourite_genres(
            data.ratings,
            data.movies,
            n_top=config.n_top_genres,
            min_ratings=config.min_genre_ratings,
        )
        return user_feature_frame(data.users, favourites)

    feature_time = median_seconds(features, repeats)
    frame = features()
    pipeline = make_profile_pipeline(
        config.n_profiles, genre_weight=config.genre_weight, random_state=config.seed
    )
    profile_time = median_seconds(lambda: pipeline.fit_predict(frame), repeats)
    rows = [
        Row("Parse ratings.dat, users.dat, movies.dat", parse, "s", "<= 0.5 s"),
        Row("Features: favourite genres + feature frame", feature_time, "s"),
        Row("Profiles: KMeans fit", profile_time, "s"),
    ]
    return rows, data


def plain_fit(
    model, profile_ids, movie_ids, ratings, config, *, user_ids=None
) -> dict[str, list]:
    """The baseline: ``model.fit`` as documented, with no speed tricks at all.

    Same optimizer, loss, metrics, validation split and early stopping as
    ``train_model``; one call into TensorFlow per batch, no XLA.
    """
    import keras
    import numpy as np

    from profile_rec.model import early_stopping, training_metrics, validation_split

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="mse",
        metrics=training_metrics(),
    )
    inputs = [np.asarray(profile_ids, np.int32), np.asarray(movie_ids, np.int32)]
    ratings = np.asarray(ratings, np.float32)
    validation, callbacks = None, []
    val, fit = validation_split(len(ratings), config, user_ids=user_ids)
    if len(val):
        validation = ([x[val] for x in inputs], ratings[val])
        inputs, ratings = [x[fit] for x in inputs], ratings[fit]
        callbacks.append(early_stopping(config))
    history = model.fit(
        inputs,
        ratings,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=validation,
        callbacks=callbacks,
        shuffle=True,
        verbose=0,
    )
    return history.history


def measure_training(data, repeats: int) -> list[Row]:
    rows = []
    for preset in ("card", "default"):
        fast, plain = [], []
        for _ in range(repeats):  # interleaved, so that load changes hit both
            fast.append(time_training(data, preset, plain=False))
            plain.append(time_training(data, preset, plain=True))
        fast_time = statistics.median(run.seconds for run in fast)
        plain_time = statistics.median(run.seconds for run in plain)
        # Every run starts from the same seed, so the losses repeat too.
        fast_loss, plain_loss = fast[0].loss, plain[0].loss
        flag = f"--preset {preset}"
        rows += [
            Row(f"Train {flag}: train_model ({fast[0].epochs} epochs)", fast_time, "s"),
            Row(
                f"Train {flag}: plain model.fit ({plain[0].epochs} epochs)",
                plain_time,
                "s",
            ),
            Row(
                f"Train {flag}: speed-up over plain fit",
                plain_time / fast_time,
                "x",
                ">= 2x" if preset == "card" else "",
            ),
            Row(f"Train {flag}: final loss, train_model", fast_loss, ""),
            Row(f"Train {flag}: final loss, plain fit", plain_loss, ""),
            Row(
                f"Train {flag}: loss difference",
                100 * abs(fast_loss - plain_loss) / plain_loss,
                "%",
                "<= 1 %",
            ),
        ]
    return rows


@dataclass
class TrainingRun:
    seconds: float
    loss: float
    epochs: int


def time_training(data, preset: str, *, plain: bool) -> TrainingRun:
    """Build the preset's model as ``profile_rec.training.train`` does and fit it."""
    import numpy as np

    from profile_rec import model as keras_model
    from profile_rec.config import TrainingConfig
    from profile_rec.mapping import MovieIndex
    from profile_rec.training import fit_profiles, genre_tables

    config = TrainingConfig.preset(preset)
    _, profiles, favourites = fit_profiles(data, config)
    ratings = data.ratings
    movie_index = MovieIndex(np.unique(ratings["movie_id"].to_numpy()))
    profile_ids = profiles.loc[ratings["user_id"].to_numpy()].to_numpy()
    movie_ids = ratings["movie_id"].to_numpy()
    values = ratings["rating"].to_numpy(dtype=np.float32)
    user_ids = ratings["user_id"].to_numpy()

    keras_model.keras.utils.set_random_seed(config.seed)
    tables = None
    if config.genre_affinity:
        tables = genre_tables(
            profiles, favourites, data.movies, movie_index, config.n_profiles
        )
    model = keras_model.build_model(
        config.n_profiles,
        movie_index,
        config,
        mean_rating=float(values.mean()),
        genre_tables=tables,
    )
    started = time.perf_counter()
    if plain:
        history = plain_fit(
            model, profile_ids, movie_ids, values, config, user_ids=user_ids
        )
    else:
        history = keras_model.train_model(
            model, profile_ids, movie_ids, values, config, user_ids=user_ids, verbose=0
        )
    seconds = time.perf_counter() - started
    return TrainingRun(seconds, float(history["loss"][-1]), len(history["loss"]))


def measure_cli_train(data_dir: Path, artifacts: Path, repeats: int) -> list[Row]:
    """``profile-rec train`` as shipped (with its quick evaluation), then without
    the evaluation, to show what each part costs.

    The shipped command writes ``artifacts``; the other one a folder of its own.
    """
    command = [*_cli_command(), "train", "--data-dir", str(data_dir), "--quiet"]
    rows = []
    for label, extra, out, target in [
        ("", [], artifacts, "<= 30 s"),
        (
            " --evaluation none",
            ["--evaluation", "none"],
            artifacts.with_name("bare"),
            "",
        ),
    ]:
        runs = [
            check_finished(
                run_child([*command, "--out", str(out), *extra], timeout=TRAIN_TIMEOUT),
                f"profile-rec train{label}",
            )
            for _ in range(repeats)
        ]
        name = f"profile-rec train{label} (default preset)"
        rows += [
            Row(
                f"{name}: wall time",
                statistics.median(r.seconds for r in runs),
                "s",
                target,
            ),
            Row(
                f"{name}: CPU time", statistics.median(r.cpu_seconds for r in runs), "s"
            ),
            Row(
                f"{name}: peak memory",
                max(r.peak_mb for r in runs),
                "MB",
                "<= 1,536 MB" if target else "",
            ),
        ]
    return rows


def _cli_command() -> list[str]:
    script = Path(sys.executable).with_name("profile-rec")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from profile_rec.cli import app; app()"]


def measure_recommend(artifacts: Path, quick: bool, repeats: int) -> list[Row]:
    import numpy as np
    import pandas as pd

    from profile_rec.data import AGE_BUCKETS, GENDERS, GENRES, OCCUPATIONS
    from profile_rec.recommender import ProfileRecommender

    model = ProfileRecommender.from_pretrained(artifacts)
    for _ in range(50):
        model.recommend(**PERSON)
    times = []
    for _ in range(200 if quick else 2_000):
        started = time.perf_counter()
        model.recommend(**PERSON)
        times.append(time.perf_counter() - started)
    p50, p99 = np.percentile(np.array(times) * 1e3, [50, 99])

    rng = np.random.default_rng(0)
    people = pd.DataFrame(
        {
            "age": rng.choice(list(AGE_BUCKETS), N_BATCH_PEOPLE),
            "gender": rng.choice(list(GENDERS), N_BATCH_PEOPLE),
            "occupation": rng.choice(list(OCCUPATIONS), N_BATCH_PEOPLE),
            "genres": [
                tuple(rng.choice(GENRES, rng.integers(1, 4), replace=False))
                for _ in range(N_BATCH_PEOPLE)
            ],
        }
    )
    batch = median_seconds(lambda: model.recommend_batch(people, k=10), repeats)
    return [
        Row("recommend(), one person, warm: p50", p50, "ms", "<= 1 ms"),
        Row("recommend(), one person, warm: p99", p99, "ms"),
        Row(f"recommend_batch(), {N_BATCH_PEOPLE:,} people", batch, "s", "<= 1 s"),
    ]


def measure_cold_start(artifacts: Path, repeats: int) -> Row:
    command = [sys.executable, "-c", _COLD_START, str(artifacts)]
    runs = []
    for _ in range(repeats):
        finished = run_child(command, timeout=START_TIMEOUT)
        if finished.returncode == 3:
            raise RuntimeError(f"Inference imported {finished.output.strip()}.")
        runs.append(check_finished(finished, "The cold-start script").seconds)
    return Row(
        "Fresh process to first recommendation",
        statistics.median(runs),
        "s",
        "<= 3 s",
    )


def measure_app_start(artifacts: Path, repeats: int) -> Row:
    name = "Space app start to ready (files cached)"
    if not APP.is_file() or importlib.util.find_spec("gradio") is None:
        return Row(name, None, "s", "<= 8 s")
    runs = [time_app_start(artifacts) for _ in range(repeats)]
    return Row(name, statistics.median(runs), "s", "<= 8 s")


# Output


def print_table(rows: list[Row]) -> None:
    width = max(len(row.name) for row in rows)
    print(f"| {'Measurement':<{width}} | {'Median':>10} | Target      |")
    print(f"|{'-' * (width + 2)}|{'-' * 11}:|-------------|")
    for row in rows:
        print(f"| {row.name:<{width}} | {row.formatted():>10} | {row.target:<11} |")


def seal_environment(scratch: Path) -> None:
    """Offline, no telemetry or analytics, and a Hugging Face cache of our own,
    for this process and every child it starts."""
    os.environ.update(
        HF_HOME=str(scratch / "hf-home"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        GRADIO_ANALYTICS_ENABLED="False",
        TF_CPP_MIN_LOG_LEVEL="2",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Small data and one run of everything: a smoke test, not a measurement.",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="Runs of each short measurement (parsing, fitting, batch, cold start).",
    )
    parser.add_argument(
        "--train-repeats",
        type=int,
        default=1,
        help="Runs of each training measurement, in-process and end to end.",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.train_repeats < 1:
        parser.error("--repeats and --train-repeats must be at least 1.")
    if args.quick:
        args.repeats = args.train_repeats = 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="profile-rec-benchmark-"))
    try:
        seal_environment(scratch)
        print_table(measure_everything(args, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def measure_everything(args: argparse.Namespace, scratch: Path) -> list[Row]:
    from profile_rec.synthetic import write_movielens_1m

    size = QUICK_SIZE if args.quick else FULL_SIZE
    data_dir = write_movielens_1m(scratch / "ml-1m", seed=0, **size)
    artifacts = scratch / "artifacts"

    rows, data = measure_data(data_dir, args.repeats)
    print(
        f"profile-rec benchmark: {len(data.users):,} users, "
        f"{data.ratings['movie_id'].nunique():,} rated movies, "
        f"{len(data.ratings):,} ratings (synthetic, seed 0); "
        f"{os.cpu_count()} CPUs; repeats {args.repeats}, "
        f"training repeats {args.train_repeats}.",
        flush=True,
    )
    # End to end first: it writes the artifact folder the later rows load, and
    # it starts before this process imports TensorFlow and holds memory.
    rows += measure_cli_train(data_dir, artifacts, args.train_repeats)
    rows += measure_training(data, args.train_repeats)
    rows += measure_recommend(artifacts, args.quick, args.repeats)
    rows.append(measure_cold_start(artifacts, args.repeats))
    rows.append(measure_app_start(artifacts, min(args.repeats, 3)))
    print()
    return rows


if __name__ == "__main__":
    main()
