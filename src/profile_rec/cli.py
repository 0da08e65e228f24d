"""The ``profile-rec`` command line."""

from __future__ import annotations

import contextlib
import json
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
        int | None, typer.Option(help="Number of KMeans profiles.", min=1)
    ] = None,
    embedding_dim: Annotated[
        int | None, typer.Option(help="Embedding size.", min=1)
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs.", min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.", min=1)] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Adam learning rate.", min=0.0)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for a reproducible run.")] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="One line per epoch, no bar.")
    ] = False,
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
        _check_out_folder(out)
        data = load_movielens(data_dir, cache_dir=cache_dir)
        typer.echo(
            f"Loaded {data.name}: {len(data.ratings):,} ratings, "
            f"{len(data.users):,} users, {len(data.movies):,} movies."
        )
        from .training import train as train_recommender

        recommender = train_recommender(
            data, config, preset=preset, verbose=2 if quiet else "auto"
        )
        recommender.save_pretrained(out)
    typer.echo(f"Saved artifacts to {out}")
    typer.echo(json.dumps(_headline_metrics(recommender.metrics), indent=2))
    sample = recommender.recommend(
        age=25, gender="F", occupation="programmer", genres=["Comedy", "Romance"], k=5
    )
    typer.echo("\nSample: 25-34, F, programmer, likes Comedy and Romance")
    _print_table(sample)


def _check_out_folder(out: Path) -> None:
    from .recommender import CONFIG_FILE

    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / CONFIG_FILE).exists())
    ):
        raise _ExpectedFailure(
            f"{out} exists and is not a profile-rec artifact folder; choose another "
            "--out folder or empty it first."
        )


def _headline_metrics(metrics: dict) -> dict:
    training = metrics.get("training", {})
    return {k: v for k, v in training.items() if k != "history"}


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
        typer.Option(help="Age in years, or a bracket: 1, 18, 25, 35, 45, 50, 56."),
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
    typer.echo(f"Profile {int(result['profile'].iloc[0])}")
    _print_table(result)


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
        ("score", "right"),
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
            f"{row.score:.2f}",
            str(row.movie_id),
        )
    Console(soft_wrap=True).print(table)


def main() -> None:  # pragma: no cover - console script entry
    app()
