"""The ``profile-rec`` command line."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from .data import GENRES, OCCUPATIONS

app = typer.Typer(
    help="Cold-start movie recommendations from demographics and favourite genres.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)

DEFAULT_OUT = Path("artifacts")


class _ExpectedFailure(Exception):
    """Failure caused by input or environment, reported without a traceback."""


@contextlib.contextmanager
def _user_errors():
    """Turn the errors a user can fix into a one-line message and exit code 1."""
    from .data import DataError
    from .profiles import InvalidPersonError
    from .recommender import ArtifactError

    try:
        yield
    except (DataError, InvalidPersonError, ArtifactError, _ExpectedFailure) as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help=(
            "MovieLens folder (ml-1m or ml-100k layout) or the ml-1m.zip file. "
            "Without it, MovieLens 1M is downloaded once and cached."
        ),
    ),
]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Where the download is cached [default: $PROFILE_REC_CACHE or "
        "~/.cache/profile-rec].",
    ),
]


@app.command()
def train(
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the artifacts to.")
    ] = DEFAULT_OUT,
    data_dir: DataDirOption = None,
    cache_dir: CacheDirOption = None,
    preset: Annotated[
        str,
        typer.Option(
            help="'default' (biases, early stopping, evidence-aware ranking) or "
            "'card' (the plain configuration the model card describes)."
        ),
    ] = "default",
    profiles: Annotated[
        int | None,
        typer.Option(
            help="Number of KMeans profiles [default: the preset's].",
            min=1,
            metavar="N",
        ),
    ] = None,
    embedding_dim: Annotated[
        int | None,
        typer.Option(
            help="Embedding size [default: the preset's].", min=1, metavar="N"
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Maximum number of epochs; early stopping may end sooner "
            "[default: the preset's].",
            min=1,
            metavar="N",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Ratings per training step [default: the preset's].",
            min=1,
            metavar="N",
        ),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            help="Adam learning rate [default: the preset's].",
            min=1e-9,
            metavar="RATE",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed for a reproducible run.", min=0, max=2**32 - 1)
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="One line per epoch, no bar.")
    ] = False,
    evaluation: Annotated[
        str,
        typer.Option(
            help="'quick': also train on 80% of users and compare with the "
            "baselines on the other 20% (the model card shows it); 'full': as "
            "'profile-rec evaluate' (adds the card preset and known users); 'none'."
        ),
    ] = "quick",
) -> None:
    """Train on MovieLens and write the model, profile pipeline and model card."""
    from .config import TrainingConfig
    from .data import load_movielens

    overrides = {
        "n_profiles": profiles,
        "embedding_dim": embedding_dim,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
    }
    with _user_errors():
        try:
            config = TrainingConfig.preset(
                preset,
                seed=seed,
                **{k: v for k, v in overrides.items() if v is not None},
            )
        except ValueError as exc:
            raise _ExpectedFailure(str(exc)) from None
        if evaluation not in _EVALUATIONS:
            raise _ExpectedFailure(
                f"Unknown --evaluation {evaluation!r}; choose quick, full or none."
            )
        _check_out_folder(out)
        data = load_movielens(data_dir, cache_dir=cache_dir)
        typer.echo(
            f"Loaded {data.name}: {len(data.ratings):,} ratings, "
            f"{len(data.users):,} users, {len(data.movies):,} movies."
        )
        from .evaluation import check_evaluable
        from .training import check_trainable
        from .training import train as train_recommender

        check_trainable(data, config)
        if evaluation != "none":
            check_evaluable(data, config, _EVALUATIONS[evaluation][0])

        recommender = train_recommender(
            data, config, preset=preset, verbose=2 if quiet else "auto"
        )
        results = None
        if evaluation != "none":
            results = _run_evaluation(data, config, preset, _EVALUATIONS[evaluation])
            recommender.metrics["evaluation"] = results
            _attach_plot(recommender, results)
        recommender.save_pretrained(out)
    typer.echo(f"Saved artifacts to {out}")
    typer.echo(json.dumps(_headline_metrics(recommender.metrics), indent=2))
    sample = recommender.recommend(
        age=25, gender="F", occupation="programmer", genres=["Comedy", "Romance"], k=5
    )
    typer.echo("\nSample: 25-34, F, programmer, likes Comedy and Romance")
    _print_table(sample)


def _check_out_folder(out: Path) -> None:
    """Fail before training, not after, when ``--out`` cannot be written."""
    from .recommender import check_replaceable

    out = out.resolve()
    check_replaceable(out)
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        raise _ExpectedFailure(
            f"Cannot create {out}: {parent} is not writable. Choose another --out."
        )


def _headline_metrics(metrics: dict) -> dict:
    training = metrics.get("training", {})
    return {k: v for k, v in training.items() if k != "history"}


# What 'train --evaluation' runs: protocols, and whether to add the card preset.
_EVALUATIONS = {
    "quick": (("new_user",), False),
    "full": (("new_user", "warm"), True),
    "none": ((), False),
}


def _run_evaluation(data, config, preset: str, how) -> dict:
    """Evaluate ``config`` and the baselines, print the table and return it all."""
    import time

    from .evaluation import evaluate as evaluate_config
    from .evaluation import results_text

    protocols, compare_card = how
    typer.echo(
        f"Evaluating ({', '.join(protocols)}"
        f"{', with the card preset' if compare_card else ''}) ..."
    )
    started = time.perf_counter()
    results = evaluate_config(
        data, config, preset=preset, protocols=protocols, compare_card=compare_card
    )
    typer.echo(results_text(results))
    typer.echo(f"Evaluated in {time.perf_counter() - started:.1f} s.")
    return results


def _attach_plot(recommender, results: dict) -> None:
    """Add the results chart to the artifacts, when matplotlib is installed."""
    import io

    from .evaluation import PLOT_FILE, plot_results

    if "new_user" not in results:
        return
    buffer = io.BytesIO()
    try:
        plot_results(results, buffer)
    except ImportError:
        typer.echo(f"No {PLOT_FILE}: plotting needs matplotlib.", err=True)
        return
    recommender.attach(PLOT_FILE, buffer.getvalue())


@app.command()
def evaluate(
    data_dir: DataDirOption = None,
    cache_dir: CacheDirOption = None,
    preset: Annotated[
        str, typer.Option(help="The configuration to evaluate: 'default' or 'card'.")
    ] = "default",
    seed: Annotated[
        int,
        typer.Option(help="Seed of the splits and of training.", min=0, max=2**32 - 1),
    ] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="JSON file for the results, under the key 'evaluation'; an "
            "existing JSON file (such as an artifact folder's metrics.json) keeps "
            "its other keys."
        ),
    ] = None,
    protocol: Annotated[
        list[str] | None,
        typer.Option(
            help="'new-user' (held-out users, the headline) or 'warm' (held-out "
            "ratings); repeat for both [default: both]."
        ),
    ] = None,
    card: Annotated[
        bool,
        typer.Option("--card/--no-card", help="Also evaluate the card preset."),
    ] = True,
    profiles: Annotated[
        int | None, typer.Option(help="Number of KMeans profiles.", min=1)
    ] = None,
    embedding_dim: Annotated[
        int | None, typer.Option(help="Embedding size.", min=1)
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs.", min=1)] = None,
) -> None:
    """Compare a configuration with simple baselines on users it never saw."""
    from .config import TrainingConfig
    from .data import load_movielens

    overrides = {
        "n_profiles": profiles,
        "embedding_dim": embedding_dim,
        "epochs": epochs,
    }
    names = {"new-user": "new_user", "new_user": "new_user", "warm": "warm"}
    with _user_errors():
        unknown = [p for p in protocol or () if p not in names]
        if unknown:
            raise _ExpectedFailure(
                f"Unknown --protocol {unknown[0]!r}; choose new-user or warm."
            )
        protocols = tuple(dict.fromkeys(names[p] for p in protocol or names))
        try:
            config = TrainingConfig.preset(
                preset, seed=seed, **{k: v for k, v in overrides.items() if v}
            )
        except ValueError as exc:
            raise _ExpectedFailure(str(exc)) from None
        existing = _read_json_object(out) if out is not None else {}
        data = load_movielens(data_dir, cache_dir=cache_dir)
        typer.echo(
            f"Loaded {data.name}: {len(data.ratings):,} ratings, "
            f"{len(data.users):,} users, {len(data.movies):,} movies."
        )
        results = _run_evaluation(data, config, preset, (protocols, card))
        if out is not None:
            existing["evaluation"] = results
            out.write_text(json.dumps(existing, indent=2) + "\n")
            typer.echo(f"Saved the results to {out}")


def _read_json_object(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise _ExpectedFailure(
            f"{path} exists and is not a JSON object; choose another --out file."
        )
    return value


@app.command()
def recommend(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Artifact folder from 'profile-rec train', or a Hub repo id.",
        ),
    ] = str(DEFAULT_OUT),
    age: Annotated[
        str,
        typer.Option(
            help="Age in years (e.g. 30) or a bracket: Under 18, 18-24, 25-34, "
            "35-44, 45-49, 50-55, 56+."
        ),
    ] = ...,
    gender: Annotated[str, typer.Option(help="F or M.")] = ...,
    occupation: Annotated[
        str, typer.Option(help="One of: " + ", ".join(OCCUPATIONS) + ".")
    ] = ...,
    genres: Annotated[
        str,
        typer.Option(help="Comma-separated favourites from: " + ", ".join(GENRES)),
    ] = ...,
    k: Annotated[int, typer.Option("-k", "--k", help="How many movies.", min=1)] = 10,
    exclude: Annotated[
        str, typer.Option(help="Comma-separated MovieLens ids to leave out.")
    ] = "",
    revision: Annotated[
        str | None, typer.Option(help="Hub branch, tag or commit.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of a table.")
    ] = False,
) -> None:
    """Recommend movies for a new person."""
    from .recommender import ProfileRecommender

    with _user_errors():
        try:
            excluded = [int(x) for x in exclude.split(",") if x.strip()]
        except ValueError:
            raise _ExpectedFailure(
                f"--exclude takes comma-separated movie ids, got {exclude!r}."
            ) from None
        age_value: int | str = int(age) if age.strip().isdigit() else age
        recommender = ProfileRecommender.from_pretrained(model, revision=revision)
        result = recommender.recommend(
            age=age_value,
            gender=gender,
            occupation=occupation,
            genres=genres,
            k=k,
            exclude=excluded,
        )
    if as_json:
        for row in result.itertuples(index=False):
            record = {
                "movie_id": int(row.movie_id),
                "title": row.title,
                "year": _year(row.year),
                "genres": list(row.genres),
                "score": float(row.score),
                "predicted_rating": float(row.predicted_rating),
                "profile": int(row.profile),
            }
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    typer.echo(_profile_line(recommender.config, int(result["profile"].iloc[0])))
    _print_table(result)


def _profile_line(config: dict, profile: int) -> str:
    from .card import _share_list

    described = config["profiles"][profile]
    return (
        f"Profile {profile} of {len(config['profiles'])}: "
        f"{described['size']:,} MovieLens users, {described['female_share']:.0%} "
        f"women; ages {_share_list(described['ages'])}; "
        f"favourite genres {_share_list(described['genre_share'], 3) or 'none'}."
    )


def _year(value) -> int | None:
    import pandas as pd

    return None if pd.isna(value) else int(value)


def _print_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False)
    for column, justify in [
        ("#", "right"),
        ("title", "left"),
        ("year", "right"),
        ("genres", "left"),
        ("predicted rating", "right"),
        ("id", "right"),
    ]:
        table.add_column(column, justify=justify)
    for rank, row in enumerate(result.itertuples(index=False), start=1):
        year = _year(row.year)
        table.add_row(
            str(rank),
            row.title,
            "" if year is None else str(year),
            ", ".join(row.genres),
            f"{row.predicted_rating:.2f}",
            str(row.movie_id),
        )
    Console(soft_wrap=True).print(table)


@app.command()
def demo(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Artifact folder from 'profile-rec train', or a Hub repo id.",
        ),
    ] = str(DEFAULT_OUT),
    revision: Annotated[
        str | None, typer.Option(help="Hub branch, tag or commit.")
    ] = None,
    port: Annotated[
        int, typer.Option(help="Port to serve on, on 127.0.0.1.", min=1, max=65535)
    ] = 7860,
) -> None:
    """Serve the web demo (the Space's app) on 127.0.0.1 until Ctrl+C.

    Gradio's usage analytics and version check stay off unless
    GRADIO_ANALYTICS_ENABLED says otherwise: a local demo calls no other host.
    """
    import importlib
    import logging
    import os
    import sys

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    with _user_errors():
        try:
            import gradio  # noqa: F401
        except ImportError:
            raise _ExpectedFailure(
                "The demo needs Gradio: pip install 'profile-rec[space]'."
            ) from None
        # The app reads its model from the variables a Space sets, and loads it
        # on import; a failure is reported here once, not logged by the app too.
        os.environ["MODEL_REPO"] = model
        os.environ.pop("MODEL_REVISION", None)
        if revision:
            os.environ["MODEL_REVISION"] = revision
        name = "profile_rec.space_app.app"
        logging.getLogger(name).setLevel(logging.CRITICAL)
        if name in sys.modules:  # Imported before: load again with this model.
            space_app = importlib.reload(sys.modules[name])
        else:
            space_app = importlib.import_module(name)
        loaded = space_app.LOADED
        if loaded.recommender is None:
            raise _ExpectedFailure(
                f"could not load the model from {model!r}: "
                f"{loaded.cause or loaded.error}"
            )
        try:
            space_app.launch(space_app.demo, server_name="127.0.0.1", server_port=port)
        except OSError:
            raise _ExpectedFailure(
                f"cannot serve on 127.0.0.1:{port}, probably because another "
                "program uses that port; choose another with --port."
            ) from None


def main() -> None:  # pragma: no cover - console script entry
    app()
