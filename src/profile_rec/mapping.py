"""The one mapping between MovieLens movie ids and embedding rows."""

from __future__ import annotations

import numpy as np

UNKNOWN_ROW = 0


class MovieIndex:
    """Maps raw MovieLens movie ids to embedding rows and back.

    Row ``UNKNOWN_ROW`` (0) stands for any id the model never saw; known ids take
    rows ``1..n`` in ascending id order. This matches ``keras.layers.IntegerLookup``
    with one out-of-vocabulary index, which the Keras model uses, so the Keras model
    and the numpy scorer agree on every row.

    Parameters
    ----------
    movie_ids : array-like of int
        The known movie ids, without duplicates.
    """

    def __init__(self, movie_ids) -> None:
        ids = np.asarray(movie_ids, dtype=np.int64)
        if ids.ndim != 1 or len(np.unique(ids)) != len(ids):
            raise ValueError("movie_ids must be a flat sequence without duplicates.")
        self.movie_ids = np.sort(ids)

    def __len__(self) -> int:
        return len(self.movie_ids)

    @property
    def n_rows(self) -> int:
        """Rows of an embedding table: one per known id plus the unknown row."""
        return len(self.movie_ids) + 1

    def rows(self, movie_ids) -> np.ndarray:
        """Embedding rows of raw ids; unknown ids get ``UNKNOWN_ROW``."""
        ids = np.asarray(movie_ids, dtype=np.int64)
        position = np.searchsorted(self.movie_ids, ids)
        position = np.minimum(position, len(self.movie_ids) - 1)
        known = self.movie_ids[position] == ids
        return np.where(known, position + 1, UNKNOWN_ROW).astype(np.int64)

    def ids(self, rows) -> np.ndarray:
        """Raw ids of embedding rows; ``UNKNOWN_ROW`` has no id."""
        rows = np.asarray(rows, dtype=np.int64)
        if np.any(rows == UNKNOWN_ROW) or np.any(rows > len(self.movie_ids)):
            raise ValueError(f"rows must be between 1 and {len(self.movie_ids)}.")
        return self.movie_ids[rows - 1]

    def contains(self, movie_ids) -> np.ndarray:
        return self.rows(movie_ids) != UNKNOWN_ROW
