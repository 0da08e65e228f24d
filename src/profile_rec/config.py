"""Training configuration and its named presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

PRESETS = ("default", "card")
#: How movies are ranked for a profile; see ``TrainingConfig.ranking``.
RANKINGS = ("likes", "rating", "shrunk_rating")

# The configuration the model card's summary describes, field by field, so that
# tuning the default never changes it.
_CARD = {
    "n_profiles": 10,
    "n_top_genres": 3,
    "min_genre_ratings": 2,
    "genres_from_first": 0,
    "genre_weight": 1.0,
    "embedding_dim": 64,
    "use_bias": False,
    "profile_bias": True,
    "genre_affinity": False,
    "movie_bias_prior": 0.0,
    "l2": 0.0,
    "learning_rate": 1e-3,
    "epochs": 10,
    "batch_size": 256,
    "validation_fraction": 0.0,
    "ranking": "rating",
    "rank_prior": 0.0,
}


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
    genres_from_first : int
        Training users' favourite genres come from their first this-many ratings
        by time (see :func:`profile_rec.profiles.ticked_genres`), the few films a
        new person knows when they tick their favourites, so that people are
        placed in profiles the same way in training as at sign-up; 0 uses all of
        a user's ratings.
    genre_weight : float
        Weight of the genre features against the one-hot demographics in KMeans.
    embedding_dim : int
        Size of the profile and movie embeddings.
    use_bias : bool
        Add a learned bias per movie (and per profile, see ``profile_bias``) to
        the dot product.
    profile_bias : bool
        With ``use_bias``, also learn a bias per profile.
    refit_movie_bias : bool
        With ``use_bias``, after training set each movie's bias to the shrunk
        mean (see ``movie_bias_prior``) of what the rest of the model leaves of
        its ratings, over every training rating, the early-stopping users'
        included.
    genre_affinity : bool
        Add a learned weight times the profile's *genre affinity* for the movie:
        the share of the profile's members who picked each of the movie's genres
        as a favourite, averaged over its genres.
    movie_bias_prior : float
        With biases, each movie's bias starts at its mean training rating shrunk
        towards the overall mean as if it had this many extra ratings at the mean
        (the profile biases start at 0), so training learns only what the profiles
        add; 0 starts every movie at the overall mean.
    l2 : float
        L2 penalty on the embeddings and the profile biases, added to each batch's
        loss.
    learning_rate : float
        Adam's learning rate.
    epochs : int
        Most passes over the training ratings.
    batch_size : int
        Ratings per gradient step.
    validation_fraction : float
        Share of the users whose ratings are held out for early stopping (the
        model is for people it never saw, so it is judged on such people); 0
        trains on every rating for exactly ``epochs`` epochs.
    patience : int
        Epochs without improvement of the held-out users' loss (mean squared
        error plus the L2 penalty) before stopping.
    min_delta : float
        Smallest fall of that loss that counts as an improvement.
    warmup_epochs : int
        Epochs trained before early stopping starts to judge: the weights kept
        are those of a later epoch (when there is one), however the loss of
        these first epochs compares.
    ranking : str
        What orders movies for a profile. ``"likes"``: the expected share of the
        profile's ratings that go to the movie and are above ``like_threshold``,
        i.e. the movie's share of the ratings (see ``profile_share_weight``) times
        the chance that a rating drawn around the predicted one, with spread
        ``rating_noise``, is above the threshold, that chance raised to the power
        ``like_weight``; a movie few people rated cannot top the list however high
        its prediction. ``"rating"``: the predicted
        rating alone. ``"shrunk_rating"``: the predicted rating shrunk towards the
        mean by ``rank_prior``.
    like_threshold : float
        For ``ranking="likes"``, the rating above which a rating counts as liked;
        3.5 counts whole-star ratings of 4 and 5.
    rating_noise : float
        For ``ranking="likes"``, the spread assumed for actual ratings around the
        predicted one; smaller makes the chance of a like sharper, so that a
        small difference in predicted rating counts for more.
    like_weight : float
        For ``ranking="likes"``, how much the chance of a like counts against the
        movie's share of the ratings: 1 ranks by the expected number of likes,
        more favours movies the profile is surer to like over merely popular
        ones.
    profile_share_weight : float
        For ``ranking="likes"``, a movie's share of the ratings is this weight
        times its share of the profile's ratings plus the rest times its share of
        all ratings; 0 uses everyone's ratings, 1 only the profile's.
    rank_prior : float
        For ``ranking="shrunk_rating"``, each movie's predicted rating is shrunk
        towards the mean rating by ``n / (n + rank_prior)``, where ``n`` is how many
        training ratings the profile's members gave it.
    steps_per_execution : int
        Training steps Keras runs per call into TensorFlow; larger is faster and
        gives the same result.
    seed : int
        Seed of KMeans, weight initialisation, shuffling and splits.
    """

    n_profiles: int = 30
    n_top_genres: int = 3
    min_genre_ratings: int = 2
    genres_from_first: int = 10
    genre_weight: float = 2.0
    embedding_dim: int = 64
    use_bias: bool = True
    profile_bias: bool = False
    refit_movie_bias: bool = True
    genre_affinity: bool = True
    movie_bias_prior: float = 3.0
    l2: float = 1e-4
    learning_rate: float = 2e-3
    epochs: int = 10
    batch_size: int = 2048
    validation_fraction: float = 0.1
    patience: int = 1
    min_delta: float = 1e-3
    warmup_epochs: int = 1
    ranking: str = "likes"
    like_threshold: float = 3.5
    rating_noise: float = 0.3
    like_weight: float = 3.0
    profile_share_weight: float = 0.05
    rank_prior: float = 25.0
    steps_per_execution: int = 64
    seed: int = 0

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainingConfig:
        """A named configuration, with some fields replaced.

        ``"card"`` is the configuration described in the model card's summary:
        10 profiles, 64-dim embeddings scored by a plain dot product, Adam, MSE,
        10 epochs at batch 256, ranked by predicted rating. ``"default"`` keeps that
        design and adds what validation on held-out users showed to matter (see
        ``profile-rec evaluate``): 30 profiles placed by the genres of each
        user's first ratings, movie biases that start from each movie's mean
        rating, a genre-affinity term, early stopping on users left out of
        training, and a ranking by expected likes.
        """
        if name not in PRESETS:
            raise ValueError(
                f"Unknown preset {name!r}. Valid presets: {', '.join(PRESETS)}."
            )
        base = cls()
        if name == "card":
            base = dataclasses.replace(base, **_CARD)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"Unknown configuration fields: {sorted(unknown)}")
        return dataclasses.replace(base, **{k: v for k, v in overrides.items()})

    def __post_init__(self) -> None:
        checks = {
            "n_profiles": self.n_profiles >= 1,
            "n_top_genres": self.n_top_genres >= 1,
            "min_genre_ratings": self.min_genre_ratings >= 1,
            "genres_from_first": _whole(self.genres_from_first)
            and self.genres_from_first >= 0,
            "genre_weight": self.genre_weight >= 0,
            "embedding_dim": self.embedding_dim >= 1,
            "l2": self.l2 >= 0,
            "learning_rate": self.learning_rate > 0,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "validation_fraction": 0 <= self.validation_fraction < 1,
            "patience": self.patience >= 0,
            "min_delta": 0 <= self.min_delta < math.inf,
            "warmup_epochs": _whole(self.warmup_epochs) and self.warmup_epochs >= 0,
            "movie_bias_prior": self.movie_bias_prior >= 0,
            "ranking": self.ranking in RANKINGS,
            "rating_noise": self.rating_noise > 0,
            "like_weight": 0 <= self.like_weight < math.inf,
            "profile_share_weight": 0 <= self.profile_share_weight <= 1,
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


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def ranking_of(training: dict[str, Any]) -> str:
    """The ``ranking`` of saved training settings, also for models saved before it.

    Those ranked by ``"shrunk_rating"`` when their ``rank_prior`` was positive.
    """
    prior = float(training.get("rank_prior", 0.0))
    return training.get("ranking") or ("shrunk_rating" if prior > 0 else "rating")


def describe_ranking(training: dict[str, Any]) -> str:
    """How a model trained with ``training`` (``TrainingConfig.to_dict()``) ranks."""
    ranking = ranking_of(training)
    if ranking == "likes":
        weight = float(training.get("profile_share_weight", 0.0))
        if weight > 0:
            share = (
                f"a movie's share of the ratings ({weight:.0%} its share of the "
                "profile's training ratings, the rest its share of everyone's)"
            )
        else:
            share = "a movie's share of all training ratings (its popularity)"
        threshold = f"{training['like_threshold']:g}"
        power = float(training.get("like_weight", 1.0))
        chance = (
            f"the chance that a rating drawn around the profile's predicted "
            f"rating (standard deviation {training['rating_noise']:g}) is above "
            f"{threshold}"
        )
        if power != 1:
            chance += f", raised to the power {power:g} to favour sure likes"
        return (
            f"Movies are ranked by expected likes: {share}, times {chance}. A "
            "movie with a handful of ratings cannot top the list however high its "
            "predicted rating."
        )
    if ranking == "shrunk_rating":
        return (
            "Movies are ranked by the predicted rating shrunk towards the mean "
            "rating according to how many of the profile's members rated the "
            "movie (`score = mean + (predicted - mean) * n / (n + "
            f"{training['rank_prior']:g})`), so that a movie with a handful of "
            "ratings cannot top the list."
        )
    return "Movies are ranked by predicted rating."
