"""Honest evaluation: the model beside simple baselines, on people it never saw.

Two protocols, both seeded and both reported with the same baselines:

``new_user`` (the headline)
    A seeded 20% of users is held out and the model (profiles included) is trained
    on the other 80% only. For each held-out user, the first
    :data:`N_ONBOARDING` ratings by time are the *onboarding*: they are used only to
    pick the user's favourite genres, as a person would tick them in the demo.
    Their later ratings are the test. Rating error (RMSE, MAE) is measured on every
    test rating; ranking quality (NDCG@10, HR@10, Recall@20) counts test ratings of
    at least :data:`RELEVANT_RATING` as relevant, ranks every catalogue movie the
    user did not rate during onboarding, and averages over users with at least one
    relevant movie. Coverage is the share of the catalogue that appears in at least
    one held-out user's top 10.
``warm``
    A seeded random 10% of all ratings is held out; the model is trained on the
    rest, and each test rating is predicted from its user's profile. Rating error
    only: everyone is known, so this is not what the model is for, but it shows
    how much of the rating signal the profiles keep.

Baselines, computed from the same training ratings:

``global_mean``
    Every rating predicted as the mean training rating.
``item_mean``
    Each movie's mean rating shrunk towards the global mean as if it had
    :data:`ITEM_MEAN_SHRINKAGE` extra ratings at the global mean; also ranks by
    that shrunk mean.
``popularity``
    Ranks movies by their number of training ratings.
``profile_popularity``
    Ranks movies by their number of training ratings among the members of the
    person's profile (the evaluated model's profiles).
``card``
    The configuration the model card describes (``TrainingConfig.preset("card")``),
    trained and scored exactly like the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .config import TrainingConfig
from .data import DataError, MovieLens
from .profiles import (
    favourite_genres,
    feature_frame,
    most_common_genres,
    onboarding_genres,
    split_first_ratings,
    user_feature_frame,
)
from .recommender import EVALUATION_PLOT_FILE

__all__ = [
    "ITEM_MEAN_SHRINKAGE",
    "N_ONBOARDING",
    "RELEVANT_RATING",
    "catalogue_coverage",
    "check_evaluable",
    "evaluate",
    "hit_rate_at_k",
    "ndcg_at_k",
    "onboarding_genres",
    "recall_at_k",
    "shrunk_item_means",
    "split_onboarding",
    "split_users",
    "split_warm",
    "top_k",
]

logger = logging.getLogger(__name__)

N_ONBOARDING = 10
TEST_USER_FRACTION = 0.2
WARM_TEST_FRACTION = 0.1
RELEVANT_RATING = 4
# An item mean counts as if it had this many extra ratings at the global mean: a
# movie rated 5 once scores (5 + 3 * 3.5) / 4 = 3.875, not 5. Chosen for the
# baseline's sake, on validation users inside the seed-0 training users of
# ML-100K: 2 to 5 lie within 0.001 RMSE of each other and 3 is best (10 costs
# 0.0035). It matches the ratio of within-movie to between-movie rating variance
# (2.3 on ML-100K), the empirical-Bayes choice.
ITEM_MEAN_SHRINKAGE = 3.0
NDCG_K = 10
HIT_RATE_K = 10
RECALL_K = 20
COVERAGE_K = 10

PROTOCOLS = ("new_user", "warm")
RATING_METRICS = ("rmse", "mae")
RANKING_METRICS = (f"ndcg@{NDCG_K}", f"hr@{HIT_RATE_K}", f"recall@{RECALL_K}")
METRICS = (*RATING_METRICS, *RANKING_METRICS, f"coverage@{COVERAGE_K}")
METHODS = (
    "model",
    "card",
    "global_mean",
    "item_mean",
    "popularity",
    "profile_popularity",
)


# Splits


def split_users(
    user_ids: Iterable[int], *, test_fraction: float = TEST_USER_FRACTION, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split users into training and test users, reproducibly.

    Parameters
    ----------
    user_ids : iterable of int
        Every user id; duplicates count once.
    test_fraction : float, default=0.2
        Share of users held out, rounded to the nearest whole user (at least one,
        and at least one left for training).
    seed : int, default=0
        The same ids and seed always give the same split, whatever their order.

    Returns
    -------
    train_ids, test_ids : ndarray
        Sorted user ids; every user is in exactly one of them.
    """
    ids = np.unique(np.asarray(list(user_ids), dtype=np.int64))
    if len(ids) < 2:
        raise ValueError(
            f"Splitting users needs at least 2 users, got {len(ids)}; evaluate on a "
            "larger dataset."
        )
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    n_test = min(max(1, int(round(len(ids) * test_fraction))), len(ids) - 1)
    shuffled = np.random.default_rng(seed).permutation(ids)
    return np.sort(shuffled[n_test:]), np.sort(shuffled[:n_test])


def split_onboarding(
    ratings: pd.DataFrame, *, n_onboarding: int = N_ONBOARDING
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The onboarding and test ratings of held-out users.

    :func:`~profile_rec.profiles.split_first_ratings` with ``n_onboarding``: a
    user with that many ratings or fewer has no test rows.
    """
    return split_first_ratings(ratings, n_onboarding)


def split_warm(
    ratings: pd.DataFrame, *, test_fraction: float = WARM_TEST_FRACTION, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random split of ratings into training and test rows."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    n_test = max(1, int(round(len(ratings) * test_fraction)))
    order = np.random.default_rng(seed).permutation(len(ratings))
    test = np.zeros(len(ratings), dtype=bool)
    test[order[:n_test]] = True
    return ratings[~test], ratings[test]


def subset(
    data: MovieLens,
    ratings: pd.DataFrame,
    *,
    user_ids: np.ndarray | None = None,
) -> MovieLens:
    """``data`` with only ``ratings`` (and only ``user_ids``, when given)."""
    users = data.users
    if user_ids is not None:
        users = users[users["user_id"].isin(user_ids)]
    return MovieLens(
        ratings=ratings.reset_index(drop=True),
        users=users.reset_index(drop=True),
        movies=data.movies,
        name=data.name,
        checksum=data.checksum,
    )


# Metrics


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores, best first.

    Ties go to the lower column, so a ranking never depends on chance.
    """
    return np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]


def _hits(top: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    top = np.asarray(top)[:, :k]
    filled = top >= 0
    found = np.take_along_axis(np.asarray(relevant, dtype=bool), top * filled, axis=1)
    return found & filled


def ndcg_at_k(top: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k with binary relevance.

    Parameters
    ----------
    top : ndarray of int, shape (n_users, >= k)
        Item columns, best first; -1 marks an empty place (a user with fewer
        candidates than ``k``).
    relevant : ndarray of bool, shape (n_users, n_items)
        Which items are relevant to each user.

    Returns
    -------
    ndarray of shape (n_users,)
        ``DCG / ideal DCG``, where a hit at rank ``r`` (from 1) adds
        ``1 / log2(r + 1)`` and the ideal puts ``min(k, n_relevant)`` hits first;
        NaN for a user with no relevant item.
    """
    hits = _hits(top, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = hits @ discounts
    n_relevant = np.asarray(relevant, dtype=bool).sum(axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_relevant, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, dcg / ideal, np.nan)


def hit_rate_at_k(top: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Per user, 1 if any of the top ``k`` is relevant, else 0 (NaN: none relevant)."""
    hit = _hits(top, relevant, k).any(axis=1).astype(np.float64)
    return np.where(np.asarray(relevant, dtype=bool).any(axis=1), hit, np.nan)


def recall_at_k(top: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Per user, the share of relevant items in the top ``k`` (NaN: none relevant)."""
    found = _hits(top, relevant, k).sum(axis=1)
    n_relevant = np.asarray(relevant, dtype=bool).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, found / n_relevant, np.nan)


def catalogue_coverage(top: np.ndarray, n_items: int, k: int) -> float:
    """Share of the ``n_items`` catalogue in at least one user's top ``k``.

    ``top`` is as for :func:`ndcg_at_k`; empty places (-1) count for nothing.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    shown = np.asarray(top)[:, :k]
    return len(np.unique(shown[shown >= 0])) / n_items


def _rating_errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    error = np.asarray(predicted, dtype=np.float64) - np.asarray(actual)
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }


def _ranking_metrics(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """Ranking metrics of a (users x catalogue) score matrix.

    A score of -inf means "not a candidate" (seen during onboarding, or a movie the
    model cannot recommend): it never fills a place in a top list.
    """
    top = top_k(scores, max(NDCG_K, HIT_RATE_K, RECALL_K, COVERAGE_K))
    top[np.isneginf(np.take_along_axis(scores, top, axis=1))] = -1
    ranked = relevant.any(axis=1)
    return {
        f"ndcg@{NDCG_K}": float(np.mean(ndcg_at_k(top, relevant, NDCG_K)[ranked])),
        f"hr@{HIT_RATE_K}": float(
            np.mean(hit_rate_at_k(top, relevant, HIT_RATE_K)[ranked])
        ),
        f"recall@{RECALL_K}": float(
            np.mean(recall_at_k(top, relevant, RECALL_K)[ranked])
        ),
        f"coverage@{COVERAGE_K}": catalogue_coverage(
            top, relevant.shape[1], COVERAGE_K
        ),
    }


# Baselines


def shrunk_item_means(
    ratings: pd.DataFrame, *, shrinkage: float = ITEM_MEAN_SHRINKAGE
) -> tuple[pd.Series, float]:
    """Each movie's mean rating, shrunk towards the global mean.

    ``(sum of the movie's ratings + shrinkage * global mean) / (n + shrinkage)``.

    Returns
    -------
    means : Series
        Indexed by ``movie_id``, for every movie in ``ratings``.
    global_mean : float
        What a movie without ratings gets.
    """
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be at least 0, got {shrinkage}")
    values = ratings["rating"].astype(np.float64)
    global_mean = float(values.mean())
    per_movie = values.groupby(ratings["movie_id"]).agg(["sum", "size"])
    means = (per_movie["sum"] + shrinkage * global_mean) / (
        per_movie["size"] + shrinkage
    )
    return means.rename("rating"), global_mean


def baseline_results(
    train_ratings: pd.DataFrame,
    test: pd.DataFrame,
    *,
    onboarding: pd.DataFrame | None = None,
    movie_ids: np.ndarray | None = None,
    shrinkage: float = ITEM_MEAN_SHRINKAGE,
) -> dict[str, dict[str, float]]:
    """Results of the baselines that need no profiles, learned from ``train_ratings``.

    ``global_mean`` and ``item_mean`` predict every rating of ``test``. With
    ``onboarding`` (the new-user protocol), ``item_mean`` and ``popularity`` also
    rank ``movie_ids`` (default: every movie in either frame) for each test user,
    leaving out what the user rated during onboarding. ``shrinkage`` is that of
    :func:`shrunk_item_means`.

    Returns
    -------
    dict
        ``{method: {metric: value}}``.
    """
    actual = test["rating"].to_numpy(np.float64)
    item_means, global_mean = shrunk_item_means(train_ratings, shrinkage=shrinkage)
    predicted = item_means.reindex(test["movie_id"]).fillna(global_mean).to_numpy()
    results = {
        "global_mean": _rating_errors(np.full(len(test), global_mean), actual),
        "item_mean": _rating_errors(predicted, actual),
    }
    if onboarding is None:
        return results

    if movie_ids is None:
        movie_ids = np.union1d(train_ratings["movie_id"], test["movie_id"])
    catalogue = _Catalogue(movie_ids, np.unique(test["user_id"]))
    seen = catalogue.mark(onboarding[onboarding["user_id"].isin(catalogue.user_ids)])
    relevant = catalogue.mark(test[test["rating"] >= RELEVANT_RATING])
    scores = catalogue.per_movie(item_means, global_mean)
    results["item_mean"].update(_rank(scores, seen, relevant))
    counts = train_ratings["movie_id"].value_counts()
    results["popularity"] = _rank(catalogue.per_movie(counts, 0.0), seen, relevant)
    return results


# Protocols


class _Catalogue:
    """Positions of movies and users in the (test users x catalogue) matrices."""

    def __init__(self, movie_ids: np.ndarray, user_ids: np.ndarray) -> None:
        self.movie_ids = np.sort(np.asarray(movie_ids, dtype=np.int64))
        self.user_ids = np.sort(np.asarray(user_ids, dtype=np.int64))

    def mark(self, ratings: pd.DataFrame) -> np.ndarray:
        """A (users x catalogue) bool matrix, True where ``ratings`` has a row."""
        matrix = np.zeros((len(self.user_ids), len(self.movie_ids)), dtype=bool)
        rows = np.searchsorted(self.user_ids, ratings["user_id"].to_numpy())
        columns = np.searchsorted(self.movie_ids, ratings["movie_id"].to_numpy())
        matrix[rows, columns] = True
        return matrix

    def per_movie(self, values: pd.Series, missing: float) -> np.ndarray:
        """A value per catalogue movie from a Series indexed by ``movie_id``."""
        return values.reindex(self.movie_ids).fillna(missing).to_numpy(np.float64)

    def recommender_scores(self, recommender, table: np.ndarray) -> np.ndarray:
        """A (profiles x catalogue) copy of a recommender's (profiles x known) table.

        Movies the recommender never saw cannot be recommended: they score -inf.
        """
        rows = recommender.movie_index.rows(self.movie_ids)
        known = rows > 0
        scores = np.full((table.shape[0], len(self.movie_ids)), -np.inf)
        scores[:, known] = table[:, rows[known] - 1]
        return scores


def _rank(scores: np.ndarray, seen: np.ndarray, relevant: np.ndarray) -> dict:
    scores = np.broadcast_to(scores, seen.shape).astype(np.float64, copy=True)
    scores[seen] = -np.inf
    return _ranking_metrics(scores, relevant)


def _train(data: MovieLens, config: TrainingConfig, preset: str, verbose):
    from .training import train

    started = time.perf_counter()
    recommender = train(data, config, preset=preset, verbose=verbose, files=False)
    logger.info(
        "Trained %s on %d ratings in %.1f s",
        preset,
        len(data.ratings),
        time.perf_counter() - started,
    )
    return recommender


def _evaluate_new_user(
    data: MovieLens,
    models: dict[str, tuple[TrainingConfig, str]],
    *,
    seed: int,
    verbose,
) -> dict[str, Any]:
    train_ids, test_ids = split_users(data.users["user_id"], seed=seed)
    in_train = data.ratings["user_id"].isin(train_ids).to_numpy()
    train_ratings = data.ratings[in_train]
    train_data = subset(data, train_ratings, user_ids=train_ids)
    onboarding, test = split_onboarding(data.ratings[~in_train])
    test_user_ids = np.unique(test["user_id"].to_numpy())
    onboarding = onboarding[onboarding["user_id"].isin(test_user_ids)]
    if len(test) == 0:
        raise ValueError(
            f"No held-out user has more than {N_ONBOARDING} ratings, so nothing is "
            "left to test; evaluate on a dataset with more ratings per user."
        )

    catalogue = _Catalogue(data.movies["movie_id"].to_numpy(), test_user_ids)
    seen = catalogue.mark(onboarding)
    relevant = catalogue.mark(test[test["rating"] >= RELEVANT_RATING])
    test_rows = np.searchsorted(test_user_ids, test["user_id"].to_numpy())
    actual = test["rating"].to_numpy(np.float64)

    results = baseline_results(
        train_ratings, test, onboarding=onboarding, movie_ids=catalogue.movie_ids
    )

    for name, (config, preset) in models.items():
        recommender = _train(train_data, config, preset, verbose)
        profiles = recommender.pipeline.predict(
            _people_features(data, train_ratings, onboarding, config)
        )
        predicted = recommender.predict(
            profiles[test_rows], test["movie_id"].to_numpy()
        )
        table = catalogue.recommender_scores(recommender, recommender.ranking_scores)
        results[name] = {
            **_rating_errors(predicted, actual),
            **_rank(table[profiles], seen, relevant),
        }
        if name == "model":
            counts = recommender.weights["rating_count"][:, 1:].astype(np.float64)
            table = catalogue.recommender_scores(recommender, counts)
            results["profile_popularity"] = _rank(table[profiles], seen, relevant)

    return {
        "protocol": (
            f"{TEST_USER_FRACTION:.0%} of users held out; each held-out user's first "
            f"{N_ONBOARDING} ratings by time only pick their favourite genres, the "
            f"rest are the test; relevant = rating >= {RELEVANT_RATING}; candidates "
            "= catalogue movies not rated during onboarding"
        ),
        "n_train_users": len(train_ids),
        "n_train_ratings": int(len(train_ratings)),
        "n_test_users": len(test_user_ids),
        "n_ranked_users": int(relevant.any(axis=1).sum()),
        "n_test_ratings": int(len(test)),
        "n_catalogue": len(catalogue.movie_ids),
        "results": _ordered(results),
    }


def _people_features(
    data: MovieLens,
    train_ratings: pd.DataFrame,
    onboarding: pd.DataFrame,
    config: TrainingConfig,
) -> pd.DataFrame:
    """What each held-out person tells us: demographics and ticked genres.

    Rows follow the sorted user ids of ``onboarding``.
    """
    user_ids = np.unique(onboarding["user_id"])
    trained = favourite_genres(
        train_ratings,
        data.movies,
        n_top=config.n_top_genres,
        min_ratings=config.min_genre_ratings,
    )
    ticked = onboarding_genres(
        onboarding,
        data.movies,
        n_top=config.n_top_genres,
        min_ratings=config.min_genre_ratings,
        fallback=most_common_genres(trained, config.n_top_genres),
    )
    people = data.users.set_index("user_id").loc[user_ids]
    return feature_frame(
        people["age"], people["gender"], people["occupation"], ticked[user_ids]
    )


def _evaluate_warm(
    data: MovieLens,
    models: dict[str, tuple[TrainingConfig, str]],
    *,
    seed: int,
    verbose,
) -> dict[str, Any]:
    train_ratings, test = split_warm(data.ratings, seed=seed)
    train_data = subset(data, train_ratings)
    actual = test["rating"].to_numpy(np.float64)

    results = baseline_results(train_ratings, test)

    for name, (config, preset) in models.items():
        recommender = _train(train_data, config, preset, verbose)
        favourites = favourite_genres(
            train_ratings,
            data.movies,
            n_top=config.n_top_genres,
            min_ratings=config.min_genre_ratings,
        )
        profiles = pd.Series(
            recommender.pipeline.predict(user_feature_frame(data.users, favourites)),
            index=data.users["user_id"].to_numpy(),
        )
        predicted = recommender.predict(
            profiles.loc[test["user_id"].to_numpy()].to_numpy(),
            test["movie_id"].to_numpy(),
        )
        results[name] = _rating_errors(predicted, actual)

    return {
        "protocol": (
            f"random {WARM_TEST_FRACTION:.0%} of ratings held out; each test rating "
            "predicted from its user's profile"
        ),
        "n_train_ratings": int(len(train_ratings)),
        "n_test_ratings": int(len(test)),
        "results": _ordered(results),
    }


def check_evaluable(
    data: MovieLens,
    config: TrainingConfig,
    protocols: Sequence[str] = PROTOCOLS,
) -> None:
    """Refuse, before any training, data the protocols cannot evaluate ``config`` on.

    Raises
    ------
    DataError
        Saying which protocol cannot run, on how many users or ratings, and what
        to change.
    """
    from .training import check_trainable

    def trainable(part: MovieLens, what: str) -> None:
        try:
            check_trainable(part, config)
        except DataError as exc:
            raise DataError(
                f"The evaluation trains on {what}, and then: {exc} Or skip the "
                "evaluation (train --evaluation none)."
            ) from None

    if "new_user" in protocols:
        user_ids = data.users["user_id"]
        if user_ids.nunique() < 2:
            raise DataError(
                f"{data.name} has {user_ids.nunique()} user: the new-user "
                "evaluation needs at least 2 (one to train on, one to test)."
            )
        train_ids, test_ids = split_users(user_ids, seed=config.seed)
        in_train = data.ratings["user_id"].isin(train_ids).to_numpy()
        trainable(
            subset(data, data.ratings[in_train], user_ids=train_ids),
            f"{len(train_ids)} of the {len(user_ids)} users",
        )
        per_user = data.ratings.loc[~in_train, "user_id"].value_counts()
        if not (per_user > N_ONBOARDING).any():
            raise DataError(
                f"None of the {len(test_ids)} held-out users of {data.name} has "
                f"more than {N_ONBOARDING} ratings, so nothing is left to test "
                "after onboarding; evaluate on a dataset with more ratings per "
                "user, or train with --evaluation none."
            )
    if "warm" in protocols:
        train_ratings, _ = split_warm(data.ratings, seed=config.seed)
        trainable(
            subset(data, train_ratings),
            f"{len(train_ratings)} of the {len(data.ratings)} ratings",
        )


def _ordered(results: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {
        name: {m: results[name][m] for m in METRICS if m in results[name]}
        for name in METHODS
        if name in results
    }


def evaluate(
    data: MovieLens,
    config: TrainingConfig | None = None,
    *,
    preset: str = "default",
    protocols: Sequence[str] = PROTOCOLS,
    compare_card: bool = True,
    verbose: int | str = 0,
) -> dict[str, Any]:
    """Evaluate a configuration and the baselines under the chosen protocols.

    Parameters
    ----------
    data : MovieLens
        The whole dataset; each protocol splits it itself.
    config : TrainingConfig, optional
        The model to evaluate; defaults to ``TrainingConfig.preset(preset)``. Its
        ``seed`` seeds the splits too, so one number reproduces a run.
    preset : str, default="default"
        Recorded in the result; used for ``config`` when it is not given.
    protocols : sequence of str, default=("new_user", "warm")
        Which protocols to run (see the module docstring).
    compare_card : bool, default=True
        Also train and score the ``card`` preset under each protocol (unless
        ``config`` is that preset).
    verbose : int or "auto", default=0
        Keras' progress display while training.

    Returns
    -------
    dict
        JSON-ready: ``dataset`` (name and checksum), ``seed``, ``preset``,
        ``config``, ``seconds`` and one entry per protocol, each with its
        ``protocol`` description, sizes and ``results``:
        ``{method: {metric: value}}``, metrics from :data:`METRICS`.
    """
    config = config or TrainingConfig.preset(preset)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ValueError(
            f"Unknown protocols {unknown}; choose from {', '.join(PROTOCOLS)}."
        )
    check_evaluable(data, config, protocols)
    started = time.perf_counter()
    models = {"model": (config, preset)}
    card = TrainingConfig.preset("card", seed=config.seed)
    if compare_card and config != card:
        models["card"] = (card, "card")
    evaluation: dict[str, Any] = {
        "dataset": {"name": data.name, "checksum": data.checksum},
        "seed": config.seed,
        "preset": preset,
        "config": config.to_dict(),
    }
    for protocol in protocols:
        run = _evaluate_new_user if protocol == "new_user" else _evaluate_warm
        evaluation[protocol] = run(data, models, seed=config.seed, verbose=verbose)
    evaluation["seconds"] = round(time.perf_counter() - started, 2)
    return evaluation


# Reporting

PLOT_FILE = EVALUATION_PLOT_FILE
METHOD_LABELS = {
    "model": "profile-rec ({preset} preset)",
    "card": "card configuration (`--preset card`)",
    "global_mean": "global mean rating",
    "item_mean": f"movie mean rating (shrunk by {ITEM_MEAN_SHRINKAGE:g})",
    "popularity": "global popularity",
    "profile_popularity": "popularity within the profile",
}
METRIC_LABELS = {
    "rmse": "RMSE",
    "mae": "MAE",
    f"ndcg@{NDCG_K}": f"NDCG@{NDCG_K}",
    f"hr@{HIT_RATE_K}": f"HR@{HIT_RATE_K}",
    f"recall@{RECALL_K}": f"Recall@{RECALL_K}",
    f"coverage@{COVERAGE_K}": "coverage",
}
PROTOCOL_TITLES = {
    "new_user": "New users (the headline)",
    "warm": "Known users (rating error only)",
}


def results_rows(
    evaluation: dict[str, Any], protocol: str
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one protocol's results table, as display strings.

    Lower is better for RMSE and MAE, higher for the rest; ``-`` marks a metric a
    method does not produce (popularity predicts no rating, a constant ranks
    nothing).
    """
    # Saved JSON may have its keys sorted; show methods and metrics in our order.
    results = _ordered(evaluation[protocol]["results"])
    metrics = [m for m in METRICS if any(m in r for r in results.values())]
    header = ["method", *(METRIC_LABELS[m] for m in metrics)]
    rows = []
    for name, values in results.items():
        label = METHOD_LABELS[name].format(preset=evaluation.get("preset", "default"))
        cells = [f"{values[m]:.4f}" if m in values else "-" for m in metrics]
        rows.append([label, *cells])
    return header, rows


def _describe_run(evaluation: dict[str, Any], protocol: str) -> str:
    run = evaluation[protocol]
    sizes = f"{run['n_test_ratings']:,} test ratings"
    if protocol == "new_user":
        sizes = (
            f"{run['n_test_users']:,} held-out users ({run['n_ranked_users']:,} "
            f"with a relevant movie), {sizes}, {run['n_catalogue']:,} movies"
        )
    return f"{run['protocol']}; {sizes}."


def results_markdown(evaluation: dict[str, Any]) -> str:
    """The results section of the model card: model and baselines, per protocol."""
    dataset = evaluation["dataset"]
    parts = [
        f"Measured on {dataset['name']} (checksum `{dataset['checksum']}`), seed "
        f"{evaluation['seed']}; `profile-rec evaluate --seed {evaluation['seed']}` "
        "measures it again. "
        "Lower is better for RMSE and MAE, higher for the others; `-` means the "
        "method does not produce that measure."
    ]
    for protocol in PROTOCOLS:
        if protocol not in evaluation:
            continue
        header, rows = results_rows(evaluation, protocol)
        lines = [
            f"**{PROTOCOL_TITLES[protocol]}**: {_describe_run(evaluation, protocol)}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
        ]
        for row in rows:
            lines.append("| " + " | ".join(row) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def results_text(evaluation: dict[str, Any]) -> str:
    """The results tables as aligned plain text, for a terminal."""
    blocks = []
    for protocol in PROTOCOLS:
        if protocol not in evaluation:
            continue
        header, rows = results_rows(evaluation, protocol)
        table = [header, *rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines = [PROTOCOL_TITLES[protocol]]
        for row in table:
            cells = [row[0].ljust(widths[0])]
            cells += [
                cell.rjust(width)
                for cell, width in zip(row[1:], widths[1:], strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


_EVAL_TASKS = {
    "new_user": ("recommendation", "Cold-start recommendation (new users)"),
    "warm": ("rating-prediction", "Rating prediction (known users)"),
}
_EVAL_METRICS = {
    "rmse": ("rmse", "RMSE"),
    "mae": ("mae", "MAE"),
    f"ndcg@{NDCG_K}": ("ndcg", f"NDCG@{NDCG_K}"),
    f"hr@{HIT_RATE_K}": ("hit_rate", f"HR@{HIT_RATE_K}"),
    f"recall@{RECALL_K}": ("recall", f"Recall@{RECALL_K}"),
    f"coverage@{COVERAGE_K}": ("coverage", f"Catalogue coverage@{COVERAGE_K}"),
}


def eval_results(evaluation: dict[str, Any]) -> list:
    """The model's own results as ``huggingface_hub.EvalResult`` for the model-index.

    Baselines stay in the Markdown table; the model-index holds what this model
    scored, per protocol, with the seed and the data checksum.
    """
    from huggingface_hub import EvalResult

    from .card import DATASET_IDS, DATASET_LABELS

    dataset = evaluation["dataset"]
    found = []
    for protocol in PROTOCOLS:
        if protocol not in evaluation:
            continue
        task_type, task_name = _EVAL_TASKS[protocol]
        split = f"{protocol} protocol, seed {evaluation['seed']}"
        model = _ordered(evaluation[protocol]["results"])["model"]
        for metric, value in model.items():
            metric_type, metric_name = _EVAL_METRICS[metric]
            found.append(
                EvalResult(
                    task_type=task_type,
                    task_name=task_name,
                    dataset_type=DATASET_IDS.get(dataset["name"], dataset["name"]),
                    dataset_name=DATASET_LABELS.get(dataset["name"], dataset["name"]),
                    dataset_split=split,
                    dataset_revision=dataset["checksum"],
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=round(float(value), 4),
                )
            )
    return found


def plot_results(evaluation: dict[str, Any], path) -> Any:
    """Save a bar chart of the new-user results (NDCG@10 and RMSE) as a PNG.

    Needs matplotlib (``pip install matplotlib``). Returns the path written.
    """
    from pathlib import Path

    from matplotlib.figure import Figure

    results = _ordered(evaluation["new_user"]["results"])
    preset = evaluation.get("preset", "default")
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    panels = figure.subplots(1, 2)
    for axes, metric, better in (
        (panels[0], f"ndcg@{NDCG_K}", "higher is better"),
        (panels[1], "rmse", "lower is better"),
    ):
        names = [n for n, values in results.items() if metric in values]
        values = [results[n][metric] for n in names]
        labels = [
            METHOD_LABELS[n].format(preset=preset).replace("`", "") for n in names
        ]
        colours = ["tab:blue" if n == "model" else "tab:gray" for n in names]
        axes.barh(labels[::-1], values[::-1], color=colours[::-1])
        for y, value in enumerate(values[::-1]):
            axes.text(value, y, f" {value:.3f}", va="center", fontsize=8)
        axes.set_title(f"{METRIC_LABELS[metric]}, new users ({better})", fontsize=10)
        axes.set_xlim(0, max(values) * 1.18)
        axes.tick_params(labelsize=8)
    figure.suptitle(
        f"{evaluation['dataset']['name']}, seed {evaluation['seed']}", fontsize=10
    )
    if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__"):
        path = Path(path)
    figure.savefig(path, dpi=110, format="png", metadata={"Software": None})
    return path
