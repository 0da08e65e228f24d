"""Start-up time and latency under load of the demo Space app, on 127.0.0.1 only.

Starts ``space_app/app.py`` (the file a Space runs) with ``MODEL_REPO`` set, prints
how long it took to be ready, then sends a bounded number of ``recommend`` calls
through Gradio's HTTP API, a fixed number at a time, and prints latency
percentiles and errors::

    .venv/bin/python benchmarks/space_load.py                 # trains a small model
    .venv/bin/python benchmarks/space_load.py --model DIR     # an artifact folder
    .venv/bin/python benchmarks/space_load.py --starts 5 --requests 0  # start-up only

Without ``--model`` it generates MovieLens-100K-sized synthetic data and trains on
it first (about a minute, TensorFlow). The app runs under a time limit and is
stopped before exit; requests go to 127.0.0.1 and nowhere else.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "space_app" / "app.py"
sys.path.insert(0, str(REPO / "tests"))  # space_process: run the app until ready

from space_process import app_env, running_app  # noqa: E402

AGES = ["Under 18", "25-34", "45-49", "56+"]
GENDERS = ["Female", "Male"]
OCCUPATIONS = ["programmer", "retired", "K-12 student", "writer", "artist"]
GENRE_SETS = [["Comedy", "Romance"], ["Drama"], ["Sci-Fi", "Action", "Thriller"]]


def people(n: int) -> list[list]:
    """``n`` API argument lists cycling through varied people and sizes."""
    combos = itertools.cycle(
        itertools.product(AGES, GENDERS, OCCUPATIONS, GENRE_SETS, [5, 10, 20])
    )
    return [list(next(combos)) for _ in range(n)]


def call_recommend(client, url: str, args: list) -> tuple[float, str | None]:
    """One call through Gradio's REST API: seconds taken and an error, if any."""
    started = time.perf_counter()
    try:
        posted = client.post(f"{url}/gradio_api/call/recommend", json={"data": args})
        posted.raise_for_status()
        event_id = posted.json()["event_id"]
        result = client.get(f"{url}/gradio_api/call/recommend/{event_id}")
        result.raise_for_status()
    except Exception as exc:  # noqa: BLE001 - every failure is counted, not raised
        return time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    # The stream ends with "event: complete" and the outputs, or "event: error".
    events = [line for line in result.text.splitlines() if line.startswith("event:")]
    if not events or events[-1] != "event: complete":
        return seconds, f"no complete event: {result.text[:200]!r}"
    data = next(
        line for line in reversed(result.text.splitlines()) if line.startswith("data:")
    )
    rows = json.loads(data[len("data:") :])[0]["data"]
    if not 1 <= len(rows) <= args[-1]:
        return seconds, f"asked for {args[-1]} movies, got {len(rows)} rows"
    return seconds, None


def run_load(url: str, n_requests: int, concurrency: int) -> dict:
    """Send ``n_requests`` calls, ``concurrency`` at a time; latency summary."""
    import httpx

    with (
        httpx.Client(timeout=60.0) as client,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        started = time.perf_counter()
        results = list(
            pool.map(lambda args: call_recommend(client, url, args), people(n_requests))
        )
        elapsed = time.perf_counter() - started
    latencies = sorted(seconds for seconds, _ in results)
    errors = [error for _, error in results if error]
    cuts = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else latencies * 99
    )
    return {
        "requests": n_requests,
        "concurrency": concurrency,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * cuts[94],
        "max_ms": 1000 * latencies[-1],
        "per_second": n_requests / elapsed,
    }


def measure_startup(model: str, scratch: Path) -> tuple[float, float, float]:
    """Start the app once and stop it.

    Returns the seconds to ready by the app's clock, by the wall clock from
    spawning the process, and the CPU seconds the app had used by then (which
    other work on the machine does not inflate).
    """
    env = app_env(scratch, MODEL_REPO=model, HF_HUB_OFFLINE="1")
    with running_app([sys.executable, str(APP)], cwd=scratch, env=env) as app:
        return app.ready_seconds, app.wall_seconds, app.cpu_seconds


def train_small_model(scratch: Path) -> Path:
    from profile_rec.config import TrainingConfig
    from profile_rec.data import load_movielens
    from profile_rec.synthetic import write_movielens_100k
    from profile_rec.training import train

    print("Training a model on synthetic MovieLens-100K-sized data...", flush=True)
    data_dir = write_movielens_100k(
        scratch / "ml-100k", n_users=943, n_movies=1_682, n_ratings=100_000, seed=0
    )
    recommender = train(load_movielens(data_dir), TrainingConfig.preset("default"))
    return recommender.save_pretrained(scratch / "artifacts")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="artifact folder (default: train one)")
    parser.add_argument("--requests", type=int, default=200, help="at most 1000")
    parser.add_argument("--concurrency", type=int, default=20, help="at most 50")
    parser.add_argument("--starts", type=int, default=1, help="start-ups to time")
    args = parser.parse_args(argv)
    if not 0 <= args.requests <= 1000 or not 1 <= args.concurrency <= 50:
        parser.error("--requests must be 0..1000 and --concurrency 1..50.")

    with tempfile.TemporaryDirectory(prefix="space-load-") as tmp:
        scratch = Path(tmp)
        model = args.model or str(train_small_model(scratch))
        if Path(model).exists():  # The app runs in the scratch folder.
            model = str(Path(model).resolve())
        for run in range(1, args.starts + 1):
            reported, wall, cpu = measure_startup(model, scratch)
            print(
                f"start-up {run}: ready in {reported:.1f} s by the app's clock, "
                f"{wall:.1f} s from process start, {cpu:.1f} s CPU"
            )
        if not args.requests:
            return
        env = app_env(scratch, MODEL_REPO=model, HF_HUB_OFFLINE="1")
        with running_app([sys.executable, str(APP)], cwd=scratch, env=env) as app:
            run_load(app.url, 1, 1)  # warm-up: the first call sets up the queue
            summary = run_load(app.url, args.requests, args.concurrency)
    print(
        f"{summary['requests']} requests, {summary['concurrency']} at a time: "
        f"{summary['errors']} errors, p50 {summary['p50_ms']:.0f} ms, "
        f"p95 {summary['p95_ms']:.0f} ms, max {summary['max_ms']:.0f} ms, "
        f"{summary['per_second']:.1f} requests/s"
    )
    if summary["errors"]:
        print(f"first error: {summary['first_error']}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
