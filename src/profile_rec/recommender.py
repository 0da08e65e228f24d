"""Load a trained model and recommend movies to new people, with numpy only.

Scoring needs no TensorFlow: the trained embeddings are saved beside the Keras model,
and scores computed from them equal the Keras model's predictions.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import ranking_of
from .data import GENRES
from .mapping import MovieIndex
from .profiles import (
    GENRE_COLUMNS,
    InvalidPersonError,
    normalize_age,
    normalize_gender,
    normalize_genres,
    normalize_occupation,
    people_frame,
)

MODEL_FILE = "profile_based_recommendation_model.keras"
PIPELINE_FILE = "profile_pipeline.skops"
WEIGHTS_FILE = "scoring_weights.npz"
MOVIES_FILE = "movies.csv"
CONFIG_FILE = "profile_rec_config.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
PLOT_FILE = "profiles.png"

#: Files every artifact folder holds; ``from_pretrained`` needs all of them.
ARTIFACT_FILES = (
    CONFIG_FILE,
    PIPELINE_FILE,
    WEIGHTS_FILE,
    MOVIES_FILE,
    MODEL_FILE,
    METRICS_FILE,
    CARD_FILE,
    PLOT_FILE,
)
#: The Keras model again, unzipped at the folder's root, where Keras' own Hub loader
#: (``keras.saving.load_model("hf://user/repo")``) looks for it.
KERAS_FOLDER_FILES = ("config.json", "metadata.json", "model.weights.h5")
#: Everything ``save_pretrained`` always writes; all of it is published to the Hub.
PUBLISHED_FILES = ARTIFACT_FILES + KERAS_FOLDER_FILES
#: Written and published when there is one: the evaluation chart.
EVALUATION_PLOT_FILE = "evaluation.png"
OPTIONAL_FILES = (EVALUATION_PLOT_FILE,)
FORMAT_VERSION = 1
_WEIGHT_NAMES = (
    "profile_embedding",
    "movie_embedding",
    "profile_bias",
    "movie_bias",
    "rating_count",
)


class ArtifactError(ValueError):
    """An artifact folder is missing a file or its files do not agree."""


def load_profile_pipeline(path: str | os.PathLike):
    """Load the skops profile pipeline, trusting no type beyond skops' defaults."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    if untrusted:
        raise ArtifactError(
            f"{Path(path).name} holds types that are not trusted by default "
            f"({', '.join(untrusted)}); refusing to load it."
        )
    pipeline = sio.load(path, trusted=[])
    steps = getattr(pipeline, "named_steps", {})
    if "features" not in steps or "kmeans" not in steps:
        raise ArtifactError("it is not a profile pipeline (features, then kmeans)")
    return pipeline


class _damaged_file:
    """Turn any failure to read an artifact file into one ArtifactError naming it."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        if isinstance(exc, ArtifactError) and str(exc).startswith(self.name):
            return False
        reason = (
            str(exc).split("\n")[0]
            if isinstance(exc, ArtifactError)
            else (type(exc).__name__)
        )
        raise ArtifactError(
            f"{self.name} in {self.folder} is damaged or not from profile-rec "
            f"({reason}). Re-run 'profile-rec train' or download the model again."
        ) from exc


class ProfileAssigner:
    """Assigns profiles like the fitted pipeline's ``predict``, in plain numpy.

    The scikit-learn pipeline takes a few milliseconds per call on a one-row frame;
    this reads its fitted encoder categories, column weights and cluster centres
    once, so that one person costs microseconds. Results equal ``pipeline.predict``.
    """

    def __init__(self, pipeline) -> None:
        features = pipeline.named_steps["features"]
        encoder = features.named_transformers_["demographics"]
        weights = features.transformer_weights or {}
        self._categories = [list(c) for c in encoder.categories_]
        self._demo_weight = float(weights.get("demographics", 1.0))
        self._genre_weight = float(weights.get("genres", 1.0))
        self._centers = pipeline.named_steps["kmeans"].cluster_centers_
        self._center_norms = np.einsum("ij,ij->i", self._centers, self._centers)
        self._lookup = [{v: i for i, v in enumerate(c)} for c in self._categories]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = []
        for column, lookup in zip(
            ("age", "gender", "occupation"), self._lookup, strict=True
        ):
            codes = np.array([lookup[v] for v in frame[column]], dtype=np.int64)
            block = np.zeros((len(frame), len(lookup)))
            block[np.arange(len(frame)), codes] = self._demo_weight
            blocks.append(block)
        genres = frame[list(GENRE_COLUMNS)].to_numpy(dtype=np.float64)
        blocks.append(genres * self._genre_weight)
        return np.hstack(blocks)

    def assign(self, frame: pd.DataFrame) -> np.ndarray:
        return self._nearest(self.transform(frame))

    def assign_person(
        self, age: int, gender: str, occupation: str, genres: tuple[str, ...]
    ) -> int:
        """``assign`` for one person's valid values, without building a frame.

        A one-row DataFrame costs several times more than the rest of a
        recommendation; the features built here equal ``transform``'s row.
        """
        x = np.zeros((1, self._centers.shape[1]))
        offset = 0
        for value, lookup in zip((age, gender, occupation), self._lookup, strict=True):
            x[0, offset + lookup[value]] = self._demo_weight
            offset += len(lookup)
        x[0, offset:] = [self._genre_weight * (g in genres) for g in GENRES]
        return int(self._nearest(x)[0])

    def _nearest(self, x: np.ndarray) -> np.ndarray:
        # Squared distances up to a per-row constant, as KMeans.predict ranks them.
        distances = self._center_norms[None, :] - 2.0 * x @ self._centers.T
        return distances.argmin(axis=1)


class ProfileRecommender:
    """Recommend movies to a new person from demographics and favourite genres.

    A person is assigned one of the learned profiles by the profile pipeline; the
    profile's embedding is scored against every movie's embedding, and the best
    movies the person has not excluded are returned.

    Build one with :meth:`from_pretrained` (a local folder or a Hub repo) or from
    training (:func:`profile_rec.training.train`).
    """

    def __init__(
        self,
        *,
        pipeline,
        weights: dict[str, np.ndarray],
        movies: pd.DataFrame,
        config: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        files: dict[str, Path | bytes] | None = None,
    ) -> None:
        missing = [name for name in _WEIGHT_NAMES if name not in weights]
        if missing:
            raise ArtifactError(f"{WEIGHTS_FILE} lacks arrays: {', '.join(missing)}.")
        self.pipeline = pipeline
        self.weights = {name: np.asarray(weights[name]) for name in _WEIGHT_NAMES}
        self.config = config
        self.metrics = metrics or {}
        self.movie_index = MovieIndex(config["movie_ids"])
        # The Keras model, the plot and the card: kept as given (paths or bytes) and
        # only read again by save_pretrained.
        self._files = dict(files or {})
        self._check_consistency(movies)
        table = movies[["movie_id", "title", "year", "genres"]].astype(
            {"movie_id": "int64", "title": object, "year": "Int16"}
        )
        self.movies = (
            table.set_index("movie_id").loc[self.movie_index.movie_ids].reset_index()
        )
        self._assigner = ProfileAssigner(pipeline)
        self.predicted_ratings = self._predicted_ratings()
        self.ranking_scores = self._ranking_scores()

    def _check_consistency(self, movies: pd.DataFrame) -> None:
        """Fail early, naming the files, when the artifacts disagree."""
        w = self.weights
        n_profiles = int(self.config["n_profiles"])
        n_rows = self.movie_index.n_rows
        expected = {
            "profile_embedding": (n_profiles, None),
            "movie_embedding": (n_rows, w["profile_embedding"].shape[1]),
            "profile_bias": (n_profiles,),
            "movie_bias": (n_rows,),
            "rating_count": (n_profiles, n_rows),
        }
        for name, shape in expected.items():
            actual = w[name].shape
            if len(actual) != len(shape) or any(
                want is not None and want != got
                for want, got in zip(shape, actual, strict=True)
            ):
                raise ArtifactError(
                    f"{WEIGHTS_FILE}: {name} has shape {actual}, but {CONFIG_FILE} "
                    f"implies {tuple('*' if s is None else s for s in shape)}."
                )
        clusters = self.pipeline.named_steps["kmeans"].cluster_centers_.shape[0]
        if clusters != n_profiles:
            raise ArtifactError(
                f"{PIPELINE_FILE} assigns {clusters} profiles, but {CONFIG_FILE} "
                f"says {n_profiles}."
            )
        encoder = self.pipeline.named_steps["features"].named_transformers_[
            "demographics"
        ]
        vocab = self.config["vocabulary"]
        for column, categories in zip(
            ("ages", "genders", "occupations"), encoder.categories_, strict=True
        ):
            if [str(c) for c in categories] != [str(c) for c in vocab[column]]:
                raise ArtifactError(
                    f"{PIPELINE_FILE} and {CONFIG_FILE} disagree on {column}."
                )
        for name, values in w.items():
            if (
                not np.issubdtype(values.dtype, np.number)
                or not np.isfinite(values).all()
            ):
                raise ArtifactError(f"{WEIGHTS_FILE}: {name} holds non-finite values.")
        if movies["movie_id"].duplicated().any():
            raise ArtifactError(f"{MOVIES_FILE} lists a movie id more than once.")
        unknown = ~np.isin(self.movie_index.movie_ids, movies["movie_id"].to_numpy())
        if unknown.any():
            raise ArtifactError(
                f"{MOVIES_FILE} lacks {int(unknown.sum())} movies the model scores "
                f"(e.g. id {int(self.movie_index.movie_ids[unknown][0])})."
            )

    # -- loading and saving -------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
    ) -> ProfileRecommender:
        """Load from a local artifact folder or a Hugging Face Hub model repo.

        Parameters
        ----------
        path_or_repo_id : str or path
            A folder written by ``profile-rec train`` or :meth:`save_pretrained`, or
            a Hub repo id such as ``"user/profile-rec"``.
        revision : str, optional
            Branch, tag or commit of the Hub repo; all files come from one commit.
        token : str or bool, optional
            Hub token; by default the one huggingface_hub already knows.
        cache_dir : path, optional
            Where to cache downloaded files (huggingface_hub's cache by default).
        local_files_only : bool, default=False
            Use only files already in the cache; never contact the Hub.
        """
        path = Path(path_or_repo_id)
        if path.is_dir():
            files = {name: path / name for name in ARTIFACT_FILES}
            files.update(
                {
                    name: path / name
                    for name in OPTIONAL_FILES
                    if (path / name).is_file()
                }
            )
        elif _looks_like_local_path(str(path_or_repo_id)):
            raise ArtifactError(
                f"No artifact folder at {str(path_or_repo_id)!r}. Train one with "
                "'profile-rec train --out DIR', or give a Hub repo id like "
                "'user/profile-rec'."
            )
        else:
            files = _download_artifacts(
                str(path_or_repo_id),
                revision=revision,
                token=token,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
            )
        return cls._from_files(files)

    @classmethod
    def _from_files(cls, files: dict[str, Path]) -> ProfileRecommender:
        missing = [name for name, file in files.items() if not Path(file).is_file()]
        if missing:
            folder = Path(next(iter(files.values()))).parent
            raise ArtifactError(
                f"{folder} is not a complete profile-rec artifact folder: missing "
                f"{', '.join(missing)}. Re-run 'profile-rec train --out {folder}'."
            )
        folder = Path(files[CONFIG_FILE]).parent
        with _damaged_file(CONFIG_FILE, folder):
            config = json.loads(Path(files[CONFIG_FILE]).read_text(encoding="utf-8"))
            if not isinstance(config, dict):
                raise ArtifactError("it does not hold a JSON object")
        if config.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(
                f"{CONFIG_FILE} has format_version {config.get('format_version')!r}; "
                f"this profile-rec reads version {FORMAT_VERSION}. Upgrade profile-rec "
                "or retrain the model."
            )
        with (
            _damaged_file(WEIGHTS_FILE, folder),
            np.load(files[WEIGHTS_FILE], allow_pickle=False) as npz,
        ):
            weights = {name: npz[name] for name in npz.files}
        with _damaged_file(METRICS_FILE, folder):
            metrics = json.loads(Path(files[METRICS_FILE]).read_text(encoding="utf-8"))
        with _damaged_file(PIPELINE_FILE, folder):
            pipeline = load_profile_pipeline(files[PIPELINE_FILE])
        with _damaged_file(MOVIES_FILE, folder):
            movies = read_movie_table(files[MOVIES_FILE])
        with _damaged_file(f"{CONFIG_FILE} or {WEIGHTS_FILE}", folder):
            return cls(
                pipeline=pipeline,
                weights=weights,
                movies=movies,
                config=config,
                metrics=metrics,
                files=files,
            )

    def save_pretrained(self, directory: str | os.PathLike, *, card: str | None = None):
        """Write the artifact folder ``from_pretrained`` reads, atomically.

        The folder is written under a temporary name beside ``directory`` and renamed
        into place only when complete; an existing artifact folder is replaced, and a
        non-empty folder of anything else is left alone with an error.
        """
        import skops.io as sio

        target = Path(directory)
        missing = [name for name in (MODEL_FILE, PLOT_FILE) if name not in self._files]
        if missing:
            raise ArtifactError(
                f"This recommender has no {' or '.join(missing)} to save; train it "
                "with files=True."
            )
        with staged_directory(target) as stage:
            sio.dump(self.pipeline, stage / PIPELINE_FILE)
            np.savez(stage / WEIGHTS_FILE, **self.weights)
            write_movie_table(self.movies, stage / MOVIES_FILE)
            _write_json(stage / CONFIG_FILE, self.config)
            _write_json(stage / METRICS_FILE, self.metrics)
            for name in (MODEL_FILE, PLOT_FILE):
                _write_payload(self._files[name], stage / name)
            for name in OPTIONAL_FILES:
                if name in self._files:
                    _write_payload(self._files[name], stage / name)
            with zipfile.ZipFile(stage / MODEL_FILE) as archive:
                for name in KERAS_FOLDER_FILES:
                    (stage / name).write_bytes(archive.read(name))
            if card is None and CARD_FILE in self._files:
                card = _read_payload(self._files[CARD_FILE]).decode("utf-8")
            if card is None:
                from .card import render_card

                card = render_card(self.config, self.metrics, location=str(target))
            (stage / CARD_FILE).write_text(card, encoding="utf-8")
        self._files = {
            name: target / name
            for name in ARTIFACT_FILES + OPTIONAL_FILES
            if (target / name).is_file()
        }
        return target

    def attach(self, name: str, data: bytes) -> None:
        """Add an optional file (see ``OPTIONAL_FILES``) for ``save_pretrained``."""
        if name not in OPTIONAL_FILES:
            raise ValueError(f"{name} is not one of {', '.join(OPTIONAL_FILES)}.")
        self._files[name] = data

    # -- scoring ------------------------------------------------------------------

    @property
    def n_profiles(self) -> int:
        return int(self.weights["profile_embedding"].shape[0])

    def predict(self, profile_ids, movie_ids) -> np.ndarray:
        """Predicted ratings of (profile, raw movie id) pairs, as the Keras model.

        Unknown movie ids score as the model's unknown row does: the profile's bias
        plus the mean rating (0 when the model has no biases).
        """
        profiles = np.asarray(profile_ids, dtype=np.int64)
        if np.any((profiles < 0) | (profiles >= self.n_profiles)):
            raise ValueError(f"profile ids must be in 0..{self.n_profiles - 1}.")
        rows = self.movie_index.rows(movie_ids)
        w = self.weights
        dot = np.einsum(
            "ij,ij->i", w["profile_embedding"][profiles], w["movie_embedding"][rows]
        )
        return dot + w["profile_bias"][profiles] + w["movie_bias"][rows]

    def _predicted_ratings(self) -> np.ndarray:
        w = self.weights
        known = w["movie_embedding"][1:]
        # einsum, not @: a BLAS product's last bit depends on its thread count,
        # so two processes could rank two near-equal movies differently.
        return (
            np.einsum("pd,md->pm", w["profile_embedding"], known)
            + w["profile_bias"][:, None]
            + w["movie_bias"][None, 1:]
        )

    def _ranking_scores(self) -> np.ndarray:
        """What ranks movies for a profile (see ``TrainingConfig.ranking``).

        ``"likes"``: ``log(share) + a * log(Phi((predicted - threshold) / noise))``
        with ``a`` the like weight (for ``a = 1``, the log of the expected share of
        the profile's ratings that go to the movie and are above the threshold),
        ``share = w * n / N_p + (1 - w) * n_all / N``, ``w`` the profile share
        weight, ``n`` the profile's training ratings of the movie, ``N_p`` all the
        profile's ratings, and ``n_all`` and ``N`` the same over every profile.
        ``"shrunk_rating"``: ``mean + (predicted - mean) * n / (n + rank_prior)``.
        ``"rating"``: the predicted rating. Models saved before ``ranking`` existed
        rank by ``"shrunk_rating"`` when their ``rank_prior`` is positive.
        """
        training = self.config["training"]
        ranking = ranking_of(training)
        if ranking == "rating":
            return self.predicted_ratings
        counts = self.weights["rating_count"][:, 1:].astype(np.float64)
        if ranking == "shrunk_rating":
            mean = float(self.config["mean_rating"])
            prior = float(training["rank_prior"])
            shrink = counts / (counts + prior) if prior > 0 else 1.0
            return mean + (self.predicted_ratings - mean) * shrink
        if ranking != "likes":
            raise ArtifactError(f"{CONFIG_FILE}: unknown ranking {ranking!r}.")
        within = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        overall = counts.sum(axis=0, keepdims=True) / max(counts.sum(), 1.0)
        weight = float(training["profile_share_weight"])
        share = weight * within + (1.0 - weight) * overall
        liked = (self.predicted_ratings - float(training["like_threshold"])) / float(
            training["rating_noise"]
        )
        # Phi(x) = erfc(-x / sqrt(2)) / 2; numpy has no erfc, and scipy is not
        # installed where the model only recommends.
        chance = np.vectorize(math.erfc, otypes=[np.float64])(-liked / math.sqrt(2)) / 2
        power = float(training.get("like_weight", 1.0))
        with np.errstate(divide="ignore"):
            return np.log(share) + power * np.log(chance)

    def assign_profile(
        self,
        *,
        age: int | str,
        gender: str,
        occupation: str,
        genres: Iterable[str] | str,
    ) -> int:
        """The profile id of a person; see :meth:`recommend` for the arguments."""
        # Checked as profiles.person_frame checks, but with no frame (see
        # ProfileAssigner.assign_person).
        return self._assigner.assign_person(
            normalize_age(age),
            normalize_gender(gender),
            normalize_occupation(occupation),
            normalize_genres(genres),
        )

    def recommend(
        self,
        *,
        age: int | str,
        gender: str,
        occupation: str,
        genres: Iterable[str] | str,
        k: int = 10,
        exclude: Iterable[int] = (),
    ) -> pd.DataFrame:
        """The ``k`` best movies for a new person.

        Parameters
        ----------
        age : int or str
            Age in years, a MovieLens age bucket (1, 18, 25, 35, 45, 50, 56) or its
            label such as ``"25-34"``.
        gender : str
            ``"F"`` or ``"M"`` (``"female"``/``"male"`` work too).
        occupation : str
            One of :data:`profile_rec.data.OCCUPATIONS`, e.g. ``"programmer"``.
        genres : list of str or str
            Favourite genres from :data:`profile_rec.data.GENRES`; a string is split
            on commas.
        k : int, default=10
            How many movies to return.
        exclude : iterable of int, default=()
            MovieLens movie ids never to recommend, e.g. movies already seen.

        Returns
        -------
        DataFrame
            One row per movie, best first: ``movie_id``, ``title``, ``year``,
            ``genres``, ``score`` (what ranks), ``predicted_rating`` and
            ``profile`` (the person's profile id).

        Raises
        ------
        InvalidPersonError
            If a value is unknown; the message lists the valid values.
        """
        profile = self.assign_profile(
            age=age, gender=gender, occupation=occupation, genres=genres
        )
        return self._top_movies(profile, _check_k(k), _exclude_rows(self, exclude))

    def recommend_batch(self, people: pd.DataFrame, *, k: int = 10) -> pd.DataFrame:
        """Recommendations for many people at once.

        ``people`` has columns ``age``, ``gender``, ``occupation`` and ``genres``,
        each holding what :meth:`recommend` accepts. The result has a ``person``
        column (the row position in ``people``) and ``rank``, then the columns of
        :meth:`recommend`.

        Raises
        ------
        InvalidPersonError
            Naming the first row with an unknown value, and the valid values.
        """
        k = _check_k(k)
        frame = people_frame(people)
        profiles = self._assigner.assign(frame)
        k = min(k, self.ranking_scores.shape[1])
        top = _top_k(self.ranking_scores, k)
        chosen = top[profiles]
        person = np.repeat(np.arange(len(people)), k)
        columns = chosen.ravel()
        result = self.movies.iloc[columns].reset_index(drop=True)
        result.insert(0, "rank", np.tile(np.arange(1, k + 1), len(people)))
        result.insert(0, "person", person)
        profile_rows = np.repeat(profiles, k)
        result["score"] = self.ranking_scores[profile_rows, columns]
        result["predicted_rating"] = self.predicted_ratings[profile_rows, columns]
        result["profile"] = profile_rows
        return result

    def _top_movies(self, profile: int, k: int, excluded: np.ndarray) -> pd.DataFrame:
        scores = self.ranking_scores[profile]
        if len(excluded):
            if len(excluded) == len(scores):
                raise InvalidPersonError(
                    "Every movie the model knows is excluded; nothing is left to "
                    "recommend."
                )
            scores = scores.copy()
            scores[excluded] = -np.inf
            k = min(k, len(scores) - len(excluded))
        k = min(k, len(scores))
        best = _top_k(scores[None, :], k)[0]
        result = self.movies.iloc[best].reset_index(drop=True)
        result["score"] = scores[best]
        result["predicted_rating"] = self.predicted_ratings[profile, best]
        result["profile"] = profile
        return result

    def __repr__(self) -> str:
        return (
            f"ProfileRecommender(n_profiles={self.n_profiles}, "
            f"n_movies={len(self.movie_index)}, "
            f"preset={self.config.get('preset')!r})"
        )


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` highest scores per row, best first.

    Ties are broken by column order, so results are deterministic.
    """
    if k >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(scores, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidPersonError(f"k must be a whole number of at least 1, got {k!r}.")
    return int(k)


def _exclude_rows(model: ProfileRecommender, exclude: Iterable[int]) -> np.ndarray:
    problem = InvalidPersonError(
        f"exclude must be a list of MovieLens movie ids (whole numbers), "
        f"got {exclude!r}."
    )
    if isinstance(exclude, (str, bytes)):
        raise problem
    try:
        values = list(exclude)
    except TypeError:
        raise problem from None
    if not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
        for v in values
    ):
        raise problem
    # Ids beyond int64 cannot be movies the model knows; leave them out.
    limit = np.iinfo(np.int64).max
    ids = np.asarray([v for v in values if abs(int(v)) <= limit], dtype=np.int64)
    rows = model.movie_index.rows(ids)
    return np.unique(rows[rows > 0] - 1)


def read_movie_table(path: str | os.PathLike) -> pd.DataFrame:
    """The movie table of an artifact folder: id, title, year and genres."""
    table = pd.read_csv(
        path,
        dtype={"movie_id": "int64", "title": "string", "year": "Int16"},
        keep_default_na=False,
        na_values={"year": [""]},
    )
    table["title"] = table["title"].astype(object)
    table["genres"] = [tuple(g.split("|")) if g else () for g in table["genres"]]
    return table


def write_movie_table(movies: pd.DataFrame, path: str | os.PathLike) -> None:
    table = movies[["movie_id", "title", "year", "genres"]].copy()
    table["genres"] = ["|".join(g) for g in table["genres"]]
    table.to_csv(path, index=False, encoding="utf-8")


def _read_payload(source: Path | bytes) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def _write_payload(source: Path | bytes, path: Path) -> None:
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        shutil.copyfile(source, path)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", "utf-8")


class staged_directory:
    """Context manager that builds a folder under a temporary name, then renames it.

    On success the temporary folder replaces ``target`` (an existing artifact folder
    is swapped out and removed); on any error it is deleted and ``target`` is left
    exactly as it was.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target).resolve()

    def __enter__(self) -> Path:
        target = self.target
        check_replaceable(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.stage = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)
        )
        return self.stage

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            return
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.stage, 0o777 & ~umask)
        old = None
        if self.target.exists():
            old = Path(
                tempfile.mkdtemp(
                    prefix=f".{self.target.name}.old.", dir=self.target.parent
                )
            )
            os.replace(self.target, old / "previous")
        os.replace(self.stage, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def check_replaceable(target: Path) -> None:
    """Refuse to replace anything but an empty folder or a profile-rec artifact folder.

    An artifact folder is replaced whole, so it may hold nothing else: a file that
    profile-rec did not write there would be lost.
    """
    target = Path(target).resolve()
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"{target} exists and is not a folder.")
    here = Path.cwd()
    if target == here or target in here.parents:
        raise ArtifactError(
            f"{target} is the current folder (or holds it), which cannot be "
            "replaced; write into a subfolder, e.g. --out artifacts."
        )
    if not target.is_dir():
        return
    present = {p.name for p in target.iterdir()}
    foreign = sorted(present - set(PUBLISHED_FILES + OPTIONAL_FILES))
    if present and (CONFIG_FILE not in present or foreign):
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ArtifactError(
            f"{target} holds files that are not profile-rec artifacts ({shown}); "
            "choose another --out folder, or move them away first."
        )
    if not os.access(target.parent, os.W_OK):
        raise ArtifactError(
            f"Cannot write beside {target}: its folder {target.parent} is not "
            "writable. Choose another --out folder."
        )


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def _looks_like_local_path(value: str) -> bool:
    """Whether a missing ``from_pretrained`` target was meant as a folder.

    Hub repo ids here are always ``owner/name``; anything else is a path, and so is
    ``owner/name`` when ``owner`` is a folder here (a mistyped path inside it).
    """
    return not _REPO_ID.match(value) or Path(value.split("/")[0]).exists()


def _download_artifacts(
    repo_id: str,
    *,
    revision: str | None,
    token: str | bool | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
) -> dict[str, Path]:
    from huggingface_hub import hf_hub_download

    def fetch(name: str, at: str | None) -> Path:
        return Path(
            hf_hub_download(
                repo_id,
                name,
                revision=at,
                token=token,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
            )
        )

    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        config = fetch(CONFIG_FILE, revision)
        # Files land in snapshots/<commit>/; take every other file from that same
        # commit, so that a push in between cannot mix two versions.
        commit = config.parent.name
        at = commit if re.fullmatch(r"[0-9a-f]{40}", commit) else revision
        files = {CONFIG_FILE: config}
        for name in ARTIFACT_FILES:
            if name != CONFIG_FILE:
                files[name] = fetch(name, at)
    except RepositoryNotFoundError:
        raise ArtifactError(
            f"No folder {repo_id!r} here, and no Hub repo {repo_id!r} that this "
            "token can see (for a private repo, log in or pass a token)."
        ) from None
    except RevisionNotFoundError:
        raise ArtifactError(
            f"The Hub repo {repo_id} has no revision {revision!r}."
        ) from None
    except LocalEntryNotFoundError:
        raise ArtifactError(
            f"{repo_id} (revision {revision or 'main'}) is not in the local cache, "
            "and the Hub could not be reached or offline mode is on. Connect once "
            "to download it."
        ) from None
    except EntryNotFoundError as exc:
        raise ArtifactError(
            f"{repo_id} is not a profile-rec model repo: a file is missing ({exc})."
        ) from None
    return files
