"""The Keras scoring model and the numpy scorer that stands in for it."""

import dataclasses
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from profile_rec.config import TrainingConfig
from profile_rec.mapping import UNKNOWN_ROW, MovieIndex

pytestmark = pytest.mark.slow
keras = pytest.importorskip("keras")
model_module = pytest.importorskip("profile_rec.model")


def test_movie_index_maps_ids_to_rows_and_back():
    index = MovieIndex([100, 10, 50])
    np.testing.assert_array_equal(index.rows([10, 50, 100, 7, 1000]), [1, 2, 3, 0, 0])
    np.testing.assert_array_equal(index.ids([3, 1]), [100, 10])
    assert index.n_rows == 4
    with pytest.raises(ValueError, match="rows must be between 1 and 3"):
        index.ids([UNKNOWN_ROW])
    with pytest.raises(ValueError, match="without duplicates"):
        MovieIndex([1, 1])


def test_keras_lookup_agrees_with_movie_index():
    index = MovieIndex([100, 10, 50])
    lookup = keras.layers.IntegerLookup(vocabulary=index.movie_ids, num_oov_indices=1)
    ids = np.array([10, 50, 100, 7, 1000])
    np.testing.assert_array_equal(np.asarray(lookup(ids)), index.rows(ids))


# Two genres; three profiles; the unknown row and three movies.
_GENRE_TABLES = (
    np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.25]]),
    np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]),
)


def _tiny_model(use_bias=True, seed=0):
    keras.utils.set_random_seed(seed)
    config = TrainingConfig.preset(
        "default" if use_bias else "card",
        embedding_dim=4,
        epochs=3,
        batch_size=8,
        validation_fraction=0.0,
        steps_per_execution=2,
        seed=seed,
    )
    index = MovieIndex([10, 50, 100])
    model = model_module.build_model(
        3, index, config, mean_rating=3.5, genre_tables=_GENRE_TABLES
    )
    rng = np.random.default_rng(seed)
    profiles = rng.integers(0, 3, 60)
    movies = rng.choice(index.movie_ids, 60)
    ratings = (1 + (profiles + movies // 10) % 5).astype("float32")
    model_module.train_model(model, profiles, movies, ratings, config, verbose=0)
    model_module.settle_unknown_movie(model, 3.5)
    return model


@pytest.mark.parametrize("use_bias", [True, False])
def test_one_score_per_row_each_from_its_own_ids(use_bias):
    model = _tiny_model(use_bias)
    profiles = np.array([2, 0, 1, 2])
    movies = np.array([10, 50, 100, 50])
    batch = model.predict([profiles, movies], verbose=0)
    assert batch.shape == (4, 1)
    alone = [
        model.predict([profiles[i : i + 1], movies[i : i + 1]], verbose=0)[0, 0]
        for i in range(4)
    ]
    np.testing.assert_allclose(batch[:, 0], alone, rtol=1e-6)
    # Reordering the batch reorders the scores and changes nothing else.
    shuffled = model.predict([profiles[::-1], movies[::-1]], verbose=0)
    np.testing.assert_allclose(shuffled[::-1, 0], batch[:, 0], rtol=1e-6)


@pytest.mark.parametrize("use_bias", [True, False])
def test_unknown_movie_scores_as_the_model_card_says(use_bias):
    model = _tiny_model(use_bias)
    weights = model_module.export_weights(model)
    scores = model.predict([np.arange(3), np.array([7, 7, 7])], verbose=0)[:, 0]
    expected = weights["profile_bias"] + 3.5 if use_bias else np.zeros(3)
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_numpy_scores_equal_keras_for_every_profile_and_movie():
    from profile_rec.recommender import ProfileRecommender

    model = _tiny_model()
    weights = model_module.export_weights(model)
    weights["rating_count"] = np.ones((3, 4), dtype=np.int32)
    profiles, movies = np.meshgrid(np.arange(3), np.array([10, 50, 100, 7]))
    keras_scores = model.predict([profiles.ravel(), movies.ravel()], verbose=0)[:, 0]
    numpy_scores = ProfileRecommender.predict(
        _Scorer(weights), profiles.ravel(), movies.ravel()
    )
    np.testing.assert_allclose(numpy_scores, keras_scores, atol=1e-5)


class _Scorer:
    """Just what ``ProfileRecommender.predict`` reads."""

    def __init__(self, weights):
        self.weights = weights
        self.n_profiles = 3
        self.movie_index = MovieIndex([10, 50, 100])


def test_genre_affinity_adds_its_weight_times_the_tables_dot_product():
    config = TrainingConfig.preset("default", embedding_dim=2)
    model = model_module.build_model(
        3, MovieIndex([10, 50, 100]), config, genre_tables=_GENRE_TABLES
    )
    for name in ("profile_embedding", "movie_embedding", "movie_bias"):
        layer = model.get_layer(name)
        layer.set_weights([np.zeros_like(layer.get_weights()[0])])
    model.get_layer("genre_affinity").set_weights([np.array([[2.0]])])
    assert not model.get_layer("profile_genres").trainable
    assert not model.get_layer("movie_genres").trainable

    scores = model.predict([np.array([0, 1, 2, 2]), np.array([10, 50, 100, 7])], 0)
    # 2 * (profile genres . movie genres), by hand; id 7 is the unknown row.
    np.testing.assert_allclose(scores[:, 0], [2.0, 1.0, 0.5, 0.0], atol=1e-6)
    weights = model_module.export_weights(model)
    assert weights["profile_embedding"].shape == (3, 4)
    np.testing.assert_allclose(
        weights["profile_embedding"][:, 2:], [[2, 0], [1, 1], [0, 0.5]]
    )
    np.testing.assert_allclose(weights["movie_embedding"][:, 2:], _GENRE_TABLES[1])


def test_genre_affinity_needs_its_tables():
    config = TrainingConfig.preset("default")
    with pytest.raises(ValueError, match="genre_tables"):
        model_module.build_model(3, MovieIndex([10]), config)


def test_refit_movie_bias_is_the_shrunk_mean_of_what_the_rest_leaves():
    config = TrainingConfig.preset("default", embedding_dim=2, genre_affinity=False)
    model = model_module.build_model(2, MovieIndex([10, 50, 100]), config)
    model.get_layer("profile_embedding").set_weights([np.array([[1.0, 0], [0, 1]])])
    model.get_layer("movie_embedding").set_weights(
        [np.array([[0, 0], [0.5, 0], [0, 1.0], [0, 0]])]
    )
    profiles = np.array([0, 0, 1, 1, 0])
    rows = np.array([1, 1, 1, 2, 2])
    ratings = np.array([4.0, 5.0, 3.0, 2.0, 4.0])
    mean = model_module.refit_movie_bias(model, profiles, rows, ratings, prior=1.0)
    assert mean == pytest.approx(3.6)
    # Movie row 1: what is left is 3.5, 4.5 and 3 (the dot products are 0.5, 0.5,
    # 0); with one more rating at 3.6: (3.5 + 4.5 + 3 + 3.6) / 4 = 3.65.
    # Row 2: 1 and 4 (dot products 1 and 0): (1 + 4 + 3.6) / 3. Row 3 has no
    # ratings, so it gets the mean.
    bias = model.get_layer("movie_bias").get_weights()[0][:, 0]
    np.testing.assert_allclose(bias[1:], [3.65, 8.6 / 3, 3.6], rtol=1e-6)


def test_same_seed_gives_identical_weights():
    first = model_module.export_weights(_tiny_model(seed=3))
    second = model_module.export_weights(_tiny_model(seed=3))
    other = model_module.export_weights(_tiny_model(seed=4))
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert not np.array_equal(first["movie_embedding"], other["movie_embedding"])


def test_keras_file_alone_scores_raw_movie_ids(tmp_path):
    model = _tiny_model()
    path = tmp_path / "profile_based_recommendation_model.keras"
    model.save(path)
    expected = model.predict([np.array([2, 2, 2]), np.array([10, 50, 100])], verbose=0)
    # A fresh interpreter that never imports profile_rec, as a user with only the
    # file would do it.
    script = textwrap.dedent(
        f"""
        import keras, numpy as np
        model = keras.models.load_model({str(path)!r})
        print(model.predict([np.array([2, 2, 2]), np.array([10, 50, 100])],
                            verbose=0).ravel().tolist())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    scores = eval(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(scores, expected.ravel(), atol=1e-6)


def test_training_stops_early_and_keeps_the_best_epoch():
    keras.utils.set_random_seed(0)
    config = TrainingConfig.preset(
        "default",
        embedding_dim=8,
        epochs=40,
        batch_size=16,
        learning_rate=0.05,
        patience=1,
        validation_fraction=0.3,
        steps_per_execution=1,
        genre_affinity=False,
    )
    index = MovieIndex(np.arange(1, 31))
    model = model_module.build_model(2, index, config, mean_rating=3.0)
    rng = np.random.default_rng(0)
    # Pure noise: validation loss stops improving quickly.
    profiles = rng.integers(0, 2, 300)
    movies = rng.integers(1, 31, 300)
    ratings = rng.integers(1, 6, 300).astype("float32")
    history = model_module.train_model(
        model, profiles, movies, ratings, config, verbose=0
    )
    assert len(history["loss"]) < 40
    best = model_module.kept_epoch(history["val_loss"], config)
    assert len(history["loss"]) == best + 1 + config.patience


def test_a_fall_below_min_delta_is_no_improvement():
    config = TrainingConfig.preset(
        "default",
        embedding_dim=4,
        epochs=10,
        batch_size=16,
        patience=2,
        validation_fraction=0.3,
        steps_per_execution=1,
        genre_affinity=False,
    )
    index = MovieIndex(np.arange(1, 11))
    rng = np.random.default_rng(0)
    profiles = rng.integers(0, 2, 200)
    movies = rng.integers(1, 11, 200)
    ratings = (1 + (movies + profiles) % 5).astype("float32")  # learnable
    runs, configs = {}, {}
    for min_delta in (0.0, 100.0):
        keras.utils.set_random_seed(0)
        model = model_module.build_model(2, index, config, mean_rating=3.0)
        configs[min_delta] = dataclasses.replace(config, min_delta=min_delta)
        runs[min_delta] = model_module.train_model(
            model, profiles, movies, ratings, configs[min_delta], verbose=0
        )
    # The loss keeps falling, so without a threshold all 10 epochs run; no fall
    # reaches 100, so with it only the first epoch counts, then 2 of patience.
    assert np.all(np.diff(runs[0.0]["val_loss"][1:]) < 0)
    assert len(runs[0.0]["loss"]) == 10
    # The first epoch is the warm-up: the second is the first judged.
    assert len(runs[100.0]["loss"]) == 2 + 2
    assert model_module.kept_epoch(runs[100.0]["val_loss"], configs[100.0]) == 1


@pytest.mark.parametrize(
    ("losses", "min_delta", "warmup", "kept"),
    [
        ([1.0, 0.9, 0.8995, 0.95], 0.001, 0, 1),  # 0.8995 is not 0.001 better
        ([1.0, 0.9, 0.8985, 0.95], 0.001, 0, 2),
        ([0.5, 0.9, 0.8995, 0.95], 0.0, 1, 2),  # epoch 0 is never judged
        ([0.5, 0.9, 0.8995, 0.95], 0.0, 0, 0),
        ([0.5, 0.9], 0.0, 5, 1),  # nothing judged: the last epoch stays
    ],
)
def test_kept_epoch_by_hand(losses, min_delta, warmup, kept):
    config = TrainingConfig(min_delta=min_delta, warmup_epochs=warmup)
    assert model_module.kept_epoch(losses, config) == kept


def test_validation_split_holds_out_whole_users_reproducibly():
    config = TrainingConfig.preset("default", validation_fraction=0.25, seed=3)
    user_ids = np.repeat(np.arange(100, 120), np.arange(1, 21))  # 20 users, 210 rows
    val, fit = model_module.validation_split(len(user_ids), config, user_ids=user_ids)
    assert sorted(np.concatenate([val, fit]).tolist()) == list(range(210))
    held = set(user_ids[val].tolist())
    assert len(held) == 5
    assert held.isdisjoint(user_ids[fit].tolist())
    again = model_module.validation_split(len(user_ids), config, user_ids=user_ids)
    np.testing.assert_array_equal(again[0], val)
    np.testing.assert_array_equal(again[1], fit)
    other = TrainingConfig.preset("default", validation_fraction=0.25, seed=4)
    assert (
        set(user_ids[model_module.validation_split(210, other, user_ids=user_ids)[0]])
        != held
    )


def test_validation_split_of_ratings_and_of_nothing():
    config = TrainingConfig.preset("default", validation_fraction=0.1)
    val, fit = model_module.validation_split(50, config)
    assert len(val) == 5 and len(fit) == 45
    assert set(val).isdisjoint(fit)
    none = TrainingConfig.preset("default", validation_fraction=0.0)
    val, fit = model_module.validation_split(50, none, user_ids=np.arange(50))
    assert len(val) == 0 and sorted(fit) == list(range(50))
    # One user cannot be split: nothing is held out rather than everything.
    val, fit = model_module.validation_split(6, config, user_ids=np.zeros(6, int))
    assert len(val) == 0 and len(fit) == 6


@pytest.mark.parametrize("value", [-0.5, math.inf, math.nan])
def test_like_weight_must_be_finite_and_not_negative(value):
    with pytest.raises(ValueError, match="like_weight"):
        TrainingConfig(like_weight=value)


@pytest.mark.parametrize("value", [-0.001, math.inf, math.nan])
def test_min_delta_must_be_finite_and_not_negative(value):
    with pytest.raises(ValueError, match="min_delta"):
        TrainingConfig(min_delta=value)


@pytest.mark.parametrize("field", ["genres_from_first", "warmup_epochs"])
@pytest.mark.parametrize("value", [-1, 2.5, True])
def test_counts_must_be_whole_and_not_negative(field, value):
    with pytest.raises(ValueError, match=field):
        TrainingConfig(**{field: value})
