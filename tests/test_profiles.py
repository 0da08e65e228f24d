import itertools

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from profile_rec.data import AGE_BUCKETS, GENDERS, GENRES, OCCUPATIONS
from profile_rec.profiles import (
    GENRE_COLUMNS,
    InvalidPersonError,
    favourite_genres,
    feature_frame,
    make_profile_pipeline,
    normalize_age,
    person_frame,
    ticked_genres,
)
from profile_rec.recommender import ProfileAssigner, load_profile_pipeline


def test_favourite_genres_ranks_by_mean_centred_rating():
    movies = pd.DataFrame(
        {
            "movie_id": [1, 2, 3, 4, 5],
            "genres": [
                ("Comedy",),
                ("Comedy", "Romance"),
                ("Horror",),
                ("Horror",),
                ("War",),
            ],
        }
    )
    # User 10 averages 3.0: Comedy +1.5 (two ratings), Romance +1 (one rating,
    # below min_ratings), Horror -1.5, War +1 (one rating).
    ratings = pd.DataFrame(
        {
            "user_id": [10, 10, 10, 10, 10, 20, 20],
            "movie_id": [1, 2, 3, 4, 5, 3, 4],
            "rating": [5, 4, 2, 1, 4, 3, 3],
        }
    )
    top = favourite_genres(ratings, movies, n_top=2, min_ratings=2)
    assert top.loc[10] == ("Comedy", "Horror")
    # Equal affinity everywhere: the most rated genre wins.
    assert top.loc[20] == ("Horror",)
    top1 = favourite_genres(ratings, movies, n_top=3, min_ratings=1)
    assert top1.loc[10] == ("Comedy", "Romance", "War")


def test_favourite_genres_break_exact_ties_by_number_of_ratings():
    # The user averages 13/7. Drama (1, 1, 4) and Comedy (3, 1) are both 2/7 above
    # it, but summed in floating point Drama comes out a hair lower; the tie must
    # still go to Drama, rated three times, though Comedy comes first in GENRES.
    movies = pd.DataFrame(
        {
            "movie_id": list(range(1, 8)),
            "genres": [("Drama",)] * 3 + [("Comedy",)] * 2 + [("Horror",)] * 2,
        }
    )
    ratings = pd.DataFrame(
        {
            "user_id": [1] * 7,
            "movie_id": list(range(1, 8)),
            "rating": [1, 1, 4, 3, 1, 1, 1],
        }
    )
    favourites = favourite_genres(ratings, movies, n_top=2, min_ratings=2)
    assert favourites.to_dict() == {1: ("Drama", "Comedy")}


def test_favourite_genres_without_known_movies_or_with_min_ratings_zero():
    ratings = pd.DataFrame(
        {"user_id": [1, 1, 2], "movie_id": [1, 2, 9], "rating": [5, 3, 4]}
    )
    no_movies = pd.DataFrame({"movie_id": pd.Series([], dtype="int64"), "genres": []})
    assert favourite_genres(ratings, no_movies, n_top=2, min_ratings=1).to_dict() == {
        1: (),
        2: (),
    }
    movies = pd.DataFrame({"movie_id": [1, 2], "genres": [("Drama",), ("Comedy",)]})
    # Movie 9 is unknown, so user 2 has no genre; 0 counts as 1, never as "any
    # genre at all".
    top = favourite_genres(ratings, movies, n_top=3, min_ratings=0)
    assert top.to_dict() == {1: ("Drama", "Comedy"), 2: ()}


def test_ticked_genres_come_from_each_users_first_ratings_by_time():
    movies = pd.DataFrame(
        {
            "movie_id": [1, 2, 3, 4, 5],
            "genres": [("Comedy",), ("Comedy",), ("Drama",), ("Horror",), ()],
        }
    )
    rows = [
        # User 1, out of time order: first (t=1, 2, 3) Comedy 4, Comedy 4 and
        # Drama 1; later (t=9) Horror 5, which their first three leave out.
        (1, 4, 5, 9),
        (1, 3, 1, 3),
        (1, 1, 4, 1),
        (1, 2, 4, 2),
        # User 2: first a movie without genres (t=1, and t=1 again for movie 5 is
        # settled by movie id, after movie 1... which user 2 has not rated).
        (2, 5, 3, 1),
        (2, 3, 5, 7),
        # User 3: Drama (t=1) and Comedy (t=2), equal ratings.
        (3, 3, 4, 1),
        (3, 1, 4, 2),
    ]
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])
    ticked = ticked_genres(ratings, movies, n_first=3, n_top=2, min_ratings=1)
    # User 1: Comedy (+1 over their mean of 3) beats Drama (-2); Horror is later.
    assert ticked[1] == ("Comedy", "Drama")
    # User 2's first three ratings hold Drama (5, over a mean of 4).
    assert ticked[2] == ("Drama",)
    # User 3: a tie of affinity and of counts goes by the order of GENRES.
    assert ticked[3] == ("Comedy", "Drama")
    only_first = ticked_genres(ratings, movies, n_first=1, n_top=2, min_ratings=1)
    assert only_first[1] == ("Comedy",)
    # User 2's first rating has no genre: they get the genres most often ticked.
    assert only_first[2] == ("Comedy", "Drama")
    assert only_first[3] == ("Drama",)


@pytest.mark.parametrize(
    ("given", "bucket"),
    [(1, 1), (17, 1), (18, 18), (30, 25), (25, 25), ("25-34", 25), ("56+", 56)],
)
def test_normalize_age(given, bucket):
    assert normalize_age(given) == bucket


def test_person_frame_is_one_valid_row():
    frame = person_frame(
        age=30, gender="female", occupation="Programmer", genres="comedy, Romance"
    )
    assert frame.loc[0, "age"] == 25
    assert frame.loc[0, "gender"] == "F"
    assert frame.loc[0, "occupation"] == "programmer"
    chosen = [c for c in GENRE_COLUMNS if frame.loc[0, c] == 1.0]
    assert chosen == ["genre:Comedy", "genre:Romance"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"occupation": "astronaut"}, "Unknown occupation 'astronaut'"),
        ({"genres": ["Comedy", "Telenovela"]}, "Unknown genre 'Telenovela'"),
        ({"genres": []}, "Choose at least one favourite genre"),
        ({"gender": "X"}, "Unknown gender 'X'"),
        ({"age": "old"}, "Unknown age 'old'"),
        ({"age": 0}, "between 1 and 129"),
    ],
)
def test_person_frame_rejects_unknown_values_listing_valid_ones(kwargs, message):
    person = {"age": 25, "gender": "F", "occupation": "writer", "genres": ["Drama"]}
    person.update(kwargs)
    with pytest.raises(InvalidPersonError, match=message) as info:
        person_frame(**person)
    if "occupation" in kwargs:
        assert "programmer" in str(info.value) and "K-12 student" in str(info.value)
    if "genres" in kwargs:
        assert "Film-Noir" in str(info.value)


def _two_groups(n=40):
    """Young women who like Romance and Comedy; old men who like War and Western."""
    half = n // 2
    return feature_frame(
        [18] * half + [56] * half,
        ["F"] * half + ["M"] * half,
        ["college/grad student"] * half + ["retired"] * half,
        [("Romance", "Comedy")] * half + [("War", "Western")] * half,
    )


def test_pipeline_separates_two_obvious_groups_and_places_a_new_person():
    features = _two_groups()
    pipeline = make_profile_pipeline(2, random_state=0).fit(features)
    labels = pipeline.predict(features)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1
    assert labels[0] != labels[-1]
    # Another young woman who likes Romance (but is a writer) joins the first group.
    newcomer = person_frame(
        age=22, gender="F", occupation="writer", genres=["Romance", "Comedy"]
    )
    assert pipeline.predict(newcomer)[0] == labels[0]


def test_pipeline_round_trips_through_skops_with_no_trusted_types(tmp_path):
    features = _two_groups()
    pipeline = make_profile_pipeline(2, genre_weight=2.0).fit(features)
    path = tmp_path / "pipeline.skops"
    sio.dump(pipeline, path)
    assert sio.get_untrusted_types(file=path) == []
    loaded = load_profile_pipeline(path)
    np.testing.assert_array_equal(loaded.predict(features), pipeline.predict(features))


def test_fast_assignment_equals_the_pipeline_on_every_demographic():
    rng = np.random.default_rng(0)
    combos = list(itertools.product(AGE_BUCKETS, GENDERS, OCCUPATIONS))
    genres = [
        tuple(rng.choice(GENRES, size=rng.integers(1, 4), replace=False))
        for _ in combos
    ]
    ages, genders, occupations = zip(*combos, strict=True)
    features = feature_frame(ages, genders, occupations, genres)
    pipeline = make_profile_pipeline(7, genre_weight=1.5).fit(features)
    assigner = ProfileAssigner(pipeline)
    np.testing.assert_array_equal(assigner.assign(features), pipeline.predict(features))
