"""Train on generated MovieLens data, save, load back and recommend."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from profile_rec.cli import app
from profile_rec.config import TrainingConfig
from profile_rec.data import GENRES, OCCUPATIONS, load_movielens
from profile_rec.profiles import InvalidPersonError
from profile_rec.recommender import (
    CONFIG_FILE,
    MODEL_FILE,
    MOVIES_FILE,
    PLOT_FILE,
    PUBLISHED_FILES,
    ArtifactError,
    ProfileRecommender,
)

pytestmark = pytest.mark.slow

SMALL = {
    "n_profiles": 4,
    "embedding_dim": 8,
    "epochs": 3,
    "batch_size": 64,
    "steps_per_execution": 4,
}
PERSON = {
    "age": 25,
    "gender": "F",
    "occupation": "programmer",
    "genres": ["Comedy", "Romance"],
}


@pytest.fixture(scope="module")
def trained(ml1m_dir):
    from profile_rec.training import train

    data = load_movielens(ml1m_dir)
    return data, train(data, TrainingConfig.preset("default", **SMALL), verbose=0)


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    _, recommender = trained
    return recommender.save_pretrained(tmp_path_factory.mktemp("run") / "artifacts")


def test_artifact_folder_holds_every_file_and_no_ratings(saved, trained):
    data, _ = trained
    assert sorted(p.name for p in saved.iterdir()) == sorted(PUBLISHED_FILES)
    movies = pd.read_csv(saved / MOVIES_FILE)
    assert list(movies.columns) == ["movie_id", "title", "year", "genres"]
    assert set(movies["movie_id"]) == set(data.ratings["movie_id"])
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["vocabulary"]["occupations"] == list(OCCUPATIONS)
    assert config["vocabulary"]["genres"] == list(GENRES)
    assert config["dataset"]["checksum"] == data.checksum
    assert config["dataset"]["n_ratings"] == len(data.ratings)
    assert config["movie_ids"] == sorted(data.ratings["movie_id"].unique().tolist())
    assert sum(p["size"] for p in config["profiles"]) == len(data.users)


def test_round_trip_gives_identical_recommendations(saved, trained):
    _, recommender = trained
    loaded = ProfileRecommender.from_pretrained(saved)
    before = recommender.recommend(**PERSON, k=7)
    after = loaded.recommend(**PERSON, k=7)
    pd.testing.assert_frame_equal(before, after)
    np.testing.assert_array_equal(
        loaded.predicted_ratings, recommender.predicted_ratings
    )
    assert len(after) == 7
    assert after["score"].is_monotonic_decreasing
    assert (after["profile"] == recommender.assign_profile(**PERSON)).all()


def test_numpy_scores_equal_the_saved_keras_model(saved):
    from profile_rec.model import load_keras_model

    loaded = ProfileRecommender.from_pretrained(saved)
    keras_model = load_keras_model(saved / MODEL_FILE)
    profiles, movies = np.meshgrid(
        np.arange(loaded.n_profiles), loaded.movie_index.movie_ids
    )
    expected = keras_model.predict(
        [profiles.ravel(), movies.ravel()], batch_size=4096, verbose=0
    )[:, 0]
    np.testing.assert_allclose(
        loaded.predict(profiles.ravel(), movies.ravel()), expected, atol=1e-5
    )


def test_unzipped_keras_folder_loads_like_the_keras_file(saved):
    from profile_rec.model import load_keras_model

    ids = [np.array([0, 1, 2]), np.array([1, 2, 3])]
    from_file = load_keras_model(saved / MODEL_FILE).predict(ids, verbose=0)
    from_folder = load_keras_model(saved).predict(ids, verbose=0)
    np.testing.assert_array_equal(from_folder, from_file)
    assert (saved / PLOT_FILE).read_bytes().startswith(b"\x89PNG")


def test_exclude_and_k(trained):
    _, recommender = trained
    top = recommender.recommend(**PERSON, k=5)
    without = recommender.recommend(**PERSON, k=5, exclude=top["movie_id"][:2])
    assert not set(top["movie_id"][:2]) & set(without["movie_id"])
    assert list(without["movie_id"][:3]) == list(top["movie_id"][2:])
    everything = recommender.recommend(**PERSON, k=10_000)
    assert len(everything) == len(recommender.movie_index)
    with pytest.raises(InvalidPersonError, match="k must be"):
        recommender.recommend(**PERSON, k=0)


def test_batch_equals_one_by_one(trained):
    _, recommender = trained
    people = pd.DataFrame(
        {
            "age": [25, 56, 1],
            "gender": ["F", "M", "F"],
            "occupation": ["programmer", "retired", "K-12 student"],
            "genres": [("Comedy", "Romance"), ("War",), ("Animation", "Children's")],
        }
    )
    batch = recommender.recommend_batch(people, k=4)
    for i, person in people.iterrows():
        alone = recommender.recommend(**person.to_dict(), k=4)
        rows = batch[batch["person"] == i]
        assert list(rows["movie_id"]) == list(alone["movie_id"])
        np.testing.assert_allclose(rows["score"], alone["score"])


def test_batch_takes_what_recommend_takes_and_names_a_bad_row(trained):
    _, recommender = trained
    canonical = pd.DataFrame(
        {
            "age": [25, 56],
            "gender": ["F", "M"],
            "occupation": ["programmer", "retired"],
            "genres": [("Comedy", "Romance"), ("Horror",)],
        }
    )
    loose = pd.DataFrame(
        {
            "age": ["25-34", 60],
            "gender": ["female", "m"],
            "occupation": ["Programmer", "RETIRED"],
            "genres": ["comedy,romance", ["horror", "Horror"]],
        }
    )
    pd.testing.assert_frame_equal(
        recommender.recommend_batch(loose, k=3),
        recommender.recommend_batch(canonical, k=3),
    )
    bad = loose.assign(occupation=["Programmer", "astronaut"])
    with pytest.raises(InvalidPersonError, match="Row 1 of people: .*astronaut"):
        recommender.recommend_batch(bad)
    with pytest.raises(InvalidPersonError, match="no column genres"):
        recommender.recommend_batch(canonical.drop(columns="genres"))


def test_failed_save_leaves_the_previous_folder_untouched(trained, saved, monkeypatch):
    _, recommender = trained
    before = {p.name: p.read_bytes() for p in saved.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("profile_rec.recommender.write_movie_table", broken)
    with pytest.raises(OSError, match="disk full"):
        recommender.save_pretrained(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_refuses_to_overwrite_a_folder_that_is_not_an_artifact_folder(
    trained, tmp_path
):
    _, recommender = trained
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not profile-rec artifacts"):
        recommender.save_pretrained(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_incomplete_folder_names_the_missing_files(saved, tmp_path):
    for path in saved.iterdir():
        if path.name != MODEL_FILE:
            (tmp_path / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ArtifactError, match=re.escape(MODEL_FILE)):
        ProfileRecommender.from_pretrained(tmp_path)
    with pytest.raises(ArtifactError, match="No artifact folder at 'nowhere'"):
        ProfileRecommender.from_pretrained("nowhere")


def test_model_card_is_filled_in(saved):
    card = (saved / "README.md").read_text()
    assert card.startswith("---\n")
    assert "license: apache-2.0" in card and "library_name: keras" in card
    assert "{{" not in card and "None" not in card
    assert str(saved) in card
    assert "| 0 |" in card  # the profiles table
    variety = json.loads((saved / "metrics.json").read_text())["recommendations"]
    assert (
        f"top-10 lists\n  hold {variety['distinct_movies']} different movies between "
        f"them ({variety['distinct_lists']}\n  different lists)"
    ) in card


def test_card_describes_the_new_training_steps_only_for_models_that_had_them(
    trained,
):
    from profile_rec.card import render_card

    _, recommender = trained
    card = render_card(recommender.config, recommender.metrics, location="here")
    assert "genre affinity" in card and "| biases | per movie |" in card
    assert "taken from their first\n   10 ratings by time" in card
    assert "each movie's bias was refitted on every training rating" in card
    best = recommender.metrics["training"]["best_epoch"]
    assert f"| validation RMSE, best epoch ({best}), before the bias refit |" in card
    # A model saved before these settings existed had none of them.
    training = dict(recommender.config["training"], use_bias=True)
    for name in ("genres_from_first", "profile_bias", "genre_affinity"):
        del training[name]
    del training["refit_movie_bias"]
    old = render_card(
        {**recommender.config, "training": training},
        recommender.metrics,
        location="here",
    )
    assert "| biases | per profile and per movie |" in old
    assert "| genre affinity term | no |" in old
    assert "| favourite genres from | all ratings |" in old
    assert "refitted" not in old and "first\n   10 ratings" not in old
    assert f"| validation RMSE, best epoch ({best}) |" in old


def test_list_variety_by_hand():
    from profile_rec.training import list_variety

    scores = np.array([[4.0, 3, 2, 1], [4, 3, 1, 2], [4, 3, 2, 1]])
    assert list_variety(scores, k=2) == {
        "k": 2,
        "distinct_lists": 1,
        "distinct_movies": 2,
    }
    assert list_variety(scores, k=3) == {
        "k": 3,
        "distinct_lists": 2,
        "distinct_movies": 4,
    }


def test_card_preset_ranks_by_predicted_rating(ml1m_dir):
    from profile_rec.training import train

    data = load_movielens(ml1m_dir)
    card = train(data, TrainingConfig.preset("card", **SMALL), preset="card", verbose=0)
    assert card.config["training"]["use_bias"] is False
    np.testing.assert_array_equal(card.ranking_scores, card.predicted_ratings)
    np.testing.assert_array_equal(card.weights["movie_bias"], 0)


runner = CliRunner()


def test_cli_train_then_recommend(ml100k_dir, tmp_path):
    out = tmp_path / "artifacts"
    result = runner.invoke(
        app,
        [
            "train",
            "--out",
            str(out),
            "--data-dir",
            str(ml100k_dir),
            "--profiles",
            "3",
            "--epochs",
            "2",
            "--embedding-dim",
            "8",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Loaded ml-100k" in result.output
    assert "Sample: 25-34, F, programmer" in result.output
    result = runner.invoke(
        app,
        [
            "recommend",
            "--model",
            str(out),
            "--age",
            "30",
            "--gender",
            "M",
            "--occupation",
            "writer",
            "--genres",
            "Drama,Comedy",
            "-k",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    expected = ProfileRecommender.from_pretrained(out).recommend(
        age=30, gender="M", occupation="writer", genres=["Drama", "Comedy"], k=3
    )
    assert [r["movie_id"] for r in rows] == expected["movie_id"].tolist()
    assert [r["title"] for r in rows] == expected["title"].tolist()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--occupation", "astronaut"], "Unknown occupation 'astronaut'"),
        (["--genres", "Telenovela"], "Unknown genre 'Telenovela'"),
        (["--exclude", "1,x"], "--exclude takes comma-separated movie ids"),
    ],
)
def test_cli_recommend_bad_input_is_one_line_without_traceback(saved, args, message):
    base = {
        "--model": str(saved),
        "--age": "25",
        "--gender": "F",
        "--occupation": "programmer",
        "--genres": "Comedy",
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = runner.invoke(app, ["recommend", *sum(base.items(), ())])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_train_refuses_a_foreign_out_folder(ml100k_dir, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(
        app, ["train", "--out", str(tmp_path), "--data-dir", str(ml100k_dir)]
    )
    assert result.exit_code == 1
    assert "not profile-rec artifacts" in result.output
    assert (tmp_path / "keep.txt").read_text() == "mine"


def _damage(folder, name, how):
    path = folder / name
    if how == "random bytes":
        path.write_bytes(b"\x00garbage" * 10)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "json list":
        path.write_text("[1, 2]")
    elif how == "nan weights":
        with np.load(path) as npz:
            arrays = dict(npz)
        arrays["movie_bias"][3] = np.nan
        np.savez(path, **arrays)
    elif how == "duplicated row":
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:3] + lines[2:]))


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("profile_pipeline.skops", "random bytes"),
        ("profile_pipeline.skops", "empty"),
        ("profile_rec_config.json", "random bytes"),
        ("profile_rec_config.json", "json list"),
        ("metrics.json", "random bytes"),
        ("scoring_weights.npz", "empty"),
        ("scoring_weights.npz", "nan weights"),
        ("movies.csv", "empty"),
        ("movies.csv", "duplicated row"),
    ],
)
def test_damaged_artifacts_give_one_clear_error(saved, tmp_path, name, how):
    folder = tmp_path / "copy"
    folder.mkdir()
    for path in saved.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    _damage(folder, name, how)
    with pytest.raises(ArtifactError, match=re.escape(name.split(".")[0])):
        ProfileRecommender.from_pretrained(folder)
    args = ["recommend", "--model", str(folder), "--age", "25", "--gender", "F"]
    args += ["--occupation", "writer", "--genres", "Drama"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert "pickle" not in result.output


def test_exclude_edge_cases(trained):
    _, recommender = trained
    every = recommender.movie_index.movie_ids.tolist()
    with pytest.raises(InvalidPersonError, match="nothing is left"):
        recommender.recommend(**PERSON, exclude=every)
    one_left = recommender.recommend(**PERSON, exclude=every[1:], k=5)
    assert one_left["movie_id"].tolist() == every[:1]
    huge = recommender.recommend(**PERSON, exclude=[10**30], k=3)
    assert len(huge) == 3
    for bad in ("318", [318.9], [True], None):
        with pytest.raises(InvalidPersonError, match="exclude must be"):
            recommender.recommend(**PERSON, exclude=bad)
    with pytest.raises(InvalidPersonError, match="genres must be"):
        recommender.recommend(**{**PERSON, "genres": None})


def test_retraining_never_deletes_files_it_did_not_write(trained, saved, tmp_path):
    _, recommender = trained
    folder = tmp_path / "mine"
    folder.mkdir()
    for path in saved.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match=r"not profile-rec artifacts \(notes.txt\)"):
        recommender.save_pretrained(folder)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_the_current_folder_is_never_replaced(trained, tmp_path, monkeypatch):
    _, recommender = trained
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    with pytest.raises(ArtifactError, match="is the current folder"):
        recommender.save_pretrained(".")
    recommender.save_pretrained("artifacts")
    recommender.save_pretrained("artifacts")  # replaces its own folder
    assert [p.name for p in folder.iterdir()] == ["artifacts"]
    assert sorted(p.name for p in (folder / "artifacts").iterdir()) == sorted(
        PUBLISHED_FILES
    )


def test_too_few_users_for_the_profiles_is_refused_before_training(ml100k_dir):
    from profile_rec.data import DataError
    from profile_rec.training import train

    data = load_movielens(ml100k_dir)
    config = TrainingConfig.preset("default", n_profiles=len(data.users) + 1)
    with pytest.raises(DataError, match=f"--profiles {len(data.users)} or fewer"):
        train(data, config, verbose=0)


def test_a_mistyped_local_path_is_not_looked_up_on_the_hub(saved):
    typo = f"{saved.parent.name}/artefacts"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(saved.parent.parent)
        with pytest.raises(ArtifactError, match="No artifact folder at"):
            ProfileRecommender.from_pretrained(typo)


def test_one_rating_user_cannot_be_split_for_early_stopping(ml100k_dir):
    from profile_rec.data import DataError
    from profile_rec.evaluation import subset
    from profile_rec.training import train

    data = load_movielens(ml100k_dir)
    first = data.users["user_id"].iloc[:1].to_numpy()
    alone = subset(data, data.ratings[data.ratings["user_id"].isin(first)])
    config = TrainingConfig.preset("default", **{**SMALL, "n_profiles": 1})
    with pytest.raises(DataError, match="hold out 10% of the users"):
        train(alone, config, verbose=0)


def test_held_out_users_shape_nothing_until_early_stopping_is_done(
    ml1m_dir, monkeypatch
):
    from profile_rec import model as keras_model
    from profile_rec import training

    data = load_movielens(ml1m_dir)
    config = TrainingConfig.preset("default", **SMALL)
    ratings = data.ratings
    val, fit = keras_model.validation_split(
        len(ratings), config, user_ids=ratings["user_id"].to_numpy()
    )
    values = ratings["rating"].to_numpy(np.float32)
    assert len(val) > 0
    seen = {}
    start = training._start_movie_bias

    def spy(model, index, movie_ids, ratings, config, mean_rating):
        seen.update(n=len(ratings), sum=float(ratings.sum()), mean=mean_rating)
        start(model, index, movie_ids, ratings, config, mean_rating)

    monkeypatch.setattr(training, "_start_movie_bias", spy)
    recommender = training.train(data, config, verbose=0, files=False)
    # Training starts from the other users' ratings only ...
    assert seen == {
        "n": len(fit),
        "sum": float(values[fit].sum()),
        "mean": float(values[fit].mean()),
    }
    # ... and once the epoch is chosen, the movies' biases use every rating.
    assert recommender.config["mean_rating"] == pytest.approx(
        float(values.mean(dtype=np.float64)), abs=1e-12
    )


def test_train_refuses_before_training_what_its_evaluation_cannot_run(
    ml1m_dir, tmp_path
):
    out = tmp_path / "artifacts"
    # 60 users: enough for 55 profiles, but the evaluation trains on 48 of them.
    result = runner.invoke(
        app,
        ["train", "--data-dir", str(ml1m_dir), "--out", str(out), "--profiles", "55"],
    )
    assert result.exit_code == 1
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: The evaluation trains on 48 of the 60 users")
    assert "fewer than the 55 profiles" in message
    assert "--evaluation none" in message
    assert "Epoch" not in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_train_refuses_a_seed_numpy_cannot_take(ml1m_dir, tmp_path):
    out = tmp_path / "artifacts"
    result = runner.invoke(
        app, ["train", "--data-dir", str(ml1m_dir), "--out", str(out), "--seed", "-1"]
    )
    assert result.exit_code == 2
    assert "--seed" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_model_trained_without_files_scores_the_same_but_cannot_be_saved(
    trained, tmp_path
):
    from profile_rec.training import train

    data, recommender = trained
    bare = train(
        data, TrainingConfig.preset("default", **SMALL), verbose=0, files=False
    )
    np.testing.assert_array_equal(bare.ranking_scores, recommender.ranking_scores)
    with pytest.raises(ArtifactError, match="files=True"):
        bare.save_pretrained(tmp_path / "deep" / "er" / "artifacts")
    assert list(tmp_path.iterdir()) == []


def test_genre_tables_by_hand():
    from profile_rec.mapping import MovieIndex
    from profile_rec.training import genre_tables

    profiles = pd.Series([0, 0, 1], index=[7, 8, 9])
    favourites = pd.Series(
        [("Comedy", "Drama"), ("Comedy",), ("Horror",)], index=[7, 8, 9]
    )
    movies = pd.DataFrame(
        {
            "movie_id": [10, 20, 30, 40],
            "genres": [("Comedy", "Drama"), ("Horror",), (), ("War",)],
        }
    )
    # Movie 40 was never rated, so it has no row.
    index = MovieIndex([10, 20, 30])
    profile_genres, movie_genres = genre_tables(
        profiles, favourites, movies, index, n_profiles=3
    )
    column = {genre: i for i, genre in enumerate(GENRES)}
    expected = np.zeros((3, len(GENRES)))
    expected[0, column["Comedy"]] = 1.0  # both members picked Comedy
    expected[0, column["Drama"]] = 0.5  # one of the two picked Drama
    expected[1, column["Horror"]] = 1.0
    np.testing.assert_array_equal(profile_genres, expected)  # profile 2 is empty
    expected = np.zeros((4, len(GENRES)))
    expected[1, [column["Comedy"], column["Drama"]]] = 0.5
    expected[2, column["Horror"]] = 1.0
    np.testing.assert_array_equal(movie_genres, expected)  # unknown row, movie 30: 0
