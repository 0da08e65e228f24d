import hashlib
import http.server
import io
import re
import socket
import threading
import zipfile
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from profile_rec import data
from profile_rec.data import (
    AGE_BUCKETS,
    GENDERS,
    GENRES,
    OCCUPATIONS,
    DataError,
    DownloadError,
    age_bucket,
    download_movielens,
    load_movielens,
)
from profile_rec.synthetic import write_movielens_1m, write_movielens_100k

# A hand-written ML-1M release. Movie 40 has no rating, movie 50 neither a year
# nor a genre; the second title is latin-1 with a comma, parentheses and an accent.
ML1M_FILES = {
    "ratings.dat": [
        "1::10::5::978300760",
        "1::20::3::978302109",
        "2::10::4::978301968",
        "3::30::1::978824291",
        "2::20::2::978300275",
    ],
    "users.dat": [
        "1::F::1::10::48067",
        "2::M::56::16::70072",
        "3::M::25::15::55117-2911",
    ],
    "movies.dat": [
        "10::Toy Story (1995)::Animation|Children's|Comedy",
        "20::City of Lost Children, The (Cité des enfants perdus, La) (1995)"
        "::Adventure|Sci-Fi",
        "30::Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb "
        "(1963)::Sci-Fi|War",
        '40::"Great Performances" Cats (1998)::Musical',
        "50::Untitled::",
    ],
}

# A hand-written ML-100K release: a 17-year-old and an 18-year-old student, a
# salesman of 30 and a 56-year-old with no occupation.
ML100K_FILES = {
    "u.data": [
        "1\t10\t5\t881250949",
        "2\t20\t3\t891717742",
        "3\t10\t1\t878887116",
        "4\t30\t4\t880606923",
        "1\t20\t2\t886397596",
    ],
    "u.user": [
        "1|17|M|student|85711",
        "2|30|F|salesman|94043",
        "3|18|M|student|32067",
        "4|56|F|none|T8H1N",
    ],
    "u.item": [
        "10|Toy Story (1995)|01-Jan-1995||"
        "http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
        "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0",
        "20|Misérables, Les (1995)|01-Jan-1995||"
        "http://us.imdb.com/M/title-exact?Mis%E9rables,%20Les%20(1995)|"
        "0|0|0|0|0|0|0|0|1|0|0|0|1|0|0|0|0|0|0",
        "30|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
    ],
}


def write_release(folder, files, **changes):
    """Write ``files`` (name -> lines) as latin-1, with lines replaced per ``changes``.

    ``changes`` maps a file name (dots as underscores) to {line number: new text}.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        lines = list(lines)
        for number, text in changes.get(name.replace(".", "_"), {}).items():
            lines[number - 1] = text
        (folder / name).write_bytes(
            "".join(f"{line}\n" for line in lines).encode("latin-1")
        )
    return folder


def raw_bytes(folder, names):
    return b"".join((folder / name).read_bytes() for name in names)


# Constants and age buckets


def test_constants_follow_the_ml1m_readme():
    assert list(AGE_BUCKETS) == [1, 18, 25, 35, 45, 50, 56]
    assert AGE_BUCKETS[1] == "Under 18" and AGE_BUCKETS[56] == "56+"
    assert len(OCCUPATIONS) == 21
    assert OCCUPATIONS[0] == "other or not specified"
    assert OCCUPATIONS[10] == "K-12 student" and OCCUPATIONS[20] == "writer"
    assert len(GENRES) == 18 and GENRES[3] == "Children's" and GENRES[-1] == "Western"
    assert GENDERS == ("F", "M")


@pytest.mark.parametrize(
    "age, bucket",
    [
        (0, 1), (17, 1), (18, 18), (24, 18), (25, 25), (34, 25), (35, 35),
        (44, 35), (45, 45), (49, 45), (50, 50), (55, 50), (56, 56), (99, 56),
    ],
)  # fmt: skip
def test_age_bucket(age, bucket):
    assert age_bucket(age) == bucket
    assert age_bucket(np.int64(age)) == bucket


def test_age_bucket_rejects_negative_and_fractional_ages():
    with pytest.raises(ValueError, match="at least 0"):
        age_bucket(-1)
    with pytest.raises(TypeError, match="whole number"):
        age_bucket(30.5)


# Parsing ML-1M


def test_load_ml1m_parses_every_field(tmp_path):
    folder = write_release(tmp_path, ML1M_FILES)

    movielens = load_movielens(folder)

    assert movielens.name == "ml-1m"
    expected_ratings = pd.DataFrame(
        {
            "user_id": np.array([1, 1, 2, 3, 2], dtype=np.int32),
            "movie_id": np.array([10, 20, 10, 30, 20], dtype=np.int32),
            "rating": np.array([5, 3, 4, 1, 2], dtype=np.int8),
            "timestamp": np.array(
                [978300760, 978302109, 978301968, 978824291, 978300275]
            ),
        }
    )
    assert_frame_equal(movielens.ratings, expected_ratings)
    expected_users = pd.DataFrame(
        {
            "user_id": np.array([1, 2, 3], dtype=np.int32),
            "gender": pd.Series(["F", "M", "M"], dtype="str"),
            "age": np.array([1, 56, 25], dtype=np.int8),
            "occupation": pd.Series(
                ["K-12 student", "self-employed", "scientist"], dtype="str"
            ),
            "zip_code": pd.Series(["48067", "70072", "55117-2911"], dtype="str"),
        }
    )
    assert_frame_equal(movielens.users, expected_users)
    expected_movies = pd.DataFrame(
        {
            "movie_id": np.array([10, 20, 30, 40, 50], dtype=np.int32),
            "title": pd.Series(
                [
                    "Toy Story",
                    "City of Lost Children, The (Cité des enfants perdus, La)",
                    "Dr. Strangelove or: How I Learned to Stop Worrying and Love "
                    "the Bomb",
                    '"Great Performances" Cats',
                    "Untitled",
                ],
                dtype="str",
            ),
            "year": pd.array([1995, 1995, 1963, 1998, None], dtype="Int16"),
            "genres": pd.Series(
                [
                    ("Animation", "Children's", "Comedy"),
                    ("Adventure", "Sci-Fi"),
                    ("Sci-Fi", "War"),
                    ("Musical",),
                    (),
                ],
                dtype=object,
            ),
        }
    )
    assert_frame_equal(movielens.movies, expected_movies)
    source = raw_bytes(folder, ["ratings.dat", "users.dat", "movies.dat"])
    assert movielens.checksum == f"sha256:{hashlib.sha256(source).hexdigest()}"


TITLES = {
    "plain": ("Toy Story (1995)", "Toy Story", 1995),
    "alternative-title": (
        "Shall We Dance? (Shall We Dansu?) (1996)",
        "Shall We Dance? (Shall We Dansu?)",
        1996,
    ),
    "numeric-title": ("1900 (1976)", "1900", 1976),
    "trailing-space": ("Seven (Se7en) (1995) ", "Seven (Se7en)", 1995),
    "no-year": ("unknown", "unknown", None),
    "short-year": ("Heat (199)", "Heat (199)", None),
    "year-not-last": (
        "Land Before Time III (1995) (V)",
        "Land Before Time III (1995) (V)",
        None,
    ),
}


@pytest.mark.parametrize("full_title, title, year", TITLES.values(), ids=TITLES.keys())
def test_year_comes_from_the_end_of_the_title(tmp_path, full_title, title, year):
    folder = write_release(tmp_path, ML1M_FILES, movies_dat={5: f"50::{full_title}::"})

    movies = load_movielens(folder).movies.set_index("movie_id")

    assert movies.loc[50, "title"] == title
    if year is None:
        assert movies.loc[50, "year"] is pd.NA
    else:
        assert movies.loc[50, "year"] == year


def test_ml1m_in_a_subfolder_or_with_windows_line_endings(tmp_path):
    expected = load_movielens(write_release(tmp_path / "plain", ML1M_FILES))
    write_release(tmp_path / "outer" / "ml-1m", ML1M_FILES)
    crlf = write_release(tmp_path / "crlf", ML1M_FILES)
    for name in ML1M_FILES:
        path = crlf / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))

    for movielens in load_movielens(tmp_path / "outer"), load_movielens(crlf):
        assert_frame_equal(movielens.ratings, expected.ratings)
        assert_frame_equal(movielens.users, expected.users)
        assert_frame_equal(movielens.movies, expected.movies)


# Parsing ML-100K


def test_load_ml100k_maps_ages_and_occupations_to_ml1m(tmp_path):
    folder = write_release(tmp_path, ML100K_FILES)

    movielens = load_movielens(folder)

    assert movielens.name == "ml-100k"
    expected_ratings = pd.DataFrame(
        {
            "user_id": np.array([1, 2, 3, 4, 1], dtype=np.int32),
            "movie_id": np.array([10, 20, 10, 30, 20], dtype=np.int32),
            "rating": np.array([5, 3, 1, 4, 2], dtype=np.int8),
            "timestamp": np.array(
                [881250949, 891717742, 878887116, 880606923, 886397596]
            ),
        }
    )
    assert_frame_equal(movielens.ratings, expected_ratings)
    expected_users = pd.DataFrame(
        {
            "user_id": np.array([1, 2, 3, 4], dtype=np.int32),
            "gender": pd.Series(["M", "F", "M", "F"], dtype="str"),
            "age": np.array([1, 25, 18, 56], dtype=np.int8),
            "occupation": pd.Series(
                [
                    "K-12 student",
                    "sales/marketing",
                    "college/grad student",
                    "unemployed",
                ],
                dtype="str",
            ),
            "zip_code": pd.Series(["85711", "94043", "32067", "T8H1N"], dtype="str"),
        }
    )
    assert_frame_equal(movielens.users, expected_users)
    expected_movies = pd.DataFrame(
        {
            "movie_id": np.array([10, 20, 30], dtype=np.int32),
            "title": pd.Series(
                ["Toy Story", "Misérables, Les", "unknown"], dtype="str"
            ),
            "year": pd.array([1995, 1995, None], dtype="Int16"),
            # The "unknown" flag is not a genre.
            "genres": pd.Series(
                [("Animation", "Children's", "Comedy"), ("Drama", "Musical"), ()],
                dtype=object,
            ),
        }
    )
    assert_frame_equal(movielens.movies, expected_movies)
    source = raw_bytes(folder, ["u.data", "u.user", "u.item"])
    assert movielens.checksum == f"sha256:{hashlib.sha256(source).hexdigest()}"


@pytest.mark.parametrize(
    "occupation, age, expected",
    [
        ("administrator", 40, "clerical/admin"),
        ("entertainment", 40, "artist"),
        ("healthcare", 40, "doctor/health care"),
        ("librarian", 40, "academic/educator"),
        ("marketing", 40, "sales/marketing"),
        ("other", 40, "other or not specified"),
        ("student", 12, "K-12 student"),
        ("student", 45, "college/grad student"),
    ],
)
def test_ml100k_occupation_names(tmp_path, occupation, age, expected):
    folder = write_release(
        tmp_path, ML100K_FILES, u_user={2: f"2|{age}|F|{occupation}|94043"}
    )

    users = load_movielens(folder).users

    assert users.loc[1, "occupation"] == expected
    assert users.loc[1, "age"] == age_bucket(age)


# Broken files: the message names the file and the line


ML1M_BREAKAGES = {
    "short-line": (
        {"ratings_dat": {3: "2::10::4"}},
        "ratings.dat, line 3: expected 4 fields separated by '::' "
        "(UserID::MovieID::Rating::Timestamp), got 3",
    ),
    "long-first-line": (
        {"ratings_dat": {1: "1::10::5::978300760::7"}},
        "ratings.dat, line 1: expected 4 fields separated by '::' "
        "(UserID::MovieID::Rating::Timestamp), got 5",
    ),
    "single-colon": (
        {"ratings_dat": {4: "3::30:1::978824291"}},
        "ratings.dat, line 4: expected 4 fields",
    ),
    "empty-line": (
        {"ratings_dat": {2: "\n1::20::3::978302109"}},
        "ratings.dat, line 2: expected 4 fields separated by '::' "
        "(UserID::MovieID::Rating::Timestamp), got an empty line",
    ),
    "non-numeric-id": (
        {"ratings_dat": {4: "3::x30::1::978824291"}},
        "ratings.dat, line 4: expected a whole number for MovieID, got 'x30'",
    ),
    "huge-id": (
        {"ratings_dat": {2: "1::99999999999999999999::3::978302109"}},
        "ratings.dat, line 2: expected a whole number for MovieID",
    ),
    "id-beyond-int32": (
        {"ratings_dat": {2: "1::3000000000::3::978302109"}},
        "ratings.dat, line 2: expected a positive id of at most 2147483647 for "
        "MovieID, got 3000000000",
    ),
    "zero-id": (
        {"users_dat": {2: "0::M::56::16::70072"}},
        "users.dat, line 2: expected a positive id",
    ),
    "rating-above-5": (
        {"ratings_dat": {2: "1::20::6::978302109"}},
        "ratings.dat, line 2: expected a whole number of stars from 1 to 5 for "
        "Rating, got 6",
    ),
    "rating-0": (
        {"ratings_dat": {5: "2::20::0::978300275"}},
        "ratings.dat, line 5: expected a whole number of stars from 1 to 5",
    ),
    "negative-timestamp": (
        {"ratings_dat": {5: "2::20::2::-5"}},
        "ratings.dat, line 5: expected seconds since 1970, at least 0 for "
        "Timestamp, got -5",
    ),
    "unknown-movie": (
        {"ratings_dat": {5: "2::99::2::978300275"}},
        "ratings.dat, line 5: expected a movie listed in movies.dat for MovieID, "
        "got 99",
    ),
    "unknown-user": (
        {"ratings_dat": {3: "7::10::4::978301968"}},
        "ratings.dat, line 3: expected a user listed in users.dat for UserID, got 7",
    ),
    "non-ascii-rating": (
        {"ratings_dat": {3: "2::10::4::97830196é"}},
        "ratings.dat, line 3: expected ASCII text, got the byte 0xE9",
    ),
    "nul-byte": (
        {"movies_dat": {3: "30::Dr. Strangelove\x00::Sci-Fi|War"}},
        "movies.dat, line 3: contains a NUL byte",
    ),
    "bad-gender": (
        {"users_dat": {2: "2::X::56::16::70072"}},
        "users.dat, line 2: expected 'F' or 'M' for Gender, got 'X'",
    ),
    "age-not-a-bucket": (
        {"users_dat": {3: "3::M::30::15::55117-2911"}},
        "users.dat, line 3: expected an age bucket (1, 18, 25, 35, 45, 50, 56) for "
        "Age, got 30",
    ),
    "occupation-out-of-range": (
        {"users_dat": {1: "1::F::1::21::48067"}},
        "users.dat, line 1: expected an occupation code from 0 to 20 for "
        "Occupation, got 21",
    ),
    "duplicate-user": (
        {"users_dat": {3: "2::M::25::15::55117"}},
        "users.dat, line 3: expected each UserID once, got 2 again (first on line 2)",
    ),
    "user-without-ratings": (
        {"users_dat": {3: "3::M::25::15::55117\n4::F::35::1::10001"}},
        "users.dat, line 4: expected a user with at least one rating in ratings.dat "
        "for UserID, got 4",
    ),
    "duplicate-movie": (
        {"movies_dat": {4: "10::Toy Story 2 (1999)::Comedy"}},
        "movies.dat, line 4: expected each MovieID once, got 10 again (first on "
        "line 1)",
    ),
    "unknown-genre": (
        {"movies_dat": {2: "20::Cité (1995)::Adventure|SciFi"}},
        "movies.dat, line 2: expected genres from Action, Adventure",
    ),
    "missing-genres-field": (
        {"movies_dat": {4: '40::"Great Performances" Cats (1998)'}},
        "movies.dat, line 4: expected 3 fields separated by '::' "
        "(MovieID::Title::Genres), got 2",
    ),
    "lone-carriage-return": (
        {"movies_dat": {2: "20::Cité\r(1995)::Adventure"}},
        "movies.dat, line 2: expected a line break, got a lone carriage return",
    ),
}


@pytest.mark.parametrize(
    "changes, message", ML1M_BREAKAGES.values(), ids=ML1M_BREAKAGES.keys()
)
def test_broken_ml1m_file_names_the_file_and_line(tmp_path, changes, message):
    folder = write_release(tmp_path, ML1M_FILES, **changes)

    with pytest.raises(DataError, match=re.escape(message)):
        load_movielens(folder)


ML100K_BREAKAGES = {
    "short-line": (
        {"u_data": {2: "2\t20\t3"}},
        "u.data, line 2: expected 4 fields separated by tabs (user id, item id, "
        "rating, timestamp), got 3",
    ),
    "unknown-occupation": (
        {"u_user": {2: "2|30|F|astronaut|94043"}},
        "u.user, line 2: expected one of the ML-100K occupations (administrator, ",
    ),
    "age-0": (
        {"u_user": {3: "3|0|M|student|32067"}},
        "u.user, line 3: expected an age in years from 1 to 120 for age, got 0",
    ),
    "gender-lowercase": (
        {"u_user": {4: "4|56|f|none|T8H1N"}},
        "u.user, line 4: expected 'F' or 'M' for gender, got 'f'",
    ),
    "genre-flag-2": (
        {
            "u_item": {
                2: "20|Misérables, Les (1995)|01-Jan-1995||x|"
                "0|0|0|0|0|0|0|0|1|0|0|0|2|0|0|0|0|0|0"
            }
        },
        "u.item, line 2: expected 0 or 1 for Musical, got 2",
    ),
    "missing-flag": (
        {"u_item": {3: "30|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0"}},
        "u.item, line 3: expected 24 fields separated by '|' (movie id|movie "
        "title|release date|video release date|IMDb URL|19 genre flags), got 23",
    ),
    "unknown-item": (
        {"u_data": {4: "4\t31\t4\t880606923"}},
        "u.data, line 4: expected a movie listed in u.item for item id, got 31",
    ),
}


@pytest.mark.parametrize(
    "changes, message", ML100K_BREAKAGES.values(), ids=ML100K_BREAKAGES.keys()
)
def test_broken_ml100k_file_names_the_file_and_line(tmp_path, changes, message):
    folder = write_release(tmp_path, ML100K_FILES, **changes)

    with pytest.raises(DataError, match=re.escape(message)):
        load_movielens(folder)


def test_byte_order_mark_is_rejected(tmp_path):
    folder = write_release(tmp_path, ML1M_FILES)
    movies = folder / "movies.dat"
    movies.write_bytes(b"\xef\xbb\xbf" + movies.read_bytes())

    with pytest.raises(DataError, match=r"movies\.dat, line 1: .*byte order mark"):
        load_movielens(folder)


def test_movies_converted_to_utf8_are_rejected(tmp_path):
    folder = write_release(tmp_path, ML1M_FILES)
    movies = folder / "movies.dat"
    movies.write_bytes(movies.read_bytes().decode("latin-1").encode("utf-8"))

    with pytest.raises(DataError, match=r"movies\.dat, line 2: expected latin-1"):
        load_movielens(folder)


def test_empty_file_is_rejected(tmp_path):
    folder = write_release(tmp_path, ML1M_FILES)
    (folder / "users.dat").write_bytes(b"")

    with pytest.raises(DataError, match=r"users\.dat is empty"):
        load_movielens(folder)


def test_error_deep_in_a_generated_file_points_at_its_line(tmp_path, ml1m_dir):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    for name in ML1M_FILES:
        (folder / name).write_bytes((ml1m_dir / name).read_bytes())
    lines = (folder / "ratings.dat").read_bytes().split(b"\n")
    lines[1234] = lines[1234] + b"::0"
    (folder / "ratings.dat").write_bytes(b"\n".join(lines))

    with pytest.raises(DataError, match=r"ratings\.dat, line 1235: .* got 5"):
        load_movielens(folder)


# Finding the files


def test_missing_file_names_the_file_and_folder(tmp_path):
    folder = write_release(tmp_path, ML1M_FILES)
    (folder / "users.dat").unlink()

    with pytest.raises(DataError) as excinfo:
        load_movielens(folder)

    message = str(excinfo.value)
    assert f"users.dat is missing from {folder}" in message
    assert "Leave out the folder (--data-dir) to download ML-1M" in message


def test_folder_without_movielens_files(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing to see")

    with pytest.raises(DataError, match="No MovieLens files in"):
        load_movielens(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_movielens(tmp_path / "nowhere")
    (tmp_path / "ml-1m.zip").write_bytes(b"")
    with pytest.raises(DataError, match="To read ml-1m.zip in there, pass the zip"):
        load_movielens(tmp_path)


@pytest.mark.parametrize("prefix", ["ml-1m/", ""], ids=["in-folder", "top-level"])
def test_zip_gives_the_same_frames_as_the_folder(tmp_path, prefix):
    folder = write_release(tmp_path / "ml-1m", ML1M_FILES)
    zip_path = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ML1M_FILES:
            archive.write(folder / name, prefix + name)

    from_folder = load_movielens(folder)
    from_zip = load_movielens(zip_path)

    assert from_zip.name == "ml-1m"
    assert_frame_equal(from_zip.ratings, from_folder.ratings)
    assert_frame_equal(from_zip.users, from_folder.users)
    assert_frame_equal(from_zip.movies, from_folder.movies)
    zip_digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert from_zip.checksum == f"sha256:{zip_digest}"


def test_truncated_zip_is_reported_as_damaged(tmp_path, ml1m_zip):
    damaged = tmp_path / "ml-1m.zip"
    damaged.write_bytes(ml1m_zip.read_bytes()[:-100])

    with pytest.raises(DataError, match=r"ml-1m\.zip is damaged.*download it again"):
        load_movielens(damaged)


def test_corrupted_zip_member_is_reported_as_damaged(tmp_path):
    folder = write_release(tmp_path / "ml-1m", ML1M_FILES)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in ML1M_FILES:
            archive.write(folder / name, f"ml-1m/{name}")
    corrupted = buffer.getvalue().replace(b"978300760", b"978300761")
    zip_path = tmp_path / "ml-1m.zip"
    zip_path.write_bytes(corrupted)

    with pytest.raises(DataError, match="is damaged .*CRC"):
        load_movielens(zip_path)


def test_zip_without_movielens_files(tmp_path):
    zip_path = tmp_path / "other.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("ml-1m/ratings.dat", "1::10::5::978300760\n")

    with pytest.raises(DataError, match="holds no MovieLens release"):
        load_movielens(zip_path)


# Generated data


def test_generated_ml1m_fixture(ml1m_dir, ml1m_zip):
    movielens = load_movielens(ml1m_dir)

    assert (len(movielens.users), len(movielens.movies)) == (60, 40)
    assert len(movielens.ratings) == 2_000
    assert movielens.ratings.dtypes.to_dict() == {
        "user_id": np.int32,
        "movie_id": np.int32,
        "rating": np.int8,
        "timestamp": np.int64,
    }
    assert movielens.ratings["movie_id"].nunique() == 38
    assert not movielens.ratings.duplicated(["user_id", "movie_id"]).any()
    # 2,000 ratings leave room for ML-1M's 20 per user.
    assert movielens.ratings.groupby("user_id").size().min() >= 20
    assert set(movielens.ratings["rating"]) == {1, 2, 3, 4, 5}
    assert set(movielens.users["age"]) == set(AGE_BUCKETS)
    assert set(movielens.users["gender"]) == set(GENDERS)
    assert movielens.movies["title"].str.contains("[^\x00-\x7f]").any()
    assert (movielens.movies["genres"].map(len) > 1).any()
    # Movie ids have gaps, as in ML-1M.
    assert movielens.movies["movie_id"].max() > 40

    from_zip = load_movielens(ml1m_zip)
    assert_frame_equal(from_zip.ratings, movielens.ratings)
    assert_frame_equal(from_zip.movies, movielens.movies)


def test_generated_ml100k_fixture(ml100k_dir):
    movielens = load_movielens(ml100k_dir)

    assert movielens.name == "ml-100k"
    assert (len(movielens.users), len(movielens.movies)) == (50, 60)
    assert len(movielens.ratings) == 1_500
    assert movielens.ratings["movie_id"].nunique() == 57
    unknown = movielens.movies[movielens.movies["title"] == "unknown"]
    assert len(unknown) == 1
    assert unknown["genres"].item() == () and unknown["year"].isna().item()
    assert movielens.movies["movie_id"].tolist() == list(range(1, 61))


def test_generated_ratings_follow_demographic_taste(tmp_path):
    # Women rate romances higher than men do, and older users like westerns more.
    movielens = load_movielens(
        write_movielens_1m(tmp_path, n_users=400, n_movies=200, n_ratings=20_000)
    )
    ratings = movielens.ratings.merge(movielens.users, on="user_id").merge(
        movielens.movies, on="movie_id"
    )
    ratings = ratings.explode("genres")
    romance = ratings[ratings["genres"] == "Romance"].groupby("gender")["rating"]
    assert romance.mean()["F"] > romance.mean()["M"] + 0.2
    western = ratings[ratings["genres"] == "Western"].groupby("age")["rating"]
    assert western.mean()[56] > western.mean()[18] + 0.2


def test_generation_is_reproducible(tmp_path):
    sizes = dict(n_users=10, n_movies=8, n_ratings=50)
    first = write_movielens_100k(tmp_path / "a", **sizes, seed=3)
    second = write_movielens_100k(tmp_path / "b", **sizes, seed=3)
    other = write_movielens_100k(tmp_path / "c", **sizes, seed=4)

    for name in ("u.data", "u.user", "u.item"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "u.data").read_bytes() != (other / "u.data").read_bytes()


@pytest.mark.parametrize(
    "sizes",
    [
        dict(n_users=10, n_movies=8, n_ratings=9),
        dict(n_users=10, n_movies=8, n_ratings=71),
        dict(n_users=0, n_movies=8, n_ratings=0),
    ],
    ids=["fewer-ratings-than-users", "more-than-every-pair", "no-users"],
)
def test_generator_rejects_impossible_sizes(tmp_path, sizes):
    with pytest.raises(ValueError, match="n_"):
        write_movielens_1m(tmp_path, **sizes)


# Downloading


@pytest.fixture
def file_server(monkeypatch):
    """A local HTTP server for downloads: set ``routes[path] = body`` to serve.

    It listens on 127.0.0.1 on a free port, logs each request path, answers 404
    for unknown paths and shuts down when the test ends.
    """
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    routes, requests = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 5  # seconds a stalled client may hold a handler thread

        def do_GET(self):
            requests.append(self.path)
            body = routes.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            # A (body, length) pair announces more bytes than it sends, like a
            # connection that breaks halfway.
            body, length = body if isinstance(body, tuple) else (body, len(body))
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield SimpleNamespace(
            url=f"http://127.0.0.1:{server.server_port}",
            routes=routes,
            requests=requests,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def md5_of(content):
    return hashlib.md5(content).hexdigest()


def test_download_once_then_use_the_cache(tmp_path, file_server, ml1m_zip):
    content = ml1m_zip.read_bytes()
    file_server.routes["/ml-1m.zip"] = content
    url = f"{file_server.url}/ml-1m.zip"

    path = download_movielens(tmp_path, url=url, md5=md5_of(content), progress=False)
    again = download_movielens(tmp_path, url=url, md5=md5_of(content), progress=False)

    assert path == again == tmp_path / "ml-1m.zip"
    assert path.read_bytes() == content
    assert file_server.requests == ["/ml-1m.zip"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-1m.zip"]


def test_damaged_cached_file_is_downloaded_again(tmp_path, file_server, ml1m_zip):
    content = ml1m_zip.read_bytes()
    file_server.routes["/ml-1m.zip"] = content
    (tmp_path / "ml-1m.zip").write_bytes(content[:100])

    path = download_movielens(
        tmp_path,
        url=f"{file_server.url}/ml-1m.zip",
        md5=md5_of(content),
        progress=False,
    )

    assert path.read_bytes() == content
    assert file_server.requests == ["/ml-1m.zip"]


def test_checksum_mismatch_leaves_nothing_in_the_cache(tmp_path, file_server):
    file_server.routes["/ml-1m.zip"] = b"not the zip you are looking for"
    cache = tmp_path / "cache"

    with pytest.raises(DownloadError) as excinfo:
        download_movielens(
            cache, url=f"{file_server.url}/ml-1m.zip", md5="0" * 32, progress=False
        )

    message = str(excinfo.value)
    got = md5_of(b"not the zip you are looking for")
    assert f"expected md5 {'0' * 32}, got {got}" in message
    assert "discarded" in message
    assert list(cache.iterdir()) == []


def test_broken_connection_leaves_nothing_in_the_cache(tmp_path, file_server):
    file_server.routes["/ml-1m.zip"] = (b"x" * 1000, 5000)

    with pytest.raises(DownloadError, match="closed after 1000 of 5000 bytes"):
        download_movielens(
            tmp_path, url=f"{file_server.url}/ml-1m.zip", md5=None, progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_nothing_in_the_cache(
    tmp_path, file_server, monkeypatch
):
    file_server.routes["/ml-1m.zip"] = b"x" * 5000

    class InterruptedBar(data.tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt

    monkeypatch.setattr(data, "tqdm", InterruptedBar)

    with pytest.raises(KeyboardInterrupt):
        download_movielens(
            tmp_path, url=f"{file_server.url}/ml-1m.zip", md5=None, progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_explained(tmp_path, file_server):
    with pytest.raises(DownloadError, match="HTTP 404") as excinfo:
        download_movielens(
            tmp_path, url=f"{file_server.url}/missing.zip", progress=False
        )

    assert isinstance(excinfo.value, OSError)
    assert isinstance(excinfo.value, DataError)
    assert list(tmp_path.iterdir()) == []


def test_refused_connection_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.

    with pytest.raises(DownloadError, match="Could not download .*connection"):
        download_movielens(
            tmp_path, url=f"http://127.0.0.1:{port}/ml-1m.zip", progress=False
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("progress", [True, False], ids=["bar", "quiet"])
def test_progress_bar_can_be_turned_off(tmp_path, file_server, capsys, progress):
    file_server.routes["/ml-1m.zip"] = b"x" * 5000

    download_movielens(
        tmp_path, url=f"{file_server.url}/ml-1m.zip", md5=None, progress=progress
    )

    stderr = capsys.readouterr().err
    assert ("Downloading ml-1m.zip" in stderr) is progress


def test_cache_dir_comes_from_the_environment(tmp_path, file_server, monkeypatch):
    file_server.routes["/ml-1m.zip"] = b"zip bytes"
    monkeypatch.setenv("PROFILE_REC_CACHE", str(tmp_path / "env-cache"))

    path = download_movielens(
        url=f"{file_server.url}/ml-1m.zip", md5=None, progress=False
    )

    assert path == tmp_path / "env-cache" / "ml-1m.zip"


def test_load_without_a_folder_downloads_ml1m(
    tmp_path, file_server, monkeypatch, ml1m_zip, ml1m_dir
):
    content = ml1m_zip.read_bytes()
    file_server.routes["/datasets/ml-1m.zip"] = content
    monkeypatch.setattr(data, "ML1M_URL", f"{file_server.url}/datasets/ml-1m.zip")
    monkeypatch.setattr(data, "ML1M_MD5", md5_of(content))

    movielens = load_movielens(cache_dir=tmp_path)

    assert movielens.checksum == f"sha256:{hashlib.sha256(content).hexdigest()}"
    assert_frame_equal(movielens.users, load_movielens(ml1m_dir).users)
    assert (tmp_path / "ml-1m.zip").read_bytes() == content


def test_truncated_download_with_matching_md5_is_caught_by_the_zip_reader(
    tmp_path, file_server, monkeypatch, ml1m_zip
):
    truncated = ml1m_zip.read_bytes()[:-200]
    file_server.routes["/ml-1m.zip"] = truncated
    monkeypatch.setattr(data, "ML1M_URL", f"{file_server.url}/ml-1m.zip")
    monkeypatch.setattr(data, "ML1M_MD5", md5_of(truncated))

    with pytest.raises(DataError, match=r"ml-1m\.zip is damaged.*Delete it"):
        load_movielens(cache_dir=tmp_path)


def test_movielens_repr_is_short(ml100k_dir):
    text = repr(load_movielens(ml100k_dir))

    assert text.startswith("MovieLens(name='ml-100k', n_ratings=1500, n_users=50")
    assert "\n" not in text
