"""The demo Space: its page logic, the files it is published with, and the app served
from those files alone, locally and from the Hub-compatible test server."""

from __future__ import annotations

import ast
import importlib
import json
import math
import sys
from importlib.metadata import version
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from hub_server import ALICE_TOKEN
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    SpaceCard,
    snapshot_download,
)
from packaging.requirements import Requirement
from space_process import (
    app_env,
    bundle_command,
    bundle_env,
    free_port,
    running_app,
)
from typer.testing import CliRunner

from profile_rec.cli import app as cli_app
from profile_rec.recommender import ProfileRecommender
from profile_rec.space import bundled_modules, space_files

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "profile_rec"
PERSON = {
    "age": "35-44",
    "gender": "Male",
    "occupation": "writer",
    "genres": ["Drama", "Thriller"],
}
PERSON_ARGS = [PERSON["age"], PERSON["gender"], PERSON["occupation"], PERSON["genres"]]
MODEL_REPO = "alice/profile-rec"
SPACE_REPO = "alice/profile-rec-demo"

# httpx2 deprecates the `data=<file>` call huggingface_hub 2.4 makes for LFS uploads.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"
)


def expected_rows(model: ProfileRecommender, k: int) -> list[list]:
    """What the table should hold for PERSON, straight from the recommender."""
    result = model.recommend(
        age=PERSON["age"],
        gender="M",
        occupation=PERSON["occupation"],
        genres=PERSON["genres"],
        k=k,
    )
    return [
        [
            rank,
            row.title,
            None if pd.isna(row.year) else int(row.year),
            ", ".join(row.genres),
            round(float(row.predicted_rating), 2),
        ]
        for rank, row in enumerate(result.itertuples(), start=1)
    ]


@pytest.fixture(scope="module")
def model(artifacts_dir: Path) -> ProfileRecommender:
    return ProfileRecommender.from_pretrained(artifacts_dir)


@pytest.fixture(scope="module")
def space_app():
    """The app module, imported the way a Space without variables would run it."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MODEL_REPO", raising=False)
        env.delenv("MODEL_REVISION", raising=False)
        module = importlib.import_module("profile_rec.space_app.app")
        yield importlib.reload(module)


# -- the profile in words and as a chart: hand-computed answers --------------------

# Four users: three in profile 0, one in profile 1.
HAND_CONFIG = {
    "profiles": [
        {
            "id": 0,
            "size": 3,
            "female_share": 0.667,
            "ages": {"25-34": 0.667, "18-24": 0.333},
            "top_occupations": {"programmer": 0.667, "writer": 0.333},
            "genre_share": {"Comedy": 1.0, "Drama": 0.0, "Horror": 0.333},
        },
        {
            "id": 1,
            "size": 1,
            "female_share": 0.0,
            "ages": {"56+": 1.0},
            "top_occupations": {"retired": 1.0},
            "genre_share": {"Comedy": 0.0, "Drama": 1.0, "Horror": 0.0},
        },
    ]
}


def test_average_genre_share_weights_profiles_by_size(space_app):
    average = space_app.average_genre_share(HAND_CONFIG["profiles"])
    # Comedy (3*1 + 1*0)/4, Drama (3*0 + 1*1)/4, Horror (3*0.333 + 0)/4.
    assert average == pytest.approx({"Comedy": 0.75, "Drama": 0.25, "Horror": 0.24975})


def test_profile_description_names_members_and_leanings(space_app):
    text = space_app.describe_profile(HAND_CONFIG, 0).splitlines()
    assert text[0] == "### Your profile"
    assert text[1].startswith(
        "You were matched with **profile 0** (one of 2): **3 MovieLens users** "
        "(75% of the 4 the model learned from)"
    )
    assert text[3:] == [
        "- **Ages:** mostly 25-34 (67%), 18-24 (33%)",
        "- **Gender:** 67% women, 33% men",
        "- **Occupations:** programmer (67%), writer (33%)",
        "- **Favourite genres** (share of members naming each): Comedy (100%), "
        "Horror (33%)",
        # Comedy leads all users by 25 points, Horror by 8.3; Drama trails.
        "- **More than the average user, they like:** Comedy (100% vs 75%), "
        "Horror (33% vs 25%)",
    ]
    other = space_app.describe_profile(HAND_CONFIG, 1).splitlines()
    assert other[-1] == (
        "- **More than the average user, they like:** Drama (100% vs 25%)"
    )


def test_genre_leanings_are_points_above_all_users(space_app):
    chart = space_app.genre_leanings(HAND_CONFIG, 0)
    assert chart.to_dict("records") == [
        {
            "genre": "Comedy",
            "difference": 25.0,
            "this profile (%)": 100.0,
            "all users (%)": 75.0,
            "leaning": "more than average",
        },
        {
            "genre": "Drama",
            "difference": -25.0,
            "this profile (%)": 0.0,
            "all users (%)": 25.0,
            "leaning": "less than average",
        },
        {
            "genre": "Horror",
            "difference": 8.3,
            "this profile (%)": 33.3,
            "all users (%)": 25.0,
            "leaning": "more than average",
        },
    ]


def test_results_table_shows_rank_title_year_genres_and_predicted_rating(space_app):
    result = pd.DataFrame(
        {
            "movie_id": [7, 3],
            "title": ["Heat", "Untitled"],
            "year": pd.array([1995, None], dtype="Int16"),
            "genres": [("Action", "Crime"), ()],
            "score": [-5.2, -6.0],
            "predicted_rating": [4.256, 3.0],
        }
    )
    table = space_app.results_table(result)
    columns = ["rank", "title", "year", "genres", "predicted rating"]
    assert list(table.columns) == columns
    assert table.values.tolist() == [
        [1, "Heat", 1995, "Action, Crime", 4.26],
        [2, "Untitled", None, "", 3.0],
    ]


@pytest.mark.parametrize("k", [1, 50, 5.0])
def test_count_accepts_whole_numbers_from_1_to_50(space_app, k):
    assert space_app._check_count(k) == int(k)


@pytest.mark.parametrize(
    "k",
    [0, 51, 2.5, True, None, "3", math.nan, math.inf],
    ids=["zero", "above-max", "fraction", "bool", "none", "text", "nan", "inf"],
)
def test_count_out_of_range_or_not_a_number_is_a_friendly_error(space_app, k):
    with pytest.raises(gr.Error, match="whole number from 1 to 50, got"):
        space_app._check_count(k)


# -- the page wired to a model -----------------------------------------------------


@pytest.mark.slow
def test_recommend_endpoint_matches_the_recommender(space_app, model):
    loaded = space_app.LoadedModel("artifacts", None, recommender=model)
    recommend = space_app.make_recommend(loaded)
    table, explanation, chart = recommend(*PERSON_ARGS, 6)
    assert table.values.tolist() == expected_rows(model, 6)
    profile = model.assign_profile(
        age=35, gender="M", occupation="writer", genres=["Drama", "Thriller"]
    )
    assert explanation == space_app.describe_profile(model.config, profile)
    assert f"**profile {profile}**" in explanation
    assert list(chart["genre"]) == model.config["vocabulary"]["genres"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["35-44", "Male", "astronaut", ["Drama"], 5],
            "Unknown occupation 'astronaut'",
        ),
        (["35-44", "Other", "writer", ["Drama"], 5], "Unknown gender 'Other'"),
        (["35-44", "Male", "writer", ["Drama", "Opera"], 5], "Unknown genre 'Opera'"),
        (["99-100", "Male", "writer", ["Drama"], 5], "Unknown age '99-100'"),
        (["35-44", "Male", "writer", [], 5], "Choose at least one favourite genre"),
        (["35-44", "Male", "writer", None, 5], "Choose at least one favourite genre"),
        (["35-44", "Male", "writer", ["Drama"], 0], "from 1 to 50, got 0"),
    ],
    ids=["occupation", "gender", "genre", "age", "no-genre", "none-genre", "k"],
)
def test_bad_input_is_a_gradio_error_naming_the_value(space_app, model, args, message):
    recommend = space_app.make_recommend(
        space_app.LoadedModel("artifacts", None, recommender=model)
    )
    with pytest.raises(gr.Error, match=message):
        recommend(*args)


@pytest.mark.slow
def test_demo_exposes_one_public_recommend_endpoint(space_app, model):
    demo = space_app.build_demo(
        space_app.LoadedModel("artifacts", None, recommender=model)
    )
    public = [f.api_name for f in demo.fns.values() if f.api_visibility == "public"]
    assert public == ["recommend"]


def test_missing_model_keeps_the_page_up_and_says_what_to_check(space_app, tmp_path):
    loaded = space_app.load_model(str(tmp_path / "nowhere"), "v2")
    assert loaded.recommender is None
    assert loaded.cause.startswith("ArtifactError: No artifact folder at")
    for hint in ("MODEL_REPO", "MODEL_REVISION", "HF_TOKEN", "revision `v2`"):
        assert hint in loaded.error
    demo = space_app.build_demo(loaded)
    page = json.dumps(demo.get_config_file())
    assert "The model is not available" in page
    assert "could not be loaded from" in page
    with pytest.raises(gr.Error, match="could not be loaded"):
        space_app.make_recommend(loaded)(*PERSON_ARGS, 5)


def test_module_demo_without_model_repo_explains_the_variable(space_app, monkeypatch):
    monkeypatch.delenv("MODEL_REPO", raising=False)
    importlib.reload(space_app)
    assert space_app.LOADED.recommender is None
    assert "set the MODEL_REPO variable" in space_app.LOADED.error
    assert isinstance(space_app.demo, gr.Blocks)


# -- the files published to the Space ----------------------------------------------


def test_space_files_are_app_card_requirements_and_inference_code():
    files = space_files(MODEL_REPO, "abc123")
    assert sorted(files) == [
        "README.md",
        "app.py",
        "profile_rec/__init__.py",
        "profile_rec/config.py",
        "profile_rec/data.py",
        "profile_rec/mapping.py",
        "profile_rec/profiles.py",
        "profile_rec/recommender.py",
        "requirements.txt",
    ]
    assert files["app.py"] == (ROOT / "space_app" / "app.py").read_bytes()
    for name, content in files.items():
        if name.startswith("profile_rec/"):
            assert content == (SRC / Path(name).name).read_bytes(), name


def test_space_card_metadata_names_the_model_and_tested_gradio():
    card = SpaceCard(space_files(MODEL_REPO, "abc123")["README.md"].decode())
    data = card.data.to_dict()
    assert data["sdk"] == "gradio"
    assert data["sdk_version"] == gr.__version__
    assert data["app_file"] == "app.py"
    assert data["python_version"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert data["models"] == [MODEL_REPO]
    assert data["license"] == "apache-2.0"
    assert data["title"] and data["emoji"]
    assert 0 < len(data["short_description"]) <= 60
    assert "This Space serves [`alice/profile-rec`]" in card.text
    assert "revision `abc123`" in card.text


def test_requirements_allow_the_tested_versions_and_no_tensorflow():
    text = space_files(MODEL_REPO)["requirements.txt"].decode()
    requirements = [
        Requirement(line)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    names = {r.name.lower().replace("_", "-") for r in requirements}
    assert names == {
        "numpy",
        "pandas",
        "scikit-learn",
        "skops",
        "huggingface-hub",
        "tqdm",
    }
    for requirement in requirements:
        installed = version(requirement.name)
        assert requirement.specifier.contains(installed), (
            f"space_app/requirements.txt allows {requirement}, but the tests ran "
            f"with {installed}; update the line to the tested version."
        )


def test_bundled_code_imports_only_the_standard_library_and_requirements():
    files = space_files(MODEL_REPO)
    # Import name of each requirement, plus what the Space's Gradio brings.
    allowed = {"numpy", "pandas", "sklearn", "skops", "huggingface_hub", "tqdm"}
    allowed |= {"gradio", "profile_rec"}
    bundled = {Path(n).stem for n in files if n.startswith("profile_rec/")}
    for name, content in files.items():
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(content)):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in sys.stdlib_module_names or root in allowed, (
                    f"{name} imports {root}, which the Space does not install"
                )
    # Relative imports at module level resolve inside the bundle.
    for module in bundled:
        tree = ast.parse(files[f"profile_rec/{module}.py"])
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.module.split(".")[0] in bundled, (module, node.module)


def test_bundle_follows_the_apps_imports_and_refuses_tensorflow():
    assert bundled_modules("import gradio\n") == ["__init__"]
    assert bundled_modules("from profile_rec.mapping import MovieIndex\n") == [
        "__init__",
        "mapping",
    ]
    # The model module imports TensorFlow at module level: never bundled.
    with pytest.raises(ValueError, match=r"model\.py imports (keras|tensorflow)"):
        bundled_modules("from profile_rec.model import build_model\n")


@pytest.mark.parametrize(
    "repo", ["artifacts", "./alice/profile-rec", "", "a/b/c"], ids=repr
)
def test_space_files_need_a_hub_repo_id(repo):
    with pytest.raises(ValueError, match="must be a Hub repo id like"):
        space_files(repo)


# -- the app served from the Space's files alone -------------------------------------


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


PROBE = """
import json, sys
import app
import profile_rec
print(json.dumps({
    "profile_rec": profile_rec.__file__,
    "tensorflow": "tensorflow" in sys.modules,
    "keras": "keras" in sys.modules,
    "loaded": app.LOADED.recommender is not None,
}))
"""


@pytest.mark.slow
def test_bundle_imports_nothing_from_the_repo_and_no_tensorflow(
    artifacts_dir, tmp_path
):
    import subprocess

    bundle = write_files(tmp_path / "space", space_files(MODEL_REPO))
    env = bundle_env(tmp_path, MODEL_REPO=str(artifacts_dir), HF_HUB_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE],
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe == {
        "profile_rec": str(bundle / "profile_rec" / "__init__.py"),
        "tensorflow": False,
        "keras": False,
        "loaded": True,
    }


@pytest.mark.slow
def test_app_runs_from_the_space_files_alone(artifacts_dir, model, tmp_path):
    bundle = write_files(tmp_path / "space", space_files(MODEL_REPO))
    env = bundle_env(tmp_path, MODEL_REPO=str(artifacts_dir), HF_HUB_OFFLINE="1")
    with running_app(bundle_command(), cwd=bundle, env=env) as app:
        client = Client(app.url, verbose=False)
        table, explanation, _ = client.predict(*PERSON_ARGS, 4, api_name="/recommend")
        with pytest.raises(AppError, match="Unknown occupation 'astronaut'"):
            client.predict(
                "35-44", "Male", "astronaut", ["Drama"], 4, api_name="/recommend"
            )
        with pytest.raises(AppError, match="Choose at least one favourite genre"):
            client.predict(*PERSON_ARGS[:3], [], 4, api_name="/recommend")
        with pytest.raises(AppError, match="from 1 to 50, got 500"):
            client.predict(*PERSON_ARGS, 500, api_name="/recommend")
    assert table["headers"] == [
        "rank",
        "title",
        "year",
        "genres",
        "predicted rating",
    ]
    assert table["data"] == expected_rows(model, 4)
    assert explanation.startswith("### Your profile")
    assert not any("Traceback" in line for line in app.output)


@pytest.mark.slow
def test_space_published_to_the_hub_serves_the_published_model(
    hub_server, artifacts_dir, model, tmp_path
):
    # Publish the model and the Space as the publisher does.
    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(MODEL_REPO)
    model_commit = api.upload_folder(
        repo_id=MODEL_REPO, folder_path=artifacts_dir, commit_message="Model"
    ).oid
    api.create_repo(SPACE_REPO, repo_type="space", space_sdk="gradio")
    files = space_files(MODEL_REPO, model_commit)
    api.create_commit(
        SPACE_REPO,
        repo_type="space",
        operations=[CommitOperationAdd(name, data) for name, data in files.items()],
        commit_message="Demo",
    )
    api.add_space_variable(SPACE_REPO, "MODEL_REPO", MODEL_REPO)
    api.add_space_variable(SPACE_REPO, "MODEL_REVISION", model_commit)

    # Like the Space runtime: fetch the Space's files into an empty folder, set
    # its variables, and run app.py from there.
    folder = Path(
        snapshot_download(SPACE_REPO, repo_type="space", local_dir=tmp_path / "space")
    )
    downloaded = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.parts
    }
    assert downloaded == set(files) | {".gitattributes"}
    variables = {
        name: v.value for name, v in api.get_space_variables(SPACE_REPO).items()
    }
    env = bundle_env(
        tmp_path, **hub_server.client_env(tmp_path / "space-hf-home"), **variables
    )
    with running_app(bundle_command(), cwd=folder, env=env) as app:
        client = Client(app.url, verbose=False)
        table, _, _ = client.predict(*PERSON_ARGS, 5, api_name="/recommend")
    assert table["data"] == expected_rows(model, 5)
    downloads = {
        path
        for method, path in hub_server.request_log
        if method == "GET" and f"/{MODEL_REPO}/resolve/{model_commit}/" in path
    }
    assert any(path.endswith("/scoring_weights.npz") for path in downloads)


@pytest.mark.slow
def test_space_whose_model_is_missing_still_serves_a_page(hub_server, tmp_path):
    import httpx

    folder = write_files(tmp_path / "space", space_files("alice/not-published"))
    env = bundle_env(
        tmp_path,
        **hub_server.client_env(tmp_path / "hf-home"),
        MODEL_REPO="alice/not-published",
    )
    with running_app(bundle_command(), cwd=folder, env=env) as app:
        page = httpx.get(app.url, timeout=30)
        client = Client(app.url, verbose=False)
        with pytest.raises(AppError, match="could not be loaded from `alice/not-pub"):
            client.predict(*PERSON_ARGS, 5, api_name="/recommend")
    assert page.status_code == 200
    assert "The model is not available" in page.text
    assert "no Hub repo" in page.text and "alice/not-published" in page.text
    assert not any("Traceback" in line for line in app.output)


# -- profile-rec demo ----------------------------------------------------------------


def cli_env(monkeypatch) -> None:
    """Undo, after the test, the variables the demo command sets in this process."""
    monkeypatch.setenv("MODEL_REPO", "")
    monkeypatch.setenv("MODEL_REVISION", "")


def test_demo_command_with_a_missing_model_is_one_line(tmp_path, monkeypatch):
    cli_env(monkeypatch)
    result = CliRunner().invoke(cli_app, ["demo", "--model", str(tmp_path / "none")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: could not load the model from")
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_demo_command_serves_the_app_on_the_given_port(artifacts_dir, model, tmp_path):
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "profile-rec"),
        "demo",
        "--model",
        str(artifacts_dir),
        "--port",
        str(port),
    ]
    env = app_env(tmp_path, HF_HUB_OFFLINE="1")
    with running_app(command, cwd=tmp_path, env=env) as app:
        client = Client(app.url, verbose=False)
        table, _, _ = client.predict(*PERSON_ARGS, 3, api_name="/recommend")
    assert app.url == f"http://127.0.0.1:{port}"
    assert table["data"] == expected_rows(model, 3)


@pytest.mark.slow
def test_error_messages_show_markup_sent_by_a_caller_as_text(space_app, model):
    recommend = space_app.make_recommend(
        space_app.LoadedModel("artifacts", None, recommender=model)
    )
    with pytest.raises(gr.Error) as caught:
        recommend("35-44", "Male", "<img src=x>", ["Drama"], 5)
    assert "Unknown occupation '&lt;img src=x&gt;'" in str(caught.value)
    assert "<img" not in str(caught.value)


@pytest.mark.slow
def test_demo_command_on_a_busy_port_is_one_line(artifacts_dir, monkeypatch):
    import socket

    cli_env(monkeypatch)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli_app, ["demo", "--model", str(artifacts_dir), "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: cannot serve on 127.0.0.1:{port}, probably because another "
        "program uses that port; choose another with --port."
    )


def test_footer_says_how_the_list_is_ordered(space_app):
    likes = space_app._ranking_note({"ranking": "likes", "like_threshold": 3.5})
    assert "times the chance that this group rates them above 3.5" in likes
    assert space_app._ranking_note({"ranking": "rating"}) == (
        "Movies are ordered by predicted rating (1-5)."
    )
    # Models saved before "ranking" existed: a positive prior means shrunk ratings.
    older = space_app._ranking_note({"rank_prior": 25.0})
    assert older.startswith("Movies are ordered by predicted rating (1-5), pulled")
