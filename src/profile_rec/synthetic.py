"""Write fake MovieLens releases in the exact file formats of ML-1M and ML-100K.

The data is random but shaped like the real thing, so that tests and benchmarks
exercise the same code paths and a model has something to learn:

* users of every gender and age bucket, with occupations that fit their age;
* movies with latin-1 titles, some with accents, commas, colons, quotes or an
  alternative title in parentheses, and one to five genres;
* a few movies nobody rated, a long-tailed popularity (a few blockbusters,
  many movies with a handful of ratings) and a long-tailed number of ratings
  per user;
* ratings that follow a hidden taste for genres, which depends on gender and age,
  plus a per-user and per-movie bias.

Nothing here is real MovieLens data, so the files may be shared freely.
"""

from __future__ import annotations

import os
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import AGE_BUCKETS, GENDERS, GENRES, OCCUPATIONS

__all__ = ["write_movielens_100k", "write_movielens_1m"]

# Counts from ML-1M (users per gender, age bucket and occupation, movies per
# genre, in the order of the constants in .data), so that the fake data looks
# alike at a glance.
_GENDER_SHARES = np.array([1709, 4331]) / 6040
_AGE_SHARES = np.array([222, 1103, 2096, 1193, 550, 496, 380]) / 6040
_OCCUPATION_SHARES = np.array(
    [711, 528, 267, 173, 759, 112, 236, 679, 17, 92, 195]
    + [129, 388, 142, 302, 144, 241, 502, 70, 72, 281],
    dtype=float,
)
_GENRE_SHARES = np.array(
    [503, 283, 105, 251, 1200, 211, 127, 1603, 68, 44, 343]
    + [114, 106, 471, 276, 492, 143, 68],
    dtype=float,
)
_GENRES_PER_MOVIE_SHARES = (0.5, 0.33, 0.12, 0.04, 0.01)
# Cumulative shares of 1 to 4 stars; the rest are 5 stars.
_RATING_QUANTILES = (0.056, 0.164, 0.425, 0.774)
# Users rate at least this many movies, budget permitting, as in ML-1M.
_MIN_RATINGS_PER_USER = 20
# ML-1M lists 3,883 movies, of which 3,706 have ratings.
_UNRATED_MOVIE_SHARE = 177 / 3883
# Users whose selection keys are computed at once; bounds memory to a few MB.
_USER_CHUNK = 512

# Raw ages spanned by each ML-1M bucket, for ML-100K's u.user.
_RAW_AGE_RANGES = {1: (7, 17), 18: (18, 24), 25: (25, 34), 35: (35, 44)}
_RAW_AGE_RANGES |= {45: (45, 49), 50: (50, 55), 56: (56, 73)}
# ML-100K occupation names for each ML-1M occupation; "other" where it has none.
_ML100K_NAMES = {
    "academic/educator": ("educator", "librarian"),
    "artist": ("artist", "entertainment"),
    "clerical/admin": ("administrator",),
    "college/grad student": ("student",),
    "doctor/health care": ("doctor", "healthcare"),
    "executive/managerial": ("executive",),
    "homemaker": ("homemaker",),
    "K-12 student": ("student",),
    "lawyer": ("lawyer",),
    "programmer": ("programmer",),
    "retired": ("retired",),
    "sales/marketing": ("marketing", "salesman"),
    "scientist": ("scientist",),
    "technician/engineer": ("engineer", "technician"),
    "unemployed": ("none",),
    "writer": ("writer",),
}

_ADJECTIVES = (
    "Silent", "Broken", "Golden", "Last", "Hidden", "Crimson", "Lonely", "Wild",
    "Secret", "Midnight", "Frozen", "Burning", "Little", "Lost", "Final", "Dark",
    "Electric", "Restless", "Quiet", "Distant",
)  # fmt: skip
_NOUNS = (
    "River", "Garden", "Stranger", "Horizon", "Letter", "Season", "Harbor",
    "Kingdom", "Promise", "Mirror", "Storm", "Island", "Road", "Dream", "Summer",
    "Witness", "Shadow", "Journey", "Castle", "Echo",
)  # fmt: skip
_PLACES = (
    "Paris", "Brooklyn", "Santa Fe", "the North", "Avalon", "Tangier", "Memphis",
    "the Valley",
)  # fmt: skip
# Foreign titles, with the article that MovieLens moves to the end, if any.
_FOREIGN = (
    ("Cité des rêves", "La"), ("Été meurtrier", "L'"), ("Mädchen im Regen", ""),
    ("Niño de la calle", "El"), ("Señora de las flores", "La"),
    ("Fröken Julie", ""), ("Amélie des ponts", ""), ("Garçon sauvage", "Le"),
    ("Søster", ""), ("Años de café", "Los"),
)  # fmt: skip
_ROMAN = ("II", "III", "IV")


def write_movielens_1m(
    directory: str | os.PathLike[str],
    *,
    n_users: int,
    n_movies: int,
    n_ratings: int,
    seed: int = 0,
    zip_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a fake ML-1M release: ``ratings.dat``, ``users.dat`` and ``movies.dat``.

    The files follow ML-1M byte for byte: ``::`` separators, no header, ratings
    grouped by user, latin-1 titles as ``Title (Year)``. Movie ids have gaps, as
    in ML-1M. The real release has 6,040 users, 3,883 movies and 1,000,209 ratings.

    Parameters
    ----------
    directory : path-like
        Folder to write the three files into; created if needed.
    n_users : int
        Number of users; each rates at least one movie, and 20 when
        ``n_ratings`` allows.
    n_movies : int
        Number of movies in ``movies.dat``; about 5% of them get no rating.
    n_ratings : int
        Exact number of ratings, at least ``n_users``; no user rates a movie
        twice.
    seed : int, default=0
        Seed of the random generator; the same arguments give the same bytes.
    zip_path : path-like, optional
        Also write the files into this zip, in an ``ml-1m/`` folder like the
        official download.

    Returns
    -------
    pathlib.Path
        The path to give :func:`profile_rec.data.load_movielens`: ``zip_path``
        when given, else ``directory``.
    """
    _validate_sizes(n_users, n_movies, n_ratings)
    rng = np.random.default_rng(seed)
    world = _simulate(
        rng,
        n_users=n_users,
        n_movies=n_movies,
        n_ratings=n_ratings,
        id_gaps=True,
        time_range=(956_703_932, 1_046_454_590),
        last_year=2000,
        with_unknown_movie=False,
    )
    files = _format_ml1m(world, rng)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    if zip_path is None:
        return directory
    zip_path = Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(f"ml-1m/{name}", content)
    return zip_path


def write_movielens_100k(
    directory: str | os.PathLike[str],
    *,
    n_users: int,
    n_movies: int,
    n_ratings: int,
    seed: int = 0,
) -> Path:
    """Write a fake ML-100K release: ``u.data``, ``u.user``, ``u.item`` and more.

    The files follow ML-100K: tab-separated ``u.data`` in random order; ``u.user``
    with raw ages and ML-100K occupation names; latin-1 ``u.item`` with 19 genre
    flags, including one "unknown" movie with no year and no genre. ``u.genre`` and
    ``u.occupation`` are written too. The real release has 943 users, 1,682 movies
    and 100,000 ratings.

    Parameters
    ----------
    directory : path-like
        Folder to write the files into; created if needed.
    n_users : int
        Number of users; each rates at least one movie, and 20 when
        ``n_ratings`` allows.
    n_movies : int
        Number of movies in ``u.item``; about 5% of them get no rating.
    n_ratings : int
        Exact number of ratings, at least ``n_users``; no user rates a movie
        twice.
    seed : int, default=0
        Seed of the random generator; the same arguments give the same bytes.

    Returns
    -------
    pathlib.Path
        ``directory``, ready for :func:`profile_rec.data.load_movielens`.
    """
    _validate_sizes(n_users, n_movies, n_ratings)
    rng = np.random.default_rng(seed)
    world = _simulate(
        rng,
        n_users=n_users,
        n_movies=n_movies,
        n_ratings=n_ratings,
        id_gaps=False,
        time_range=(874_724_710, 893_286_638),
        last_year=1998,
        with_unknown_movie=True,
    )
    files = _format_ml100k(world, rng)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory


def _validate_sizes(n_users: int, n_movies: int, n_ratings: int) -> None:
    if n_users < 1 or n_movies < 2:
        raise ValueError(
            f"Need at least 1 user and 2 movies (one of them unrated), got "
            f"n_users={n_users} and n_movies={n_movies}."
        )
    n_rated = n_movies - _n_unrated(n_movies)
    if not n_users <= n_ratings <= n_users * n_rated:
        raise ValueError(
            f"n_ratings must be between n_users ({n_users}), so that every user "
            f"rates a movie, and n_users * {n_rated} rated movies "
            f"({n_users * n_rated}), so that nobody rates a movie twice; got "
            f"{n_ratings}."
        )


def _n_unrated(n_movies: int) -> int:
    return max(1, round(_UNRATED_MOVIE_SHARE * n_movies))


# Simulation


@dataclass(frozen=True)
class _World:
    """A simulated release, before it is written in either format."""

    # Users, by position; user ids are position + 1.
    gender: np.ndarray
    age: np.ndarray
    occupation: np.ndarray
    # Movies, by position.
    movie_id: np.ndarray
    title: list[str]
    year: np.ndarray  # 0 where the title has no year
    genre_flags: np.ndarray  # (n_movies, len(GENRES)) bool
    # Ratings, in the order to write them.
    rating_user: np.ndarray  # user position
    rating_movie: np.ndarray  # movie position
    rating: np.ndarray
    timestamp: np.ndarray


def _simulate(
    rng: np.random.Generator,
    *,
    n_users: int,
    n_movies: int,
    n_ratings: int,
    id_gaps: bool,
    time_range: tuple[int, int],
    last_year: int,
    with_unknown_movie: bool,
) -> _World:
    gender, age, occupation = _simulate_users(rng, n_users)
    movie_id, title, year, genre_flags = _simulate_movies(
        rng, n_movies, id_gaps=id_gaps, last_year=last_year
    )
    if with_unknown_movie:
        # ML-100K lists one movie called "unknown", with no year and no genre; it
        # goes after the first six, which show off every kind of title.
        unknown = int(rng.integers(6, n_movies)) if n_movies > 6 else n_movies - 1
        title[unknown] = "unknown"
        year[unknown] = 0
        genre_flags[unknown] = False

    # Taste for each genre: a shared part by gender and age, plus a personal part.
    taste = (
        _gender_taste()[np.searchsorted(GENDERS, gender)]
        + _age_taste()[np.searchsorted(list(AGE_BUCKETS), age)]
        + rng.normal(0.0, 0.35, size=(n_users, len(GENRES)))
    )
    n_genres = np.maximum(genre_flags.sum(axis=1, keepdims=True), 1)
    movie_genres = genre_flags / n_genres

    user, movie, affinity = _simulate_choices(
        rng, taste, movie_genres, n_ratings=n_ratings
    )
    rating = _simulate_ratings(rng, user, movie, affinity, n_users, n_movies)
    timestamp = _simulate_timestamps(rng, user, n_users, time_range)
    return _World(
        gender, age, occupation, movie_id, title, year, genre_flags,
        user, movie, rating, timestamp,
    )  # fmt: skip


def _simulate_users(
    rng: np.random.Generator, n_users: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gender = rng.choice(np.array(GENDERS), size=n_users, p=_GENDER_SHARES)
    buckets = np.array(list(AGE_BUCKETS))
    age = rng.choice(buckets, size=n_users, p=_AGE_SHARES)
    # Make sure every gender and age bucket appears, wherever there is room.
    slots = rng.permutation(n_users)
    n_shown = min(n_users, len(GENDERS))
    gender[slots[:n_shown]] = GENDERS[:n_shown]
    n_shown = min(n_users, len(buckets))
    age[slots[:n_shown]] = buckets[:n_shown]

    occupation = np.empty(n_users, dtype=np.int64)
    for bucket in buckets:
        in_bucket = age == bucket
        weights = _occupation_weights(int(bucket))
        occupation[in_bucket] = rng.choice(
            len(OCCUPATIONS), size=in_bucket.sum(), p=weights / weights.sum()
        )
    return gender, age, occupation


def _occupation_weights(bucket: int) -> np.ndarray:
    weights = _OCCUPATION_SHARES.copy()
    k12 = OCCUPATIONS.index("K-12 student")
    college = OCCUPATIONS.index("college/grad student")
    retired = OCCUPATIONS.index("retired")
    if bucket == 1:
        # Mostly pupils, some early students, hardly any careers.
        weights *= 0.05
        weights[k12] = 6.0 * _OCCUPATION_SHARES.mean()
        weights[college] = 1.0 * _OCCUPATION_SHARES.mean()
    else:
        weights[k12] = 0.0
    if bucket >= 35:
        weights[college] *= 0.1
    if bucket < 50:
        weights[retired] *= 0.05
    else:
        weights[retired] *= 6.0
    return weights


def _simulate_movies(
    rng: np.random.Generator, n_movies: int, *, id_gaps: bool, last_year: int
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    if id_gaps:
        # ML-1M numbers 3,883 movies from 1 to 3,952.
        span = n_movies + max(1, round(0.018 * n_movies))
        movie_id = np.sort(rng.choice(np.arange(1, span + 1), n_movies, replace=False))
    else:
        movie_id = np.arange(1, n_movies + 1)

    recent = rng.integers(1985, last_year + 1, size=n_movies)
    old = rng.integers(1919, 1985, size=n_movies)
    year = np.where(rng.random(n_movies) < 0.7, recent, old)

    n_genres = 1 + rng.choice(
        len(_GENRES_PER_MOVIE_SHARES), size=n_movies, p=_GENRES_PER_MOVIE_SHARES
    )
    n_genres[0] = 3  # at least one movie with several genres
    # Sample genres without replacement, by share: the top n of Gumbel-perturbed
    # log shares.
    keys = np.log(_GENRE_SHARES) + rng.gumbel(size=(n_movies, len(GENRES)))
    ranks = np.argsort(np.argsort(-keys, axis=1), axis=1)
    genre_flags = ranks < n_genres[:, None]

    title = _make_titles(rng, n_movies)
    return movie_id, title, year, genre_flags


def _make_titles(rng: np.random.Generator, n_movies: int) -> list[str]:
    # The first movies cycle through every kind of title, foreign ones first, so
    # that even a tiny release has accents, commas, colons, quotes and parentheses.
    kinds = np.concatenate([np.arange(6), rng.integers(0, 6, size=n_movies)])
    kinds = kinds[:n_movies]
    words = rng.integers(0, 1 << 30, size=(n_movies, 4))
    titles = []
    for kind, (a, b, c, d) in zip(kinds, words, strict=True):
        adjective = _ADJECTIVES[a % len(_ADJECTIVES)]
        noun = _NOUNS[b % len(_NOUNS)]
        other_noun = _NOUNS[c % len(_NOUNS)]
        if kind == 0:
            body, article = _FOREIGN[d % len(_FOREIGN)]
            foreign = f"{body}, {article}" if article else body
            title = f"{foreign} ({adjective} {noun}, The)"
        elif kind == 1:
            title = f"{noun} of {_PLACES[c % len(_PLACES)]}, The"
        elif kind == 2:
            title = f"{adjective} {noun}: The {other_noun}"
        elif kind == 3:
            title = f'"{adjective}" {noun}'
        elif kind == 4:
            title = f"{noun}'s {other_noun} {_ROMAN[d % len(_ROMAN)]}"
        else:
            title = f"{adjective} {noun}"
        titles.append(title)
    return titles


def _gender_taste() -> np.ndarray:
    # Genre preferences by gender, in GENRES order; loosely like ML-1M's.
    taste = np.zeros((len(GENDERS), len(GENRES)))
    for genre, shift in {
        "Romance": 0.5, "Musical": 0.4, "Drama": 0.25, "Children's": 0.2,
        "Action": -0.4, "War": -0.35, "Horror": -0.3, "Western": -0.3,
        "Sci-Fi": -0.25,
    }.items():  # fmt: skip
        taste[GENDERS.index("F"), GENRES.index(genre)] = shift
        taste[GENDERS.index("M"), GENRES.index(genre)] = -shift / 2
    return taste


def _age_taste() -> np.ndarray:
    # Genre preferences of the youngest bucket, faded into their opposite for the
    # oldest one.
    young = np.zeros(len(GENRES))
    for genre, shift in {
        "Animation": 0.45, "Children's": 0.35, "Comedy": 0.3, "Horror": 0.35,
        "Sci-Fi": 0.2, "Action": 0.2, "Film-Noir": -0.45, "War": -0.35,
        "Western": -0.45, "Documentary": -0.25, "Musical": -0.2,
    }.items():  # fmt: skip
        young[GENRES.index(genre)] = shift
    fade = np.linspace(1.0, -1.0, len(AGE_BUCKETS))
    return fade[:, None] * young[None, :]


def _activity_counts(
    rng: np.random.Generator, n_users: int, n_ratings: int, n_rated: int
) -> np.ndarray:
    """Ratings per user: a floor, then a long tail, never over ``n_rated``."""
    floor = max(1, min(_MIN_RATINGS_PER_USER, n_ratings // n_users, n_rated))
    weights = rng.lognormal(0.0, 0.9, size=n_users)
    counts = np.full(n_users, floor)
    while (remaining := n_ratings - counts.sum()) > 0:
        # Users who hit the cap give their share to the others on the next round.
        open_weights = np.where(counts < n_rated, weights, 0.0)
        extra = rng.multinomial(remaining, open_weights / open_weights.sum())
        counts = np.minimum(counts + extra, n_rated)
    return counts


def _simulate_choices(
    rng: np.random.Generator,
    taste: np.ndarray,
    movie_genres: np.ndarray,
    *,
    n_ratings: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick which movies each user rates; return user, movie and taste affinity."""
    n_users, n_movies = taste.shape[0], movie_genres.shape[0]
    rated = np.sort(rng.choice(n_movies, n_movies - _n_unrated(n_movies), False))
    n_rated = len(rated)
    counts = _activity_counts(rng, n_users, n_ratings, n_rated)

    # Log-normal popularity: its rank-frequency curve is Zipf-like, and with a
    # spread of 1.5 the ratings per movie have ML-1M's quartiles (about 40, 120
    # and 300 at full size), down to movies with a single rating.
    log_popularity = rng.normal(0.0, 1.5, size=n_rated).astype(np.float32)
    # Each rated movie is promised to one user with room for it, so that every
    # movie of `rated` really gets a rating.
    slots = np.repeat(np.arange(n_users), counts)
    promised_user = slots[rng.choice(n_ratings, size=n_rated, replace=False)]

    users, movies, affinities = [], [], []
    for start in range(0, n_users, _USER_CHUNK):
        stop = min(start + _USER_CHUNK, n_users)
        affinity = (taste[start:stop] @ movie_genres[rated].T).astype(np.float32)
        # Gumbel top-k: the first `count` keys of each row sample movies without
        # replacement, favouring popular ones and those that fit the user's taste.
        uniform = rng.random(affinity.shape, dtype=np.float32)
        np.maximum(uniform, np.finfo(np.float32).tiny, out=uniform)  # no log(0)
        keys = log_popularity + affinity - np.log(-np.log(uniform))
        promised = (promised_user >= start) & (promised_user < stop)
        keys[promised_user[promised] - start, np.flatnonzero(promised)] = np.inf
        order = np.argsort(-keys, axis=1)
        chosen = np.arange(n_rated) < counts[start:stop, None]
        users.append(np.repeat(np.arange(start, stop), counts[start:stop]))
        movies.append(rated[order[chosen]])
        affinities.append(np.take_along_axis(affinity, order, axis=1)[chosen])
    return np.concatenate(users), np.concatenate(movies), np.concatenate(affinities)


def _simulate_ratings(
    rng: np.random.Generator,
    user: np.ndarray,
    movie: np.ndarray,
    affinity: np.ndarray,
    n_users: int,
    n_movies: int,
) -> np.ndarray:
    user_bias = rng.normal(0.0, 0.35, size=n_users)
    movie_quality = rng.normal(0.0, 0.45, size=n_movies)
    score = (
        user_bias[user]
        + movie_quality[movie]
        + 1.5 * affinity
        + rng.normal(0.0, 0.6, size=len(user))
    )
    # Cut the scores where ML-1M's shares of 1 to 5 stars fall.
    cuts = np.quantile(score, _RATING_QUANTILES)
    return (1 + np.searchsorted(cuts, score, side="right")).astype(np.int64)


def _simulate_timestamps(
    rng: np.random.Generator,
    user: np.ndarray,
    n_users: int,
    time_range: tuple[int, int],
) -> np.ndarray:
    first, last = time_range
    # Most users join early and rate in a burst of days to months.
    joined = first + (last - first) * rng.beta(0.7, 3.0, size=n_users)
    burst = rng.lognormal(np.log(30 * 86_400), 1.5, size=n_users)
    timestamp = joined[user] + rng.exponential(1.0, size=len(user)) * burst[user]
    return np.minimum(timestamp, last).astype(np.int64)


# Formatting


def _format_ml1m(world: _World, rng: np.random.Generator) -> dict[str, bytes]:
    # ratings.dat is grouped by user, in no particular order within a user.
    order = np.lexsort((rng.random(len(world.rating_user)), world.rating_user))
    ratings = _format_columns(
        [
            world.rating_user[order] + 1,
            world.movie_id[world.rating_movie[order]],
            world.rating[order],
            world.timestamp[order],
        ],
        "::",
    )
    zip_codes = _zip_codes(rng, len(world.gender))
    users = "".join(
        f"{i + 1}::{g}::{a}::{o}::{z}\n"
        for i, (g, a, o, z) in enumerate(
            zip(world.gender, world.age, world.occupation, zip_codes, strict=True)
        )
    )
    movies = "".join(
        f"{movie_id}::{_full_title(title, year)}::"
        f"{'|'.join(np.asarray(GENRES)[flags])}\n"
        for movie_id, title, year, flags in zip(
            world.movie_id, world.title, world.year, world.genre_flags, strict=True
        )
    )
    return {
        "ratings.dat": ratings.encode("ascii"),
        "users.dat": users.encode("ascii"),
        "movies.dat": movies.encode("latin-1"),
    }


def _format_ml100k(world: _World, rng: np.random.Generator) -> dict[str, bytes]:
    order = rng.permutation(len(world.rating_user))
    ratings = _format_columns(
        [
            world.rating_user[order] + 1,
            world.movie_id[world.rating_movie[order]],
            world.rating[order],
            world.timestamp[order],
        ],
        "\t",
    )

    low, high = np.array([_RAW_AGE_RANGES[int(a)] for a in world.age]).T
    raw_age = rng.integers(low, high + 1)
    picks = rng.integers(0, 2, size=len(world.age))
    occupation = []
    for code, pick in zip(world.occupation, picks, strict=True):
        options = _ML100K_NAMES.get(OCCUPATIONS[code], ("other",))
        occupation.append(options[pick % len(options)])
    zip_codes = _zip_codes(rng, len(world.gender))
    users = "".join(
        f"{i + 1}|{a}|{g}|{o}|{z}\n"
        for i, (a, g, o, z) in enumerate(
            zip(raw_age, world.gender, occupation, zip_codes, strict=True)
        )
    )

    lines = []
    for movie_id, title, year, flags in zip(
        world.movie_id, world.title, world.year, world.genre_flags, strict=True
    ):
        full_title = _full_title(title, year)
        release = f"01-Jan-{year}" if year else ""
        url = "http://us.imdb.com/M/title-exact?" + urllib.parse.quote(
            full_title, safe="()',:", encoding="latin-1"
        )
        genre_flags = "|".join(map(str, [int(not flags.any()), *flags.astype(int)]))
        lines.append(f"{movie_id}|{full_title}|{release}||{url}|{genre_flags}\n")

    names = sorted({n for names in _ML100K_NAMES.values() for n in names} | {"other"})
    genres = "".join(f"{g}|{i}\n" for i, g in enumerate(("unknown", *GENRES)))
    return {
        "u.data": ratings.encode("ascii"),
        "u.user": users.encode("ascii"),
        "u.item": "".join(lines).encode("latin-1"),
        "u.genre": genres.encode("ascii"),
        "u.occupation": "".join(f"{n}\n" for n in names).encode("ascii"),
    }


def _format_columns(columns: list[np.ndarray], separator: str) -> str:
    # pandas writes a million rows in C; its separator must be a single character,
    # so "::" goes in afterwards.
    frame = pd.DataFrame(dict(enumerate(columns)))
    text = frame.to_csv(sep="\t", header=False, index=False, lineterminator="\n")
    return text if separator == "\t" else text.replace("\t", separator)


def _full_title(title: str, year: int) -> str:
    return f"{title} ({year})" if year else title


def _zip_codes(rng: np.random.Generator, n_users: int) -> list[str]:
    digits = rng.integers(0, 100_000, size=n_users)
    extension = rng.integers(0, 10_000, size=n_users)
    kind = rng.random(n_users)
    letters = rng.integers(0, 26, size=(n_users, 3))
    codes = []
    for number, plus_four, roll, (a, b, c) in zip(
        digits, extension, kind, letters, strict=True
    ):
        if roll < 0.05:
            codes.append(f"{number:05d}-{plus_four:04d}")
        elif roll < 0.07:
            # Canadian postal codes turn up in both releases.
            codes.append(
                f"{chr(65 + a)}{number % 10}{chr(65 + b)}{c % 10}{chr(65 + c)}"
            )
        else:
            codes.append(f"{number:05d}")
    return codes
