"""Training configuration and its named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

PRESETS = ("default", "card")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides what ``profile-rec train`` learns.

    Parameters
    ----------
    n_profiles : int
        Number of KMeans profiles.
    n_top_genres : int
        Favourite genres kept per user (see :func:`profile_rec.profiles.
        favourite_genres`).
    min_genre_ratings : int
        Fewest ratings in a genre for it to be one of a user's favourites.
    genre_weight : float
        Weight of the genre features against the one-hot demographics in KMeans.
    embedding_dim : int
        Size of the profile and movie embeddings.
    use_bias : bool
        Add a learned bias per profile and per movie (started at the mean rating)
        to the dot product.
    l2 : float
        L2 penalty on the embeddings (and biases), per example.
    learning_rate : float
        Adam's learning rate.
    epochs : int
        Most passes over the training ratings.
    batch_size : int
        Ratings per gradient step.
    validation_fraction : float
        Share of ratings held out for early stopping; 0 trains on all of them for
        exactly ``epochs`` epochs.
    patience : int
        Epochs without improvement of the validation loss before stopping.
    rank_prior : float
        Ranking shrinks each movie's predicted rating towards the mean rating by
        ``n / (n + rank_prior)``, where ``n`` is how many training ratings the movie
        has, so that a movie with a handful of ratings cannot top the list; 0 ranks
        by the raw predicted rating.
    steps_per_execution : int
        Training steps Keras runs per call into TensorFlow; larger is faster and
        gives the same result.
    seed : int
        Seed of KMeans, weight initialisation, shuffling and splits.
    """

    n_profiles: int = 10
    n_top_genres: int = 3
    min_genre_ratings: int = 2
    genre_weight: float = 1.0
    embedding_dim: int = 64
    use_bias: bool = True
    l2: float = 1e-6
    learning_rate: float = 1e-3
    epochs: int = 10
    batch_size: int = 256
    validation_fraction: float = 0.1
    patience: int = 2
    rank_prior: float = 25.0
    steps_per_execution: int = 64
    seed: int = 0

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainingConfig:
        """A named configuration, with some fields replaced.

        ``"card"`` is the configuration described in the model card's summary:
        10 profiles, 64-dim embeddings scored by a plain dot product, Adam, MSE,
        10 epochs at batch 256, ranked by predicted rating. ``"default"`` keeps that
        design and adds biases, regularisation, early stopping and evidence-aware
        ranking.
        """
        if name not in PRESETS:
            raise ValueError(
                f"Unknown preset {name!r}. Valid presets: {', '.join(PRESETS)}."
            )
        base = cls()
        if name == "card":
            base = dataclasses.replace(
                base,
                use_bias=False,
                l2=0.0,
                validation_fraction=0.0,
                rank_prior=0.0,
            )
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"Unknown configuration fields: {sorted(unknown)}")
        return dataclasses.replace(base, **{k: v for k, v in overrides.items()})

    def __post_init__(self) -> None:
        checks = {
            "n_profiles": self.n_profiles >= 1,
            "n_top_genres": self.n_top_genres >= 1,
            "min_genre_ratings": self.min_genre_ratings >= 1,
            "genre_weight": self.genre_weight >= 0,
            "embedding_dim": self.embedding_dim >= 1,
            "l2": self.l2 >= 0,
            "learning_rate": self.learning_rate > 0,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "validation_fraction": 0 <= self.validation_fraction < 1,
            "patience": self.patience >= 0,
            "rank_prior": self.rank_prior >= 0,
            "steps_per_execution": self.steps_per_execution >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(f"Invalid training configuration: {values}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
