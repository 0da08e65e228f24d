"""Profile-based movie recommendations for people we know only by demographics.

>>> from profile_rec import ProfileRecommender
>>> model = ProfileRecommender.from_pretrained("artifacts")  # doctest: +SKIP
>>> model.recommend(age=25, gender="F", occupation="programmer",
...                 genres=["Comedy", "Romance"])  # doctest: +SKIP
"""

__version__ = "0.1.0"
__all__ = ["ProfileRecommender", "TrainingConfig", "load_movielens", "train"]


def __getattr__(name: str):
    # Imported on first use, so that ``import profile_rec`` and the CLI stay fast.
    if name == "ProfileRecommender":
        from .recommender import ProfileRecommender

        return ProfileRecommender
    if name == "TrainingConfig":
        from .config import TrainingConfig

        return TrainingConfig
    if name == "load_movielens":
        from .data import load_movielens

        return load_movielens
    if name == "train":
        from .training import train

        return train
    raise AttributeError(f"module 'profile_rec' has no attribute {name!r}")
