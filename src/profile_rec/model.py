"""The Keras model: profile embedding and movie embedding, scored by a dot product.

This is the only module that imports TensorFlow; inference elsewhere scores with
numpy from the weights this module exports.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from .config import TrainingConfig  # noqa: E402
from .mapping import UNKNOWN_ROW, MovieIndex  # noqa: E402

#: Names of the fixed (profiles x genres) and (movies x genres) layers.
GENRE_TABLES = ("profile_genres", "movie_genres")


def build_model(
    n_profiles: int,
    movie_index: MovieIndex,
    config: TrainingConfig,
    *,
    mean_rating: float = 0.0,
    genre_tables: tuple[np.ndarray, np.ndarray] | None = None,
) -> keras.Model:
    """The scoring model; ``predict([profile_ids, movie_ids])`` gives one score a row.

    Movie ids are raw MovieLens ids: an ``IntegerLookup`` layer turns them into
    embedding rows, sending ids the model never saw to the unknown row.

    With ``config.genre_affinity``, ``genre_tables`` holds a (profiles x genres)
    and a (embedding rows x genres) array, fixed during training; their dot product
    for a profile and a movie, times one learned weight, is added to the score.
    """
    regularizer = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
    profile_in = keras.Input(shape=(), dtype="int32", name="profile_id")
    movie_in = keras.Input(shape=(), dtype="int32", name="movie_id")
    rows = keras.layers.IntegerLookup(
        vocabulary=movie_index.movie_ids.astype("int64"),
        num_oov_indices=1,
        name="movie_lookup",
    )(movie_in)
    profile_vec = keras.layers.Embedding(
        n_profiles,
        config.embedding_dim,
        embeddings_regularizer=regularizer,
        name="profile_embedding",
    )(profile_in)
    movie_vec = keras.layers.Embedding(
        movie_index.n_rows,
        config.embedding_dim,
        embeddings_regularizer=regularizer,
        name="movie_embedding",
    )(rows)
    terms = [keras.layers.Dot(axes=1, name="dot")([profile_vec, movie_vec])]
    if config.use_bias:
        terms.append(
            keras.layers.Embedding(
                movie_index.n_rows,
                1,
                embeddings_initializer=keras.initializers.Constant(mean_rating),
                name="movie_bias",
            )(rows)
        )
        if config.profile_bias:
            terms.append(
                keras.layers.Embedding(
                    n_profiles,
                    1,
                    embeddings_initializer="zeros",
                    embeddings_regularizer=regularizer,
                    name="profile_bias",
                )(profile_in)
            )
    tables = []
    if config.genre_affinity:
        if genre_tables is None:
            raise ValueError("genre_affinity needs genre_tables.")
        tables = [
            keras.layers.Embedding(
                len(table), table.shape[1], trainable=False, name=name
            )
            for name, table in zip(GENRE_TABLES, genre_tables, strict=True)
        ]
        match = keras.layers.Dot(axes=1, name="genre_match")(
            [tables[0](profile_in), tables[1](rows)]
        )
        terms.append(
            keras.layers.Dense(
                1, use_bias=False, kernel_initializer="zeros", name="genre_affinity"
            )(match)
        )
    score = keras.layers.Add(name="score")(terms) if len(terms) > 1 else terms[0]
    model = keras.Model([profile_in, movie_in], score, name="profile_recommender")
    # Set after building, not through an initializer, so that the tables are
    # saved as weights rather than written into the model's JSON configuration.
    for layer, table in zip(tables, genre_tables or (), strict=False):
        layer.set_weights([np.asarray(table, dtype=np.float32)])
    return model


def train_model(
    model: keras.Model,
    profile_ids: np.ndarray,
    movie_ids: np.ndarray,
    ratings: np.ndarray,
    config: TrainingConfig,
    *,
    user_ids: np.ndarray | None = None,
    verbose: int | str = "auto",
) -> dict[str, list[float]]:
    """Fit ``model`` on (profile, movie) -> rating and return the Keras history.

    With ``config.validation_fraction > 0`` some ratings are held out (see
    :func:`validation_split`; ``user_ids`` gives the user of each rating),
    training stops after ``config.patience`` epochs without a lower loss on them
    (see :func:`early_stopping`), and the best weights are kept.

    For speed, what is fitted is a twin of ``model`` that takes embedding rows
    instead of movie ids: the ids are looked up once, up front, with ``model``'s
    own lookup layer, and without a lookup table in it each training step of a
    long run is XLA-compiled, which halves its time on CPU. The twin shares every
    other layer, so ``model`` ends up with the trained weights; ``model`` itself
    stays uncompiled, so its saved file holds no optimizer state. The losses equal
    those of a plain ``model.fit`` of ``model`` up to float rounding.
    """
    profile_ids = np.asarray(profile_ids, dtype=np.int32)
    movie_ids = np.asarray(movie_ids, dtype=np.int32)
    ratings = np.asarray(ratings, dtype=np.float32)
    val, fit = validation_split(len(ratings), config, user_ids=user_ids)
    n_val = len(val)
    n_steps = config.epochs * -(-(len(ratings) - n_val) // config.batch_size)
    fitted, movie_inputs = _without_movie_lookup(model, movie_ids)
    fitted.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="mse",
        metrics=training_metrics(),
        steps_per_execution=config.steps_per_execution,
        jit_compile=fitted is not model and n_steps >= _MIN_STEPS_FOR_XLA,
    )

    callbacks = []
    validation = None
    if n_val:
        validation = ([profile_ids[val], movie_inputs[val]], ratings[val])
        profile_ids, movie_inputs = profile_ids[fit], movie_inputs[fit]
        ratings = ratings[fit]
        callbacks.append(early_stopping(config))
    history = fitted.fit(
        [profile_ids, movie_inputs],
        ratings,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=validation,
        # The validation loss is a mean over all held-out ratings whatever the
        # batch size; one large batch computes it sooner (and XLA compiles once).
        validation_batch_size=min(max(n_val, 1), _MAX_VALIDATION_BATCH),
        callbacks=callbacks,
        shuffle=True,
        verbose=verbose,
    )
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def training_metrics() -> list:
    """What training reports besides the loss."""
    return ["mae", keras.metrics.RootMeanSquaredError(name="rmse")]


def early_stopping(config: TrainingConfig) -> keras.callbacks.EarlyStopping:
    """The callback that stops training on the held-out users' loss.

    It watches the loss on their ratings, the mean squared error plus the L2
    penalty: on validation users, stopping on the error alone sometimes trained
    on until the model predicted worse than the movies' mean ratings. It keeps
    the weights of the epoch :func:`kept_epoch` names.
    """
    return keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=config.patience,
        min_delta=config.min_delta,
        start_from_epoch=config.warmup_epochs,
        restore_best_weights=True,
    )


def kept_epoch(val_loss: list[float], config: TrainingConfig) -> int:
    """Which epoch's weights early stopping kept (0-based), from ``val_loss``.

    The first epoch after ``config.warmup_epochs``, then each later one whose
    held-out loss is at least ``config.min_delta`` below the kept one's, as
    Keras' ``EarlyStopping`` decides; the last epoch when none was judged.
    """
    kept = None
    for epoch, value in enumerate(val_loss):
        if epoch < config.warmup_epochs:
            continue
        if kept is None or value + config.min_delta < val_loss[kept]:
            kept = epoch
    return len(val_loss) - 1 if kept is None else kept


def validation_split(
    n_ratings: int, config: TrainingConfig, *, user_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ratings held out for early stopping, and of the rest.

    Without ``user_ids``, a seeded ``config.validation_fraction`` of the ratings;
    with them (the user of each rating), every rating of a seeded share of the
    users, so that early stopping judges the model as new users meet it: on
    people it never trained on.

    Returns
    -------
    validation, fit : ndarray of int
        Held-out positions, then the training positions in a seeded order; the
        first is empty when ``config.validation_fraction`` is 0.
    """
    order = np.random.default_rng(config.seed).permutation(n_ratings)
    if config.validation_fraction <= 0:
        return order[:0], order
    if user_ids is None:
        n_val = max(1, int(round(n_ratings * config.validation_fraction)))
        return order[:n_val], order[n_val:]
    users = np.unique(user_ids)
    n_held = min(
        max(1, int(round(len(users) * config.validation_fraction))), len(users) - 1
    )
    held = np.random.default_rng(config.seed).permutation(users)[:n_held]
    in_validation = np.isin(np.asarray(user_ids)[order], held)
    return order[in_validation], order[~in_validation]


# XLA compiles the step function once per batch shape (full, last partial, and
# validation), a few seconds in all on two cores; from about this many training
# steps on, the faster steps repay it (ML-1M: 4,400 steps at batch 2,048).
_MIN_STEPS_FOR_XLA = 2_000
# Ratings scored at once for the validation loss: ML-1M's 100,021 in one batch,
# tens of MB at 64 dimensions.
_MAX_VALIDATION_BATCH = 131_072


def _without_movie_lookup(
    model: keras.Model, movie_ids: np.ndarray
) -> tuple[keras.Model, np.ndarray]:
    """The model to fit and its movie input: a twin fed with embedding rows.

    The twin is ``model`` with the ``movie_lookup`` layer replaced by an identity
    and every other layer shared, not copied. A model laid out differently is
    returned as it is, with the raw ids.
    """
    lookups = [
        layer for layer in model.layers if isinstance(layer, keras.layers.IntegerLookup)
    ]
    if [layer.name for layer in lookups] != ["movie_lookup"]:
        return model, movie_ids
    rows = np.asarray(lookups[0](movie_ids.astype(np.int64)), dtype=np.int32)

    def skip_lookup(layer: keras.layers.Layer) -> keras.layers.Layer:
        if layer is lookups[0]:
            return keras.layers.Identity(name=layer.name)
        return layer

    twin = keras.models.clone_model(model, clone_function=skip_lookup)
    return twin, rows


def settle_unknown_movie(model: keras.Model, mean_rating: float) -> None:
    """Give the unknown-movie row a defined meaning after training.

    Its embedding becomes zero, so the dot product is 0; with biases, its bias
    becomes ``mean_rating``, so an unknown movie scores as an average movie for the
    profile (the profile's bias plus the mean rating).
    """
    for name in ("movie_embedding", GENRE_TABLES[1]):
        if _has_layer(model, name):
            table = model.get_layer(name)
            weights = table.get_weights()[0]
            weights[UNKNOWN_ROW] = 0.0
            table.set_weights([weights])
    if _has_layer(model, "movie_bias"):
        bias = model.get_layer("movie_bias")
        values = bias.get_weights()[0]
        values[UNKNOWN_ROW] = mean_rating
        bias.set_weights([values])


def export_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """The arrays the numpy scorer needs, taken from a trained model."""
    profile = model.get_layer("profile_embedding").get_weights()[0]
    movie = model.get_layer("movie_embedding").get_weights()[0]
    profile_bias = _bias(model, "profile_bias", len(profile), profile.dtype)
    movie_bias = _bias(model, "movie_bias", len(movie), movie.dtype)
    if _has_layer(model, "genre_affinity"):
        # weight * (profile genres . movie genres) is one more dot product: append
        # the genre tables as columns, the profiles' scaled by the weight.
        weight = model.get_layer("genre_affinity").get_weights()[0][0, 0]
        genres = [model.get_layer(name).get_weights()[0] for name in GENRE_TABLES]
        profile = np.concatenate([profile, weight * genres[0]], axis=1)
        movie = np.concatenate([movie, genres[1]], axis=1)
    return {
        "profile_embedding": profile,
        "movie_embedding": movie,
        "profile_bias": profile_bias,
        "movie_bias": movie_bias,
    }


def _has_layer(model: keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def _bias(model: keras.Model, name: str, n: int, dtype) -> np.ndarray:
    if _has_layer(model, name):
        return model.get_layer(name).get_weights()[0][:, 0]
    return np.zeros(n, dtype=dtype)


def refit_movie_bias(
    model: keras.Model,
    profile_ids: np.ndarray,
    rows: np.ndarray,
    ratings: np.ndarray,
    prior: float,
) -> float:
    """Set each movie's bias to its best value given the rest of the model.

    The bias becomes the movie's mean of ``rating - (score without the bias)``
    over ``ratings``, shrunk towards the mean rating as if it had ``prior`` more
    ratings there. After early stopping has picked the epoch on held-out users,
    this lets every training rating, theirs included, into the movies' biases.

    Returns
    -------
    float
        The mean of ``ratings``, what a movie without ratings gets.
    """
    weights = export_weights(model)
    mean_rating = float(np.mean(ratings, dtype=np.float64))
    # Every (profile, movie) score at once is a small table; gathering the
    # embeddings rating by rating would take gigabytes on ML-1M.
    table = weights["profile_embedding"] @ weights["movie_embedding"].T
    table += weights["profile_bias"][:, None]
    rest = table[profile_ids, rows]
    n_rows = len(weights["movie_bias"])
    sums = np.bincount(rows, weights=ratings - rest, minlength=n_rows)
    counts = np.bincount(rows, minlength=n_rows)
    bias = (sums + prior * mean_rating) / (counts + prior)
    bias[counts == 0] = mean_rating
    layer = model.get_layer("movie_bias")
    layer.set_weights([bias[:, None].astype(layer.get_weights()[0].dtype)])
    return mean_rating


def load_keras_model(path: str | os.PathLike) -> keras.Model:
    """Load a saved model with Keras' safe mode on (no arbitrary code)."""
    return keras.models.load_model(path, safe_mode=True, compile=False)
