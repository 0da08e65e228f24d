"""User profiles: demographic and genre features, clustered into a few profiles.

A *profile* is a KMeans cluster of people described by their age bucket, gender,
occupation and favourite genres. Everything the recommender knows about a new person
goes through :func:`person_frame` and the fitted pipeline from
:func:`make_profile_pipeline`, which is a plain scikit-learn object so that it can be
saved with skops and loaded back without trusting any custom type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from .data import AGE_BUCKETS, GENDERS, GENRES, OCCUPATIONS, age_bucket

DEMOGRAPHIC_COLUMNS = ("age", "gender", "occupation")
GENRE_COLUMNS = tuple(f"genre:{genre}" for genre in GENRES)


class InvalidPersonError(ValueError):
    """A description of a person uses a value the model does not know."""


def favourite_genres(
    ratings: pd.DataFrame,
    movies: pd.DataFrame,
    *,
    n_top: int = 3,
    min_ratings: int = 2,
) -> pd.Series:
    """Each user's top-rated genres.

    A user's affinity for a genre is the mean of ``rating - user's mean rating`` over
    the movies of that genre the user rated; genres the user rated fewer than
    ``min_ratings`` times are skipped. Genres are ranked by affinity, ties broken by
    the number of ratings (more first) and then by the order of ``GENRES``; the first
    ``n_top`` are the user's favourites. A user who rates every genre equally still
    gets favourites: the genres they rate most.

    Parameters
    ----------
    ratings : DataFrame
        Columns ``user_id``, ``movie_id`` and ``rating``.
    movies : DataFrame
        Columns ``movie_id`` and ``genres`` (a tuple of genre names per movie).
    n_top : int, default=3
        How many genres to keep per user.
    min_ratings : int, default=2
        Fewest ratings in a genre for it to count.

    Returns
    -------
    Series
        Indexed by ``user_id`` (every user in ``ratings``), holding a tuple of genre
        names, best first. The tuple is shorter than ``n_top`` only when the user
        rated fewer genres often enough.
    """
    user_ids = ratings["user_id"].to_numpy()
    users, user_rows = np.unique(user_ids, return_inverse=True)
    values = ratings["rating"].to_numpy(dtype=np.float64)
    n_users, n_genres = len(users), len(GENRES)
    sums = np.zeros((n_users, n_genres))
    counts = np.zeros((n_users, n_genres), dtype=np.int64)
    movie_ids = movies["movie_id"].to_numpy()
    if n_users and len(movie_ids):
        user_mean = np.bincount(user_rows, weights=values) / np.bincount(user_rows)
        centred = values - user_mean[user_rows]
        # Each rating's genres, through its movie; movies missing from ``movies``
        # have none.
        by_id = np.argsort(movie_ids, kind="stable")
        genres = genre_matrix(list(movies["genres"])).astype(bool)[by_id]
        at = np.searchsorted(movie_ids[by_id], ratings["movie_id"].to_numpy())
        at = np.minimum(at, len(movie_ids) - 1)
        known = movie_ids[by_id][at] == ratings["movie_id"].to_numpy()
        rated = genres[at[known]]
        rows, centred = user_rows[known], centred[known]
        for genre in range(n_genres):
            hit = rated[:, genre]
            sums[:, genre] = np.bincount(
                rows[hit], weights=centred[hit], minlength=n_users
            )
            counts[:, genre] = np.bincount(rows[hit], minlength=n_users)
    user, genre = np.nonzero(counts >= max(min_ratings, 1))
    # Rounded so that equal affinities summed in another order still tie.
    affinity = np.round(sums[user, genre] / counts[user, genre], 9)
    # By user, then affinity (high first), ratings (many first), GENRES order.
    order = np.lexsort((genre, -counts[user, genre], -affinity, user))
    user, genre = user[order], genre[order]
    starts = np.searchsorted(user, np.arange(n_users))
    ends = np.searchsorted(user, np.arange(n_users), side="right")
    chosen = [
        tuple(GENRES[g] for g in genre[start : min(end, start + n_top)])
        for start, end in zip(starts, ends, strict=True)
    ]
    return pd.Series(
        chosen, index=pd.Index(users, name="user_id"), name="genre", dtype=object
    )


def split_first_ratings(
    ratings: pd.DataFrame, n_first: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's first ``n_first`` ratings by time, and the rest.

    Ratings with the same timestamp are ordered by movie id, so that the split does
    not depend on the order of the rows.

    Returns
    -------
    first, rest : DataFrame
        Rows of ``ratings`` (with their index), sorted by user, time and movie.
    """
    ordered = ratings.sort_values(["user_id", "timestamp", "movie_id"], kind="stable")
    position = ordered.groupby("user_id", sort=False).cumcount().to_numpy()
    first = position < n_first
    return ordered[first], ordered[~first]


def onboarding_genres(
    onboarding: pd.DataFrame,
    movies: pd.DataFrame,
    *,
    n_top: int,
    min_ratings: int,
    fallback: Sequence[str] = (),
) -> pd.Series:
    """The favourite genres a person would tick after their onboarding ratings.

    First the genres :func:`~profile_rec.profiles.favourite_genres` picks with
    ``min_ratings``; when that gives fewer than ``n_top`` (ten ratings spread over
    many genres often do), the list is filled up with genres rated only once, in the
    same order of preference. A user whose onboarding movies have no genre at all
    gets ``fallback`` (the most common favourites of the training users), because a
    person in the demo must tick at least one genre.

    Returns
    -------
    Series
        A tuple of genre names per ``user_id`` in ``onboarding``.
    """
    strict = favourite_genres(onboarding, movies, n_top=n_top, min_ratings=min_ratings)
    loose = favourite_genres(onboarding, movies, n_top=n_top, min_ratings=1)
    fallback = tuple(fallback)[:n_top]

    def fill(user_id: int) -> tuple[str, ...]:
        chosen = list(strict[user_id])
        chosen += [g for g in loose[user_id] if g not in chosen]
        return tuple(chosen[:n_top]) or fallback

    return pd.Series([fill(u) for u in strict.index], index=strict.index, name="genres")


def most_common_genres(favourites: pd.Series, n_top: int) -> tuple[str, ...]:
    """The genres most often among ``favourites``, most common first."""
    counts = pd.Series([g for chosen in favourites for g in chosen], dtype=object)
    if counts.empty:
        return ()
    # value_counts keeps first-seen order among ties; sort by name for stability.
    table = counts.value_counts().rename_axis("genre").reset_index(name="n")
    table = table.sort_values(["n", "genre"], ascending=[False, True])
    return tuple(table["genre"].head(n_top))


def ticked_genres(
    ratings: pd.DataFrame,
    movies: pd.DataFrame,
    *,
    n_first: int,
    n_top: int,
    min_ratings: int,
) -> pd.Series:
    """The genres each user would tick after their first ``n_first`` ratings.

    :func:`onboarding_genres` of each user's first ``n_first`` ratings by time
    (see :func:`split_first_ratings`); a user whose first movies have no genre gets
    the genres most often ticked by the others.

    Returns
    -------
    Series
        A tuple of genre names per ``user_id`` in ``ratings``.
    """
    first, _ = split_first_ratings(ratings, n_first)
    ticked = onboarding_genres(first, movies, n_top=n_top, min_ratings=min_ratings)
    fallback = most_common_genres(ticked, n_top)
    return ticked.apply(lambda chosen: chosen or fallback)


def genre_matrix(genres: Sequence[Iterable[str]]) -> np.ndarray:
    """A 0/1 row per item of ``genres`` (genre names), a column per :data:`GENRES`."""
    position = {genre: i for i, genre in enumerate(GENRES)}
    matrix = np.zeros((len(genres), len(GENRES)), dtype=np.float64)
    for row, chosen in enumerate(genres):
        for genre in chosen:
            matrix[row, position[genre]] = 1.0
    return matrix


def feature_frame(
    age: Sequence[int],
    gender: Sequence[str],
    occupation: Sequence[str],
    genres: Sequence[Iterable[str]],
) -> pd.DataFrame:
    """The pipeline's input: demographic columns plus one 0/1 column per genre.

    Values are assumed valid; use :func:`person_frame` for anything a person typed.
    """
    frame = pd.DataFrame(
        {
            "age": np.asarray(age, dtype=np.int64),
            "gender": np.asarray(gender, dtype=object),
            "occupation": np.asarray(occupation, dtype=object),
        }
    )
    genre_part = pd.DataFrame(genre_matrix(genres), columns=list(GENRE_COLUMNS))
    return pd.concat([frame, genre_part], axis=1)


def user_feature_frame(users: pd.DataFrame, favourites: pd.Series) -> pd.DataFrame:
    """Features of known users, in the order of ``users``."""
    genres = favourites.reindex(users["user_id"].to_numpy())
    genres = [g if isinstance(g, tuple) else () for g in genres]
    return feature_frame(users["age"], users["gender"], users["occupation"], genres)


def _match_choice(value: str, valid: Sequence[str], what: str) -> str:
    lowered = {v.lower(): v for v in valid}
    key = str(value).strip().lower()
    if key in lowered:
        return lowered[key]
    raise InvalidPersonError(
        f"Unknown {what} {value!r}. Valid values: {', '.join(valid)}."
    )


def normalize_age(age: int | str) -> int:
    """A MovieLens age bucket from a bucket id, a raw age, or a bucket label.

    ``25``, ``"25-34"`` and ``30`` all give ``25``.
    """
    labels = {label.lower(): bucket for bucket, label in AGE_BUCKETS.items()}
    if isinstance(age, str):
        text = age.strip().lower()
        if text in labels:
            return labels[text]
        if not text.isdigit():
            raise InvalidPersonError(
                f"Unknown age {age!r}. Give an age in years or one of: "
                f"{', '.join(AGE_BUCKETS.values())}."
            )
        age = int(text)
    if isinstance(age, bool) or not isinstance(age, (int, np.integer)):
        raise InvalidPersonError(f"Age must be a whole number, got {age!r}.")
    if age in AGE_BUCKETS:
        return int(age)
    if not 0 < age < 130:
        raise InvalidPersonError(f"Age must be between 1 and 129, got {age}.")
    return age_bucket(int(age))


def normalize_occupation(occupation: str) -> str:
    """An occupation's canonical MovieLens 1M name, matched ignoring case."""
    return _match_choice(occupation, OCCUPATIONS, "occupation")


def normalize_gender(gender: str) -> str:
    """``"F"`` or ``"M"``; also accepts ``"female"``/``"male"`` in any case."""
    words = {"female": "F", "male": "M", "f": "F", "m": "M"}
    key = str(gender).strip().lower()
    if key not in words:
        raise InvalidPersonError(
            f"Unknown gender {gender!r}. Valid values: F (female), M (male)."
        )
    return words[key]


def normalize_genres(genres: Iterable[str] | str) -> tuple[str, ...]:
    """Genre names in their canonical spelling, duplicates removed, order kept.

    A single string is split on commas or ``|``.
    """
    if isinstance(genres, str):
        genres = [g for g in genres.replace("|", ",").split(",") if g.strip()]
    if genres is None or not isinstance(genres, Iterable):
        raise InvalidPersonError(
            f"genres must be a list of genre names from: {', '.join(GENRES)}."
        )
    chosen: list[str] = []
    for genre in genres:
        name = _match_choice(genre, GENRES, "genre")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise InvalidPersonError(
            f"Choose at least one favourite genre from: {', '.join(GENRES)}."
        )
    return tuple(chosen)


def person_frame(
    *,
    age: int | str,
    gender: str,
    occupation: str,
    genres: Iterable[str] | str,
) -> pd.DataFrame:
    """Validate what a person told us and turn it into one pipeline input row.

    Raises
    ------
    InvalidPersonError
        If any value is unknown; the message lists the valid values.
    """
    return feature_frame(
        [normalize_age(age)],
        [normalize_gender(gender)],
        [normalize_occupation(occupation)],
        [normalize_genres(genres)],
    )


def people_frame(people: pd.DataFrame) -> pd.DataFrame:
    """Validate a table of people and turn it into pipeline input rows.

    ``people`` has the columns ``age``, ``gender``, ``occupation`` and ``genres``,
    holding what :func:`person_frame` accepts for one person. Each distinct value
    is checked once, so that large tables stay fast.

    Raises
    ------
    InvalidPersonError
        Naming the first row with an unknown value, and the valid values.
    """
    needed = ("age", "gender", "occupation", "genres")
    missing = [column for column in needed if column not in people.columns]
    if missing:
        raise InvalidPersonError(
            f"people has no column {', '.join(missing)}; it needs the columns "
            f"{', '.join(needed)}."
        )
    checks = {
        "age": normalize_age,
        "gender": normalize_gender,
        "occupation": normalize_occupation,
        "genres": normalize_genres,
    }
    columns = {}
    for column, check in checks.items():
        known: dict[Any, Any] = {}
        values = []
        for row, value in enumerate(people[column].tolist()):
            if isinstance(value, (list, set, np.ndarray)):
                value = tuple(value)
            try:
                if value not in known:
                    known[value] = check(value)
            except (InvalidPersonError, TypeError) as exc:
                raise InvalidPersonError(f"Row {row} of people: {exc}") from None
            values.append(known[value])
        columns[column] = values
    return feature_frame(
        columns["age"], columns["gender"], columns["occupation"], columns["genres"]
    )


def make_profile_pipeline(
    n_profiles: int = 10,
    *,
    genre_weight: float = 1.0,
    random_state: int | None = 0,
) -> Pipeline:
    """An unfitted pipeline: one-hot demographics, weighted genres, then KMeans.

    Parameters
    ----------
    n_profiles : int, default=10
        Number of KMeans clusters, i.e. of profiles.
    genre_weight : float, default=1.0
        Multiplier of the genre columns relative to the one-hot demographics; larger
        values let favourite genres matter more than demographics in the clustering.
    random_state : int or None, default=0
        Seed of KMeans.
    """
    encoder = OneHotEncoder(
        categories=[list(AGE_BUCKETS), list(GENDERS), list(OCCUPATIONS)],
        handle_unknown="error",
        sparse_output=False,
        dtype=np.float64,
    )
    features = ColumnTransformer(
        [
            ("demographics", encoder, list(DEMOGRAPHIC_COLUMNS)),
            ("genres", "passthrough", list(GENRE_COLUMNS)),
        ],
        transformer_weights={"demographics": 1.0, "genres": float(genre_weight)},
        verbose_feature_names_out=False,
    )
    kmeans = KMeans(n_clusters=n_profiles, n_init=10, random_state=random_state)
    return Pipeline([("features", features), ("kmeans", kmeans)])
