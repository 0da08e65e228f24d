"""Read MovieLens 1M or 100K into checked, typed frames, downloading ML-1M on demand.

Both releases come out in one shape (see :class:`MovieLens`), so later stages never
need to know which one they were given: ML-100K's raw ages become ML-1M age buckets
and its occupation names become the closest ML-1M names.

Every file is checked completely before anything is returned. A file that breaks
the format raises :class:`DataError` naming the file, the line and what was
expected there.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import http.client
import io
import logging
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

__all__ = [
    "AGE_BUCKETS",
    "CACHE_ENV_VAR",
    "GENDERS",
    "GENRES",
    "ML1M_MD5",
    "ML1M_URL",
    "OCCUPATIONS",
    "DataError",
    "DownloadError",
    "MovieLens",
    "age_bucket",
    "download_movielens",
    "load_movielens",
]

logger = logging.getLogger(__name__)

ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
ML1M_MD5 = "c4d9eecfca2ab87c1945afe126590906"
CACHE_ENV_VAR = "PROFILE_REC_CACHE"

# ML-1M's age buckets, keyed by the code users.dat stores (the bucket's lowest age).
AGE_BUCKETS: dict[int, str] = {
    1: "Under 18",
    18: "18-24",
    25: "25-34",
    35: "35-44",
    45: "45-49",
    50: "50-55",
    56: "56+",
}
# ML-1M's occupations; users.dat stores the position in this tuple.
OCCUPATIONS: tuple[str, ...] = (
    "other or not specified",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
GENRES: tuple[str, ...] = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
GENDERS: tuple[str, ...] = ("F", "M")

# ML-100K names occupations in its own words; each maps to the closest ML-1M name.
# "student" is missing on purpose: it depends on the age (see _convert_ml100k_users).
_ML100K_OCCUPATIONS = {
    "administrator": "clerical/admin",
    "artist": "artist",
    "doctor": "doctor/health care",
    "educator": "academic/educator",
    "engineer": "technician/engineer",
    "entertainment": "artist",
    "executive": "executive/managerial",
    "healthcare": "doctor/health care",
    "homemaker": "homemaker",
    "lawyer": "lawyer",
    "librarian": "academic/educator",
    "marketing": "sales/marketing",
    "none": "unemployed",
    "other": "other or not specified",
    "programmer": "programmer",
    "retired": "retired",
    "salesman": "sales/marketing",
    "scientist": "scientist",
    "technician": "technician/engineer",
    "writer": "writer",
}
_MAX_RAW_AGE = 120
_INT32_MAX = np.iinfo(np.int32).max

_HOW_TO_GET_DATA = (
    "Leave out the folder (--data-dir) to download ML-1M, or download "
    "ml-1m.zip or ml-100k.zip from https://grouplens.org/datasets/movielens/ "
    "and pass the zip or the folder it extracts to (--data-dir PATH)."
)

_DOWNLOAD_TIMEOUT = 60  # seconds without data before a download gives up
_CHUNK_SIZE = 1 << 20


# Errors


class DataError(ValueError):
    """MovieLens files that are missing, damaged or not in the expected format."""


class DownloadError(DataError, OSError):
    """A MovieLens download that failed or did not match its checksum.

    It is an :class:`OSError` too, so handlers of network failures catch it.
    """


# The parsed release


@dataclass(frozen=True, eq=False, repr=False)
class MovieLens:
    """One MovieLens release, parsed and checked.

    Attributes
    ----------
    ratings : pandas.DataFrame
        One row per rating, in file order: ``user_id`` (int32), ``movie_id``
        (int32), ``rating`` (int8, 1 to 5) and ``timestamp`` (int64, seconds since
        the Unix epoch).
    users : pandas.DataFrame
        One row per user: ``user_id`` (int32), ``gender`` (``"F"`` or ``"M"``),
        ``age`` (int8, a key of :data:`AGE_BUCKETS`), ``occupation`` (one of
        :data:`OCCUPATIONS`) and ``zip_code`` (str).
    movies : pandas.DataFrame
        One row per movie: ``movie_id`` (int32), ``title`` (str, without the
        trailing year), ``year`` (Int16, NA when the title has none) and
        ``genres`` (tuple of :data:`GENRES` names, empty when the movie has none).
    name : str
        ``"ml-1m"`` or ``"ml-100k"``.
    checksum : str
        ``"sha256:<hex>"`` of the zip the data came from, or of the ratings, users
        and movies files' bytes in that order when read from a folder.
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    movies: pd.DataFrame
    name: str
    checksum: str

    def __repr__(self) -> str:
        return (
            f"MovieLens(name={self.name!r}, n_ratings={len(self.ratings)}, "
            f"n_users={len(self.users)}, n_movies={len(self.movies)}, "
            f"checksum={self.checksum!r})"
        )


def age_bucket(age: int) -> int:
    """The ML-1M age bucket of a raw age in years.

    Parameters
    ----------
    age : int
        Age in years, at least 0.

    Returns
    -------
    int
        The bucket's key in :data:`AGE_BUCKETS`: 1 under 18, 18 for 18-24, 25 for
        25-34, 35 for 35-44, 45 for 45-49, 50 for 50-55 and 56 from 56 on.

    Examples
    --------
    >>> age_bucket(17), age_bucket(30), age_bucket(70)
    (1, 25, 56)
    """
    if isinstance(age, bool) or not isinstance(age, (int, np.integer)):
        raise TypeError(f"age must be a whole number of years, got {age!r}")
    if age < 0:
        raise ValueError(f"age must be at least 0 years, got {age}")
    return int(_age_buckets(np.array([age]))[0])


def _age_buckets(ages: np.ndarray) -> np.ndarray:
    keys = np.array(list(AGE_BUCKETS))
    # Every key but "Under 18" (1) is the lowest age in its bucket.
    return keys[np.searchsorted(keys[1:], ages, side="right")]


# File formats


@dataclass(frozen=True)
class _FileFormat:
    """How one MovieLens file is laid out, for parsing it and for error messages."""

    name: str
    separator: bytes
    # Field names as the MovieLens READMEs spell them; also the raw frame's columns.
    fields: tuple[str, ...]
    integer_fields: tuple[str, ...]
    encoding: str
    # How error messages show a line's layout, when listing every field is too long.
    layout: str | None = None

    def describe_layout(self) -> str:
        if self.layout is not None:
            return self.layout
        if self.separator == b"\t":
            return ", ".join(self.fields)
        return self.separator.decode().join(self.fields)

    def describe_separator(self) -> str:
        return "tabs" if self.separator == b"\t" else repr(self.separator.decode())


_ML1M_RATINGS = _FileFormat(
    "ratings.dat",
    b"::",
    ("UserID", "MovieID", "Rating", "Timestamp"),
    ("UserID", "MovieID", "Rating", "Timestamp"),
    "ascii",
)
_ML1M_USERS = _FileFormat(
    "users.dat",
    b"::",
    ("UserID", "Gender", "Age", "Occupation", "Zip-code"),
    ("UserID", "Age", "Occupation"),
    "ascii",
)
_ML1M_MOVIES = _FileFormat(
    "movies.dat", b"::", ("MovieID", "Title", "Genres"), ("MovieID",), "latin-1"
)
_ML100K_RATINGS = _FileFormat(
    "u.data",
    b"\t",
    ("user id", "item id", "rating", "timestamp"),
    ("user id", "item id", "rating", "timestamp"),
    "ascii",
)
_ML100K_USERS = _FileFormat(
    "u.user",
    b"|",
    ("user id", "age", "gender", "occupation", "zip code"),
    ("user id", "age"),
    "ascii",
)
_ML100K_GENRE_FLAGS = ("unknown", *GENRES)
_ML100K_MOVIES = _FileFormat(
    "u.item",
    b"|",
    (
        "movie id",
        "movie title",
        "release date",
        "video release date",
        "IMDb URL",
        *_ML100K_GENRE_FLAGS,
    ),
    ("movie id", *_ML100K_GENRE_FLAGS),
    "latin-1",
    layout=(
        "movie id|movie title|release date|video release date|IMDb URL|"
        f"{len(_ML100K_GENRE_FLAGS)} genre flags"
    ),
)

# Each release's ratings, users and movies files, in the order the checksum reads them.
_RELEASES: dict[str, tuple[_FileFormat, _FileFormat, _FileFormat]] = {
    "ml-1m": (_ML1M_RATINGS, _ML1M_USERS, _ML1M_MOVIES),
    "ml-100k": (_ML100K_RATINGS, _ML100K_USERS, _ML100K_MOVIES),
}

# pandas' fast C parser only splits on one byte, so "::" becomes this control byte,
# which no MovieLens file contains.
_PLACEHOLDER = b"\x1f"
_TITLE_WITH_YEAR = re.compile(r"^(.*\S)\s+\((\d{4})\)\s*$")


# Loading


def load_movielens(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> MovieLens:
    """Read and check MovieLens 1M or 100K.

    Parameters
    ----------
    data_dir : path-like, optional
        Where the data is: a folder holding ``ratings.dat``, ``users.dat`` and
        ``movies.dat`` (ML-1M) or ``u.data``, ``u.user`` and ``u.item``
        (ML-100K), directly or in an ``ml-1m/`` or ``ml-100k/`` subfolder; or
        the release's zip, read without extracting it. ``None`` downloads ML-1M
        once with :func:`download_movielens` and reads the cached zip.
    cache_dir : path-like, optional
        Download cache, used only when ``data_dir`` is ``None``; see
        :func:`download_movielens`.

    Returns
    -------
    MovieLens
        The ratings, users and movies frames, the release name and a checksum of
        the source files.

    Raises
    ------
    DataError
        If a file is missing or breaks the format; the message names the file,
        the line and what was expected.
    DownloadError
        If ``data_dir`` is ``None`` and the download fails.

    Examples
    --------
    >>> data = load_movielens("ml-1m.zip")  # doctest: +SKIP
    >>> data.ratings.head(2)  # doctest: +SKIP
       user_id  movie_id  rating  timestamp
    0        1      1193       5  978300760
    1        1       661       3  978302109
    """
    if data_dir is None:
        # The module attributes are read at call time, so a test can point them
        # at a local server.
        data_dir = download_movielens(cache_dir, url=ML1M_URL, md5=ML1M_MD5)
    path = Path(data_dir).expanduser()

    if path.is_file():
        name, raw_files, checksum = _read_zip(path)
    else:
        name, raw_files, checksum = _read_folder(path)
    ratings, users, movies = _parse_release(name, raw_files)

    logger.info(
        "Read %s from %s: %d ratings, %d users, %d movies",
        name,
        path,
        len(ratings),
        len(users),
        len(movies),
    )
    return MovieLens(ratings, users, movies, name=name, checksum=checksum)


def _read_folder(folder: Path) -> tuple[str, dict[str, bytes], str]:
    name, release_dir = _find_release_dir(folder)
    raw_files = {}
    digest = hashlib.sha256()
    for file_format in _RELEASES[name]:
        raw = (release_dir / file_format.name).read_bytes()
        raw_files[file_format.name] = raw
        digest.update(raw)
    return name, raw_files, f"sha256:{digest.hexdigest()}"


def _find_release_dir(folder: Path) -> tuple[str, Path]:
    if not folder.exists():
        raise DataError(f"{folder} does not exist. {_HOW_TO_GET_DATA}")
    if not folder.is_dir():
        raise DataError(
            f"{folder} is neither a folder nor a MovieLens zip. {_HOW_TO_GET_DATA}"
        )
    candidates = [folder, *(folder / name for name in _RELEASES)]
    for candidate in candidates:
        for name, formats in _RELEASES.items():
            if all((candidate / f.name).is_file() for f in formats):
                return name, candidate

    # No folder is complete: report the gaps in the first one that has any file.
    for candidate in candidates:
        for name, formats in _RELEASES.items():
            expected = [f.name for f in formats]
            present = [f for f in expected if (candidate / f).is_file()]
            if present:
                missing = [f for f in expected if f not in present]
                verb = "is" if len(missing) == 1 else "are"
                raise DataError(
                    f"{_join(missing)} {verb} missing from {candidate} (found "
                    f"{_join(present)}); {name} needs {_join(expected)}. "
                    f"{_HOW_TO_GET_DATA}"
                )
    zips = sorted(p.name for p in folder.glob("ml-*.zip"))
    if zips:
        hint = f"To read {zips[0]} in there, pass the zip's path instead."
    else:
        hint = _HOW_TO_GET_DATA
    raise DataError(
        f"No MovieLens files in {folder}: expected ratings.dat, users.dat and "
        "movies.dat (ML-1M) or u.data, u.user and u.item (ML-100K), directly or "
        f"in an ml-1m/ or ml-100k/ subfolder. {hint}"
    )


def _read_zip(path: Path) -> tuple[str, dict[str, bytes], str]:
    raw_zip = path.read_bytes()
    checksum = f"sha256:{hashlib.sha256(raw_zip).hexdigest()}"
    try:
        with zipfile.ZipFile(io.BytesIO(raw_zip)) as archive:
            name, members = _find_release_members(path, archive.namelist())
            raw_files = {
                file_name: archive.read(member) for file_name, member in members
            }
    # A truncated download loses the central directory (BadZipFile); a corrupted
    # one fails its CRC (BadZipFile) or inflating (zlib.error, EOFError).
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataError(
            f"{path} is damaged or not a zip file ({exc}). Delete it and download "
            "it again; leaving out --data-dir downloads a fresh ML-1M."
        ) from exc
    return name, raw_files, checksum


def _find_release_members(
    path: Path, names: list[str]
) -> tuple[str, list[tuple[str, str]]]:
    # Official zips keep the files in one folder (ml-1m/...); accept the top level
    # too, for zips made by hand.
    folders = sorted({n.rpartition("/")[0] for n in names if n.count("/") <= 1})
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        for name, formats in _RELEASES.items():
            members = [(f.name, prefix + f.name) for f in formats]
            if all(member in names for _, member in members):
                return name, members
    raise DataError(
        f"{path} holds no MovieLens release: expected ratings.dat, users.dat and "
        "movies.dat (ML-1M) or u.data, u.user and u.item (ML-100K), at its top "
        f"level or in one folder. {_HOW_TO_GET_DATA}"
    )


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} and {items[-1]}"


# Parsing


def _parse_release(
    name: str, raw_files: dict[str, bytes]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings_format, users_format, movies_format = _RELEASES[name]
    ratings = _read_table(raw_files[ratings_format.name], ratings_format)
    users = _read_table(raw_files[users_format.name], users_format)
    movies = _read_table(raw_files[movies_format.name], movies_format)

    ratings = _convert_ratings(ratings, ratings_format)
    if name == "ml-1m":
        users = _convert_ml1m_users(users)
        movies = _convert_ml1m_movies(movies)
    else:
        users = _convert_ml100k_users(users)
        movies = _convert_ml100k_movies(movies)
    _check_references(ratings, users, movies, name)
    return ratings, users, movies


def _read_table(raw: bytes, file_format: _FileFormat) -> pd.DataFrame:
    """Split a MovieLens file into a frame of its fields, one row per line.

    Integer fields come out as int64 and the others as str; values are checked
    by the callers.
    """
    _check_bytes(raw, file_format)
    if b"\r\n" in raw:
        # Tolerate files whose line endings were converted to Windows style.
        raw = raw.replace(b"\r\n", b"\n")
    if b"\r" in raw:
        line = _line_of(raw, raw.index(b"\r"))
        raise DataError(
            f"{file_format.name}, line {line}: expected a line break, got a lone "
            "carriage return (\\r); the file was probably edited on another system"
        )
    separator = file_format.separator
    if len(separator) > 1:
        raw = raw.replace(separator, _PLACEHOLDER)
        separator = _PLACEHOLDER
    n_lines = _check_field_counts(raw, separator, file_format)

    dtypes = {
        field: "int64" if field in file_format.integer_fields else str
        for field in file_format.fields
    }
    try:
        table = pd.read_csv(
            io.BytesIO(raw),
            sep=separator.decode(),
            header=None,
            names=list(file_format.fields),
            index_col=False,
            dtype=dtypes,
            engine="c",
            encoding=file_format.encoding,
            quoting=csv.QUOTE_NONE,
            na_filter=False,
            skip_blank_lines=False,
        )
    # pandas says only that some value did not parse; find the line ourselves.
    except (ValueError, OverflowError) as exc:
        _raise_on_first_bad_integer(raw, separator, file_format)
        raise DataError(f"{file_format.name} could not be parsed: {exc}") from exc
    if len(table) != n_lines:
        raise DataError(
            f"{file_format.name} could not be parsed: found {len(table)} rows in "
            f"{n_lines} lines"
        )
    return table


def _check_bytes(raw: bytes, file_format: _FileFormat) -> None:
    name = file_format.name
    if not raw:
        raise DataError(
            f"{name} is empty; the file is damaged or was not fully extracted. "
            f"{_HOW_TO_GET_DATA}"
        )
    if raw.startswith(codecs.BOM_UTF8):
        raise DataError(
            f"{name}, line 1: starts with a UTF-8 byte order mark, which MovieLens "
            "files never have; the file was re-saved by some editor, so use the "
            "original file instead"
        )
    nul = raw.find(b"\x00")
    if nul != -1:
        raise DataError(
            f"{name}, line {_line_of(raw, nul)}: contains a NUL byte; the file is "
            "damaged, so extract or download it again"
        )
    placeholder = raw.find(_PLACEHOLDER)
    if placeholder != -1:
        raise DataError(
            f"{name}, line {_line_of(raw, placeholder)}: contains the control "
            "character 0x1F, which has no place in MovieLens files"
        )
    if raw.isascii():
        return

    offset = int(np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) >= 0x80)[0])
    line = _line_of(raw, offset)
    if file_format.encoding == "ascii":
        raise DataError(
            f"{name}, line {line}: expected ASCII text, got the byte "
            f"0x{raw[offset]:02X}"
        )
    # Latin-1 decodes any bytes, so a file re-encoded as UTF-8 would turn "Cité"
    # into "CitÃ©" without an error. Real latin-1 titles are almost never valid
    # UTF-8, which gives the conversion away.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    raise DataError(
        f"{name}, line {line}: expected latin-1 (ISO-8859-1) text, got UTF-8; the "
        "file was converted after download, so use the original file instead"
    )


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _check_field_counts(raw: bytes, separator: bytes, file_format: _FileFormat) -> int:
    """Return the number of lines, after checking that each has every field."""
    codes = np.frombuffer(raw, dtype=np.uint8)
    line_ends = np.flatnonzero(codes == ord("\n"))
    if not raw.endswith(b"\n"):
        line_ends = np.append(line_ends, len(raw))
    n_lines = len(line_ends)
    n_separators = len(file_format.fields) - 1
    separators = np.flatnonzero(codes == separator[0])

    # Fast check: with exactly n_separators per line on average, it is enough that
    # each line's share of the sorted positions starts and ends inside that line.
    if len(separators) == n_lines * n_separators:
        by_line = separators.reshape(n_lines, n_separators)
        line_starts = np.concatenate(([-1], line_ends[:-1]))
        if np.all(by_line[:, 0] > line_starts) and np.all(by_line[:, -1] < line_ends):
            return n_lines

    counts = np.bincount(np.searchsorted(line_ends, separators), minlength=n_lines)
    row = int(np.flatnonzero(counts != n_separators)[0])
    line_start = int(line_ends[row - 1]) + 1 if row else 0
    empty = line_start == line_ends[row]
    got = "an empty line" if empty else str(counts[row] + 1)
    raise DataError(
        f"{file_format.name}, line {row + 1}: expected {n_separators + 1} fields "
        f"separated by {file_format.describe_separator()} "
        f"({file_format.describe_layout()}), got {got}"
    )


def _raise_on_first_bad_integer(
    raw: bytes, separator: bytes, file_format: _FileFormat
) -> None:
    # Only reached for broken files, so a slow line-by-line scan is fine.
    positions = [file_format.fields.index(f) for f in file_format.integer_fields]
    lines = raw.decode(file_format.encoding).split("\n")
    if lines[-1] == "":
        lines.pop()  # after the final line break
    for row, line in enumerate(lines):
        values = line.split(separator.decode())
        for position in positions:
            value = values[position]
            if re.fullmatch(r"[+-]?\d+", value.strip()) is None or not (
                -(2**63) <= int(value) < 2**63
            ):
                raise DataError(
                    f"{file_format.name}, line {row + 1}: expected a whole number "
                    f"for {file_format.fields[position]}, got {value!r}"
                )


def _raise_on_first(
    bad: np.ndarray | pd.Series,
    table: pd.DataFrame,
    field: str,
    file_format: _FileFormat,
    expected: str,
) -> None:
    """Raise for the first line where ``bad`` is true, quoting ``table[field]``."""
    bad = np.asarray(bad)
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    value = table[field].iat[row]
    shown = repr(value) if isinstance(value, str) else str(value)
    raise DataError(
        f"{file_format.name}, line {row + 1}: expected {expected} for {field}, "
        f"got {shown}"
    )


def _check_ids(table: pd.DataFrame, field: str, file_format: _FileFormat) -> None:
    ids = table[field].to_numpy()
    _raise_on_first(
        (ids < 1) | (ids > _INT32_MAX),
        table,
        field,
        file_format,
        f"a positive id of at most {_INT32_MAX}",
    )


def _check_unique(table: pd.DataFrame, field: str, file_format: _FileFormat) -> None:
    duplicated = table[field].duplicated().to_numpy()
    if not duplicated.any():
        return
    row = int(np.flatnonzero(duplicated)[0])
    value = table[field].iat[row]
    first = int(np.flatnonzero(table[field].to_numpy() == value)[0])
    raise DataError(
        f"{file_format.name}, line {row + 1}: expected each {field} once, got "
        f"{value} again (first on line {first + 1})"
    )


def _convert_ratings(table: pd.DataFrame, file_format: _FileFormat) -> pd.DataFrame:
    user_field, movie_field, rating_field, time_field = file_format.fields
    _check_ids(table, user_field, file_format)
    _check_ids(table, movie_field, file_format)
    rating = table[rating_field].to_numpy()
    _raise_on_first(
        (rating < 1) | (rating > 5),
        table,
        rating_field,
        file_format,
        "a whole number of stars from 1 to 5",
    )
    _raise_on_first(
        table[time_field].to_numpy() < 0,
        table,
        time_field,
        file_format,
        "seconds since 1970, at least 0",
    )
    return pd.DataFrame(
        {
            "user_id": table[user_field].to_numpy(dtype=np.int32),
            "movie_id": table[movie_field].to_numpy(dtype=np.int32),
            "rating": rating.astype(np.int8),
            "timestamp": table[time_field].to_numpy(dtype=np.int64),
        }
    )


def _convert_ml1m_users(table: pd.DataFrame) -> pd.DataFrame:
    file_format = _ML1M_USERS
    _check_ids(table, "UserID", file_format)
    _check_unique(table, "UserID", file_format)
    _check_gender(table, "Gender", file_format)
    age = table["Age"].to_numpy()
    _raise_on_first(
        ~np.isin(age, list(AGE_BUCKETS)),
        table,
        "Age",
        file_format,
        f"an age bucket ({', '.join(map(str, AGE_BUCKETS))})",
    )
    occupation = table["Occupation"].to_numpy()
    _raise_on_first(
        (occupation < 0) | (occupation >= len(OCCUPATIONS)),
        table,
        "Occupation",
        file_format,
        f"an occupation code from 0 to {len(OCCUPATIONS) - 1}",
    )
    return _users_frame(
        table["UserID"],
        table["Gender"],
        age,
        np.asarray(OCCUPATIONS, dtype=object)[occupation],
        table["Zip-code"],
    )


def _convert_ml100k_users(table: pd.DataFrame) -> pd.DataFrame:
    file_format = _ML100K_USERS
    _check_ids(table, "user id", file_format)
    _check_unique(table, "user id", file_format)
    raw_age = table["age"].to_numpy()
    _raise_on_first(
        (raw_age < 1) | (raw_age > _MAX_RAW_AGE),
        table,
        "age",
        file_format,
        f"an age in years from 1 to {_MAX_RAW_AGE}",
    )
    _check_gender(table, "gender", file_format)
    names = table["occupation"]
    known = names.isin([*_ML100K_OCCUPATIONS, "student"])
    _raise_on_first(
        ~known,
        table,
        "occupation",
        file_format,
        f"one of the ML-100K occupations ({', '.join(sorted(_ML100K_OCCUPATIONS))}, "
        "student)",
    )
    occupation = names.map(_ML100K_OCCUPATIONS).to_numpy(dtype=object)
    is_student = (names == "student").to_numpy()
    occupation[is_student & (raw_age < 18)] = "K-12 student"
    occupation[is_student & (raw_age >= 18)] = "college/grad student"
    return _users_frame(
        table["user id"],
        table["gender"],
        _age_buckets(raw_age),
        occupation,
        table["zip code"],
    )


def _check_gender(table: pd.DataFrame, field: str, file_format: _FileFormat) -> None:
    _raise_on_first(
        ~table[field].isin(GENDERS), table, field, file_format, "'F' or 'M'"
    )


def _users_frame(
    user_id: pd.Series,
    gender: pd.Series,
    age: np.ndarray,
    occupation: np.ndarray,
    zip_code: pd.Series,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": user_id.to_numpy(dtype=np.int32),
            "gender": pd.Series(gender.to_numpy(), dtype="str"),
            "age": np.asarray(age, dtype=np.int8),
            "occupation": pd.Series(occupation, dtype="str"),
            "zip_code": pd.Series(zip_code.to_numpy(), dtype="str"),
        }
    )


def _convert_ml1m_movies(table: pd.DataFrame) -> pd.DataFrame:
    file_format = _ML1M_MOVIES
    _check_ids(table, "MovieID", file_format)
    _check_unique(table, "MovieID", file_format)
    known = set(GENRES)
    genres = []
    for row, text in enumerate(table["Genres"]):
        names = tuple(text.split("|")) if text else ()
        unknown = [name for name in names if name not in known]
        if unknown:
            raise DataError(
                f"{file_format.name}, line {row + 1}: expected genres from "
                f"{', '.join(GENRES)} separated by '|', got {unknown[0]!r}"
            )
        genres.append(names)
    return _movies_frame(table["MovieID"], table["Title"], genres)


def _convert_ml100k_movies(table: pd.DataFrame) -> pd.DataFrame:
    file_format = _ML100K_MOVIES
    _check_ids(table, "movie id", file_format)
    _check_unique(table, "movie id", file_format)
    flags = table[list(_ML100K_GENRE_FLAGS)].to_numpy()
    bad = (flags != 0) & (flags != 1)
    if bad.any():
        # The first bad line's first bad flag is also the first bad one in its column.
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        column = int(np.flatnonzero(bad[row])[0])
        field = _ML100K_GENRE_FLAGS[column]
        _raise_on_first(bad[:, column], table, field, file_format, "0 or 1")
    # The first flag, "unknown", is not a genre; a movie with only it has none.
    genre_names = np.asarray(GENRES, dtype=object)
    genres = [tuple(genre_names[row.astype(bool)]) for row in flags[:, 1:]]
    return _movies_frame(table["movie id"], table["movie title"], genres)


def _movies_frame(
    movie_id: pd.Series, full_title: pd.Series, genres: list[tuple[str, ...]]
) -> pd.DataFrame:
    title, year = _split_titles(full_title)
    return pd.DataFrame(
        {
            "movie_id": movie_id.to_numpy(dtype=np.int32),
            "title": title,
            "year": year,
            "genres": pd.Series(genres, dtype=object),
        }
    )


def _split_titles(full_title: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split "Title (Year)" into the title and the year, NA where there is none."""
    full_title = pd.Series(full_title.to_numpy(), dtype="str")
    parts = full_title.str.extract(_TITLE_WITH_YEAR)
    has_year = parts[1].notna().to_numpy()
    title = full_title.where(~has_year, parts[0])
    year = pd.to_numeric(parts[1]).astype("Int16")
    return title.astype("str"), year


def _check_references(
    ratings: pd.DataFrame, users: pd.DataFrame, movies: pd.DataFrame, name: str
) -> None:
    ratings_format, users_format, movies_format = _RELEASES[name]
    user_field, movie_field = ratings_format.fields[:2]
    raw_ratings = ratings.rename(
        columns={"user_id": user_field, "movie_id": movie_field}
    )
    _raise_on_first(
        ~ratings["user_id"].isin(users["user_id"]),
        raw_ratings,
        user_field,
        ratings_format,
        f"a user listed in {users_format.name}",
    )
    _raise_on_first(
        ~ratings["movie_id"].isin(movies["movie_id"]),
        raw_ratings,
        movie_field,
        ratings_format,
        f"a movie listed in {movies_format.name}",
    )
    # MovieLens only lists users who rated something; a user without ratings
    # means the files come from different releases or samples.
    rated = users["user_id"].isin(ratings["user_id"])
    raw_users = users.rename(columns={"user_id": users_format.fields[0]})
    _raise_on_first(
        ~rated,
        raw_users,
        users_format.fields[0],
        users_format,
        f"a user with at least one rating in {ratings_format.name}",
    )


# Downloading


def download_movielens(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    url: str = ML1M_URL,
    md5: str | None = ML1M_MD5,
    progress: bool = True,
) -> Path:
    """Download a MovieLens zip once and return its path in the cache.

    A cached copy is checked against ``md5`` and downloaded again if it does not
    match. The download streams into a temporary file beside the final one and
    takes the final name only once its checksum matches, so an interrupted or
    failed download never leaves a file that looks complete.

    Parameters
    ----------
    cache_dir : path-like, optional
        Folder for the zip. Defaults to the ``PROFILE_REC_CACHE`` environment
        variable, else ``~/.cache/profile-rec``.
    url : str, default=ML1M_URL
        Where to download from; the file keeps the URL's file name.
    md5 : str or None, default=ML1M_MD5
        Expected MD5 of the file, as published by GroupLens; ``None`` skips the
        check.
    progress : bool, default=True
        Show a progress bar on stderr while downloading.

    Returns
    -------
    pathlib.Path
        The cached zip, ready for :func:`load_movielens`.

    Raises
    ------
    DownloadError
        If the server cannot be reached, answers with an HTTP error, stops early,
        or sends a file whose MD5 differs from ``md5``.
    """
    cache = _resolve_cache_dir(cache_dir)
    file_name = Path(urllib.parse.urlparse(url).path).name
    if not file_name:
        raise ValueError(f"url must end with a file name, got {url!r}")
    target = cache / file_name

    if target.is_file():
        if md5 is None or _md5_of_file(target) == md5.lower():
            logger.info("Using cached %s", target)
            return target
        logger.warning(
            "Cached %s does not match md5 %s (damaged or replaced); downloading it "
            "again",
            target,
            md5,
        )
        target.unlink()

    cache.mkdir(parents=True, exist_ok=True)
    logger.info("Downloading %s to %s", url, target)
    _download(url, target, md5=md5, progress=progress)
    return target


def _resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache/profile-rec"
    return Path(cache_dir).expanduser()


def _md5_of_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, target: Path, *, md5: str | None, progress: bool) -> None:
    """Stream ``url`` into ``target`` through a temporary file; see the caller."""
    fd, temporary_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    temporary = Path(temporary_name)
    try:
        with os.fdopen(fd, "wb") as file:
            actual_md5 = _stream(url, file, target.name, progress=progress)
        if md5 is not None and actual_md5 != md5.lower():
            raise DownloadError(
                f"Checksum mismatch for {url}: expected md5 {md5}, got {actual_md5}. "
                f"The download was discarded, so nothing was saved in "
                f"{target.parent}. Try again; if it keeps failing, the file on the "
                "server has changed."
            )
        os.replace(temporary, target)
    finally:
        # Whatever went wrong, including Ctrl-C, leaves no partial file behind.
        temporary.unlink(missing_ok=True)


def _stream(url: str, file: io.BufferedWriter, label: str, *, progress: bool) -> str:
    """Write the body of ``url`` to ``file`` and return its MD5."""
    request = urllib.request.Request(url, headers={"User-Agent": "profile-rec"})
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    hint = (
        "or download ml-1m.zip by hand and pass it with --data-dir PATH "
        "(load_movielens(PATH) in Python)."
    )
    try:
        with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT) as response:
            length = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=length,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"Downloading {label}",
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK_SIZE):
                    file.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    # The server answered, but with an error status such as 404.
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the error response and its socket
        raise DownloadError(
            f"Could not download {url}: the server answered HTTP {exc.code} "
            f"{exc.reason}. Check the URL, {hint}"
        ) from exc
    # No answer at all: DNS failure, refused connection, proxy trouble.
    except urllib.error.URLError as exc:
        raise DownloadError(
            f"Could not download {url}: {exc.reason}. Check the internet connection "
            f"and proxy settings, {hint}"
        ) from exc
    # The connection stalled or broke halfway, or the disk is full.
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(
            f"Could not download {url}: failed after {received} bytes ({exc!r}). "
            f"Try again, {hint}"
        ) from exc
    if length is not None and received != length:
        raise DownloadError(
            f"Could not download {url}: the connection closed after {received} of "
            f"{length} bytes. Try again, {hint}"
        )
    return digest.hexdigest()
