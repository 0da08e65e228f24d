"""Train the whole recommender: profiles, then the Keras scoring model."""

from __future__ import annotations

import importlib.metadata
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .config import TrainingConfig
from .data import AGE_BUCKETS, GENDERS, GENRES, OCCUPATIONS, DataError, MovieLens
from .mapping import MovieIndex
from .plots import profiles_png
from .profiles import (
    favourite_genres,
    genre_matrix,
    make_profile_pipeline,
    ticked_genres,
    user_feature_frame,
)
from .recommender import FORMAT_VERSION, MODEL_FILE, PLOT_FILE, ProfileRecommender


def library_versions() -> dict[str, str]:
    """Versions of the libraries a trained model depends on."""
    names = ["profile-rec", "numpy", "pandas", "scikit-learn", "skops"]
    names += ["keras", "tensorflow-cpu", "tensorflow"]
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def fit_profiles(data: MovieLens, config: TrainingConfig):
    """Fit the profile pipeline on every user; return it and each user's profile.

    Returns
    -------
    pipeline : Pipeline
        The fitted feature transform + KMeans.
    profiles : Series
        Profile id per ``user_id``.
    favourites : Series
        Favourite genres per ``user_id``: from their first
        ``config.genres_from_first`` ratings, or from all when that is 0.
    """
    if config.genres_from_first > 0:
        favourites = ticked_genres(
            data.ratings,
            data.movies,
            n_first=config.genres_from_first,
            n_top=config.n_top_genres,
            min_ratings=config.min_genre_ratings,
        )
    else:
        favourites = favourite_genres(
            data.ratings,
            data.movies,
            n_top=config.n_top_genres,
            min_ratings=config.min_genre_ratings,
        )
    features = user_feature_frame(data.users, favourites)
    pipeline = make_profile_pipeline(
        config.n_profiles,
        genre_weight=config.genre_weight,
        random_state=config.seed,
    )
    # One thread: KMeans' threads slow it about 10x when other work shares the
    # cores, and the clustering is the same.
    with threadpool_limits(1):
        labels = pipeline.fit_predict(features)
    profiles = pd.Series(labels, index=data.users["user_id"].to_numpy(), name="profile")
    return pipeline, profiles, favourites


def describe_profiles(
    users: pd.DataFrame, profiles: pd.Series, favourites: pd.Series
) -> list[dict[str, Any]]:
    """What each profile's members are like, for people to read."""
    members = users.set_index("user_id").assign(profile=profiles)
    members["genres"] = favourites.reindex(members.index).apply(
        lambda g: g if isinstance(g, tuple) else ()
    )
    described = []
    for profile in range(int(profiles.max()) + 1):
        group = members[members["profile"] == profile]
        size = len(group)
        ages = group["age"].map(AGE_BUCKETS).value_counts(normalize=True)
        occupations = group["occupation"].value_counts(normalize=True).head(3)
        genre_counts = pd.Series(
            [g for chosen in group["genres"] for g in chosen], dtype=object
        ).value_counts()
        described.append(
            {
                "id": profile,
                "size": size,
                "female_share": round(float((group["gender"] == "F").mean()), 3)
                if size
                else 0.0,
                "ages": {k: round(float(v), 3) for k, v in ages.items()},
                "top_occupations": {
                    k: round(float(v), 3) for k, v in occupations.items()
                },
                "genre_share": {
                    g: round(float(genre_counts.get(g, 0)) / size, 3) if size else 0.0
                    for g in GENRES
                },
            }
        )
    return described


def _start_movie_bias(
    model,
    movie_index: MovieIndex,
    movie_ids: np.ndarray,
    ratings: np.ndarray,
    config: TrainingConfig,
    mean_rating: float,
) -> None:
    """Start each movie's bias at its mean rating, shrunk towards the overall mean.

    Training then only has to learn what the profiles add; starting every movie at
    the overall mean instead made early stopping end before rarely rated movies
    had moved, and the model predicted new users' ratings worse than the movies'
    mean ratings did.
    """
    rows = movie_index.rows(movie_ids)
    sums = np.bincount(rows, weights=ratings, minlength=movie_index.n_rows)
    counts = np.bincount(rows, minlength=movie_index.n_rows)
    prior = config.movie_bias_prior
    start = (sums + prior * mean_rating) / (counts + prior)
    model.get_layer("movie_bias").set_weights([start[:, None].astype(np.float32)])


def genre_tables(
    profiles: pd.Series,
    favourites: pd.Series,
    movies: pd.DataFrame,
    movie_index: MovieIndex,
    n_profiles: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed tables of the genre-affinity term.

    Returns
    -------
    profile_genres : ndarray of shape (n_profiles, n_genres)
        Per profile, the share of its members who picked each genre as a
        favourite.
    movie_genres : ndarray of shape (movie_index.n_rows, n_genres)
        Per embedding row, the movie's genres, each ``1 / its number of genres``;
        zero for the unknown row and for movies without genres.
    """
    picked = genre_matrix(
        [g if isinstance(g, tuple) else () for g in favourites.reindex(profiles.index)]
    )
    labels = profiles.to_numpy()
    members = np.bincount(labels, minlength=n_profiles)[:, None]
    profile_genres = np.zeros((n_profiles, picked.shape[1]))
    np.add.at(profile_genres, labels, picked)
    profile_genres /= np.maximum(members, 1)

    known = movies[movies["movie_id"].isin(movie_index.movie_ids)]
    movie_genres = np.zeros((movie_index.n_rows, picked.shape[1]))
    movie_genres[movie_index.rows(known["movie_id"].to_numpy())] = genre_matrix(
        list(known["genres"])
    )
    movie_genres /= np.maximum(movie_genres.sum(axis=1, keepdims=True), 1)
    return profile_genres, movie_genres


def check_trainable(data: MovieLens, config: TrainingConfig) -> None:
    """Refuse, before any work, data too small for ``config``.

    Raises
    ------
    DataError
        Saying what is too small and which option to change.
    """
    n_users, n_ratings = len(data.users), len(data.ratings)
    if n_users < config.n_profiles:
        raise DataError(
            f"{data.name} has {n_users} users, fewer than the {config.n_profiles} "
            f"profiles asked for; use --profiles {max(n_users, 1)} or fewer."
        )
    if n_ratings < 1:
        raise DataError(f"{data.name} has no ratings to train on.")
    if config.validation_fraction > 0:
        raters = np.unique(data.ratings["user_id"].to_numpy())
        if len(raters) < 2:
            raise DataError(
                f"{data.name} has ratings from {len(raters)} user: too few to hold "
                f"out {config.validation_fraction:.0%} of the users for early "
                "stopping; add users, or use --preset card, which holds none out."
            )


def train(
    data: MovieLens,
    config: TrainingConfig | None = None,
    *,
    preset: str = "default",
    verbose: int | str = "auto",
    files: bool = True,
) -> ProfileRecommender:
    """Train profiles and the scoring model on ``data``.

    Parameters
    ----------
    data : MovieLens
        Ratings, users and movies from :func:`profile_rec.data.load_movielens`.
    config : TrainingConfig, optional
        Defaults to ``TrainingConfig.preset(preset)``.
    preset : str, default="default"
        Recorded in the artifacts; used for ``config`` when it is not given.
    verbose : int or "auto"
        Keras' progress display: ``"auto"``/1 a bar, 2 one line per epoch, 0 none.
    files : bool, default=True
        Also write the Keras model file and the profiles plot that
        :meth:`~ProfileRecommender.save_pretrained` needs; a model that is only
        scored, as in an evaluation, can skip them.

    Returns
    -------
    ProfileRecommender
        Ready to recommend and to :meth:`~ProfileRecommender.save_pretrained`.
    """
    config = config or TrainingConfig.preset(preset)
    check_trainable(data, config)
    from . import model as keras_model  # TensorFlow loads only when training.

    started = time.perf_counter()
    keras_model.keras.utils.set_random_seed(config.seed)

    pipeline, profiles, favourites = fit_profiles(data, config)
    ratings = data.ratings
    movie_index = MovieIndex(np.unique(ratings["movie_id"].to_numpy()))
    profile_ids = profiles.loc[ratings["user_id"].to_numpy()].to_numpy()
    movie_ids = ratings["movie_id"].to_numpy()
    values = ratings["rating"].to_numpy(dtype=np.float32)
    user_ids = ratings["user_id"].to_numpy()
    # The ratings early stopping holds out are judged, never learned from: not
    # even through the mean rating or the movies' starting biases.
    _, fit = keras_model.validation_split(len(values), config, user_ids=user_ids)
    mean_rating = float(values[fit].mean())

    tables = None
    if config.genre_affinity:
        tables = genre_tables(
            profiles, favourites, data.movies, movie_index, config.n_profiles
        )
    model = keras_model.build_model(
        config.n_profiles,
        movie_index,
        config,
        mean_rating=mean_rating,
        genre_tables=tables,
    )
    if config.use_bias and config.movie_bias_prior > 0:
        _start_movie_bias(
            model, movie_index, movie_ids[fit], values[fit], config, mean_rating
        )
    history = keras_model.train_model(
        model,
        profile_ids,
        movie_ids,
        values,
        config,
        user_ids=user_ids,
        verbose=verbose,
    )
    if config.use_bias and config.refit_movie_bias:
        mean_rating = keras_model.refit_movie_bias(
            model,
            profile_ids,
            movie_index.rows(movie_ids),
            values,
            config.movie_bias_prior,
        )
    keras_model.settle_unknown_movie(model, mean_rating)
    weights = keras_model.export_weights(model)
    counts = np.zeros((config.n_profiles, movie_index.n_rows), dtype=np.int32)
    np.add.at(counts, (profile_ids, movie_index.rows(movie_ids)), 1)
    weights["rating_count"] = counts

    keras_bytes = None
    if files:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            model.save(path)
            keras_bytes = path.read_bytes()

    rated = data.movies[data.movies["movie_id"].isin(movie_index.movie_ids)]
    config_json = {
        "format_version": FORMAT_VERSION,
        "preset": preset,
        "training": config.to_dict(),
        "n_profiles": config.n_profiles,
        "mean_rating": mean_rating,
        "movie_ids": movie_index.movie_ids.tolist(),
        "unknown_movie": (
            "Movie ids the model never saw map to one shared row whose embedding "
            "is zero"
            + (" and whose bias is the mean rating." if config.use_bias else ".")
        ),
        "vocabulary": {
            "ages": list(AGE_BUCKETS),
            "age_labels": list(AGE_BUCKETS.values()),
            "genders": list(GENDERS),
            "occupations": list(OCCUPATIONS),
            "genres": list(GENRES),
        },
        "last_year": int(rated["year"].max()) if rated["year"].notna().any() else None,
        "profiles": describe_profiles(data.users, profiles, favourites),
        "dataset": {
            "name": data.name,
            "checksum": data.checksum,
            "n_users": int(data.users.shape[0]),
            "n_movies": len(movie_index),
            "n_ratings": int(ratings.shape[0]),
        },
        "versions": library_versions(),
    }
    metrics = {
        "training": {
            "epochs_run": len(history["loss"]),
            "loss": history["loss"][-1],
            "mae": history["mae"][-1],
            "history": history,
            "seconds": round(time.perf_counter() - started, 2),
        }
    }
    if "val_loss" in history:
        best = keras_model.kept_epoch(history["val_loss"], config)
        metrics["training"]["best_epoch"] = best + 1
        metrics["training"]["val_rmse"] = history["val_rmse"][best]
        metrics["training"]["val_mae"] = history["val_mae"][best]
    recommender = ProfileRecommender(
        pipeline=pipeline,
        weights=weights,
        movies=rated.reset_index(drop=True),
        config=config_json,
        metrics=metrics,
        files=(
            {MODEL_FILE: keras_bytes, PLOT_FILE: profiles_png(config_json)}
            if files
            else {}
        ),
    )
    metrics["recommendations"] = list_variety(recommender.ranking_scores)
    return recommender


def list_variety(scores: np.ndarray, k: int = 10) -> dict[str, int]:
    """How much the profiles' top ``k`` lists differ, from (profiles x movies) scores.

    Returns
    -------
    dict
        ``k``, ``distinct_lists`` (how many different top-``k`` lists, order
        included) and ``distinct_movies`` (movies in at least one of them).
    """
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {
        "k": int(top.shape[1]),
        "distinct_lists": len({tuple(row) for row in top.tolist()}),
        "distinct_movies": len(np.unique(top)),
    }
