"""publish.py against the Hub-compatible test server, over real HTTP."""

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import train_tiny
from hub_server import ALICE_TOKEN, BOB_TOKEN
from typer.testing import CliRunner

from profile_rec.publishing import PublishError, publish
from profile_rec.recommender import (
    CONFIG_FILE,
    MODEL_FILE,
    PUBLISHED_FILES,
    ProfileRecommender,
)

pytestmark = pytest.mark.slow

REPO = "alice/profile-rec"
PERSON = {"age": 35, "gender": "M", "occupation": "writer", "genres": ["Drama"]}
ROOT = Path(__file__).resolve().parents[1]


def _load_publish_script():
    spec = importlib.util.spec_from_file_location("publish_script", ROOT / "publish.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


publish_script = _load_publish_script()
runner = CliRunner()


def run_cli(*args):
    return runner.invoke(publish_script.app, list(args))


def fresh_process(server, tmp_path, code):
    """Run ``code`` in a new interpreter pointed at the test server; parse its JSON."""
    env = server.client_env(tmp_path / "fresh-hf-home")
    env["PATH"] = "/usr/bin:/bin"
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def artifacts(artifacts_dir, tmp_path):
    """A private copy of the trained artifact folder, free to change."""
    return Path(shutil.copytree(artifacts_dir, tmp_path / "artifacts"))


def test_publish_then_load_three_ways_in_a_fresh_process(
    hub_server, artifacts, tmp_path
):
    result = publish(artifacts, REPO, token=ALICE_TOKEN, log=lambda _: None)
    assert result.changed
    assert set(hub_server.files(REPO)) - {".gitattributes"} == set(PUBLISHED_FILES)
    assert result.commit == hub_server.commits(REPO)[0].oid

    local = ProfileRecommender.from_pretrained(artifacts)
    expected = local.recommend(**PERSON, k=5)
    profiles = np.repeat(np.arange(local.n_profiles), 3)
    movies = np.tile(local.movie_index.movie_ids[:3], local.n_profiles)
    expected_scores = local.predict(profiles, movies)

    loaded = fresh_process(
        hub_server,
        tmp_path,
        f"""
        import json, sys
        import numpy as np
        from huggingface_hub import hf_hub_download
        from profile_rec import ProfileRecommender

        model = ProfileRecommender.from_pretrained({REPO!r})
        top = model.recommend(**{PERSON!r}, k=5)
        assert "tensorflow" not in sys.modules
        import keras

        ids = [np.array({profiles.tolist()}), np.array({movies.tolist()})]
        keras_file = keras.models.load_model(
            hf_hub_download({REPO!r}, {MODEL_FILE!r})
        )
        via_hf = keras.saving.load_model("hf://{REPO}")
        print(json.dumps({{
            "movie_ids": top["movie_id"].tolist(),
            "scores": top["score"].tolist(),
            "keras_file": keras_file.predict(ids, verbose=0).ravel().tolist(),
            "hf_uri": via_hf.predict(ids, verbose=0).ravel().tolist(),
        }}))
        """,
    )
    assert loaded["movie_ids"] == expected["movie_id"].tolist()
    assert loaded["scores"] == expected["score"].tolist()
    np.testing.assert_allclose(loaded["keras_file"], expected_scores, atol=1e-5)
    np.testing.assert_array_equal(loaded["hf_uri"], loaded["keras_file"])


def test_published_card_names_the_repo_and_carries_metrics(hub_server, artifacts):
    publish(artifacts, REPO, token=ALICE_TOKEN, log=lambda _: None)
    card = hub_server.files(REPO)["README.md"].decode()
    assert f'from_pretrained("{REPO}", revision="main")' in card
    assert f"hf://{REPO}" in card
    assert "model-index:" in card and "license: apache-2.0" in card
    assert "profiles.png" in card
    assert "{{" not in card


def test_republishing_the_same_folder_is_a_no_op(hub_server, artifacts):
    first = publish(artifacts, REPO, token=ALICE_TOKEN, log=lambda _: None)
    result = run_cli(
        "--repo", REPO, "--artifacts", str(artifacts), "--token", ALICE_TOKEN
    )
    assert result.exit_code == 0, result.output
    assert "Nothing to publish" in result.output
    assert first.commit in result.output
    assert len(hub_server.commits(REPO)) == 2  # the repo's initial commit and ours


def test_revision_pins_the_first_model_after_a_second_publish(
    hub_server, artifacts, ml1m_dir, tmp_path
):
    first = publish(artifacts, REPO, token=ALICE_TOKEN, log=lambda _: None)
    retrained = train_tiny(ml1m_dir, tmp_path / "retrained", seed=1)
    second = publish(retrained, REPO, token=ALICE_TOKEN, log=lambda _: None)
    assert second.changed and second.commit != first.commit

    old = ProfileRecommender.from_pretrained(REPO, revision=first.commit)
    new = ProfileRecommender.from_pretrained(REPO)
    np.testing.assert_array_equal(
        old.predicted_ratings,
        ProfileRecommender.from_pretrained(artifacts).predicted_ratings,
    )
    np.testing.assert_array_equal(
        new.predicted_ratings,
        ProfileRecommender.from_pretrained(retrained).predicted_ratings,
    )
    # Offline, the cached revision still loads.
    cached = ProfileRecommender.from_pretrained(
        REPO, revision=first.commit, local_files_only=True
    )
    np.testing.assert_array_equal(cached.predicted_ratings, old.predicted_ratings)


def test_only_allow_listed_files_go_up(hub_server, artifacts):
    (artifacts / "ratings.dat").write_text("1::1::5::978300760\n")
    (artifacts / ".cache").mkdir()
    publish(artifacts, REPO, token=ALICE_TOKEN, log=lambda _: None)
    assert set(hub_server.files(REPO)) - {".gitattributes"} == set(PUBLISHED_FILES)


def test_branch_and_pull_request(hub_server, artifacts):
    publish(artifacts, REPO, token=ALICE_TOKEN, log=lambda _: None)
    main_head = hub_server.commits(REPO)[0].oid
    (artifacts / "metrics.json").write_text('{"training": {}}\n')
    pr = publish(artifacts, REPO, token=ALICE_TOKEN, create_pr=True, log=print)
    assert pr.pr_url and pr.pr_url.endswith("/discussions/1")
    assert hub_server.commits(REPO)[0].oid == main_head
    assert "refs/pr/1" in hub_server.refs(REPO)
    dev = publish(artifacts, REPO, token=ALICE_TOKEN, revision="dev", log=print)
    assert hub_server.refs(REPO)["dev"] == dev.commit
    assert hub_server.files(REPO, revision="dev")["metrics.json"].startswith(b"{")


def test_dry_run_sends_no_request_and_lists_every_file(hub_server, artifacts):
    result = run_cli("--repo", REPO, "--artifacts", str(artifacts), "--dry-run")
    assert result.exit_code == 0, result.output
    assert hub_server.request_log == []
    for name in PUBLISHED_FILES:
        assert name in result.output
    assert "model-index:" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repo", REPO], "No Hugging Face token found"),
        (["--repo", REPO, "--token", "hf_not_a_token"], "rejected the token (401)"),
        (["--repo", "bob/profile-rec", "--token", ALICE_TOKEN], "may not write"),
        (["--repo", "not a repo", "--token", ALICE_TOKEN], "Invalid repo id"),
        (["--repo", "alice", "--token", ALICE_TOKEN], "expected 'namespace/name'"),
    ],
)
def test_publish_errors_are_one_line_and_never_show_the_token(
    hub_server, artifacts, args, message
):
    result = run_cli(*args, "--artifacts", str(artifacts))
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    for token in (ALICE_TOKEN, "hf_not_a_token"):
        assert token not in result.output
    assert ("model", "alice/profile-rec") not in hub_server._repos


def test_a_repo_the_token_may_not_write_is_refused_by_the_hub(hub_server):
    from profile_rec.publishing import HubPublisher

    hub = HubPublisher(ALICE_TOKEN)
    with pytest.raises(PublishError, match="may not write to bob/x \\(403\\)"):
        hub.call(
            "create the repository",
            lambda: hub.api.create_repo("bob/x", exist_ok=True),
            repo_id="bob/x",
        )


def test_transient_failures_are_retried(hub_server, artifacts):
    hub_server.fail_next(2, status=503, path_contains="/api/repos/create")
    result = publish(
        artifacts, REPO, token=ALICE_TOKEN, retry_wait=0.01, log=lambda _: None
    )
    assert result.changed
    assert set(hub_server.files(REPO)) - {".gitattributes"} == set(PUBLISHED_FILES)


def test_lasting_network_failure_is_a_clear_error(hub_server, artifacts):
    hub_server.fail_next(10, drop_connection=True, path_contains="whoami")
    with pytest.raises(PublishError, match="Could not reach the Hub .* after 3 tries"):
        publish(artifacts, REPO, token=ALICE_TOKEN, retry_wait=0.01)


def test_a_commit_whose_answer_is_lost_is_not_made_twice(hub_server, artifacts):
    hub_server.fail_next(1, status=503, path_contains="/commit/")
    result = publish(
        artifacts, REPO, token=ALICE_TOKEN, retry_wait=0.01, log=lambda _: None
    )
    assert result.changed
    # The initial commit and exactly one upload.
    assert len(hub_server.commits(REPO)) == 2


def test_missing_or_broken_artifacts_are_never_uploaded(hub_server, artifacts):
    (artifacts / MODEL_FILE).write_bytes(b"not a zip")
    result = run_cli(
        "--repo", REPO, "--artifacts", str(artifacts), "--token", BOB_TOKEN
    )
    assert result.exit_code == 1
    assert MODEL_FILE in result.output
    (artifacts / MODEL_FILE).unlink()
    result = run_cli("--repo", REPO, "--artifacts", str(artifacts))
    assert result.exit_code == 1 and f"missing {MODEL_FILE}" in result.output
    result = run_cli("--repo", REPO, "--artifacts", str(artifacts / "nope"))
    assert result.exit_code == 1 and "No artifact folder" in result.output
    assert hub_server.request_log == []


def test_config_that_disagrees_with_the_model_is_refused(hub_server, artifacts):
    config = json.loads((artifacts / CONFIG_FILE).read_text())
    config["vocabulary"]["occupations"][0] = "astronaut"
    (artifacts / CONFIG_FILE).write_text(json.dumps(config))
    result = run_cli("--repo", REPO, "--artifacts", str(artifacts), "--dry-run")
    assert result.exit_code == 1
    assert "disagree on occupations" in result.output


def _rewrite_keras_file(artifacts, change):
    """Apply ``change`` to the model's config.json, in the file and its copy."""
    path = artifacts / MODEL_FILE
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    change(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    (artifacts / "config.json").write_bytes(files["config.json"])


def _layer(config, name):
    return next(layer for layer in config["config"]["layers"] if layer["name"] == name)


def test_a_keras_file_wired_differently_is_refused(hub_server, artifacts):
    # Same weights, but the dot product now normalises the embeddings first.
    _rewrite_keras_file(
        artifacts, lambda config: _layer(config, "dot")["config"].update(normalize=True)
    )
    result = run_cli("--repo", REPO, "--artifacts", str(artifacts), "--dry-run")
    assert result.exit_code == 1
    assert "scores (profile, movie) pairs differently" in result.output
    assert result.output.count("\n") == 1  # one line, no traceback
    assert hub_server.request_log == []


def test_a_keras_file_of_another_model_is_refused(hub_server, artifacts, tmp_path):
    import keras

    inputs = keras.Input(shape=(2,))
    other = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    other.save(tmp_path / "other.keras")
    with zipfile.ZipFile(tmp_path / "other.keras") as archive:
        for name in ("config.json", "metadata.json", "model.weights.h5"):
            (artifacts / name).write_bytes(archive.read(name))
    shutil.copy(tmp_path / "other.keras", artifacts / MODEL_FILE)
    result = run_cli("--repo", REPO, "--artifacts", str(artifacts), "--dry-run")
    assert result.exit_code == 1
    assert "is not a profile-rec model" in result.output
    assert result.output.count("\n") == 1


SPACE = "alice/profile-rec-demo"


def test_space_is_deployed_with_the_app_and_its_variables(hub_server, artifacts):
    from profile_rec.space import space_files

    result = run_cli(
        "--repo", REPO, "--artifacts", str(artifacts), "--token", ALICE_TOKEN,
        "--space", SPACE,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Space deployed: {hub_server.url}/spaces/{SPACE}" in result.output
    space = hub_server.repo(SPACE, "space")
    assert space.sdk == "gradio"
    uploaded = hub_server.files(SPACE, repo_type="space")
    uploaded.pop(".gitattributes", None)
    assert uploaded == space_files(REPO, None)
    assert len(hub_server.commits(SPACE, "space")) == 2  # created, then one upload
    assert {k: v["value"] for k, v in space.variables.items()} == {
        "MODEL_REPO": REPO,
        "MODEL_REVISION": "main",
    }


def test_a_refused_space_still_publishes_the_model(hub_server, artifacts):
    hub_server.refuse_spaces = True
    result = run_cli(
        "--repo", REPO, "--artifacts", str(artifacts), "--token", ALICE_TOKEN,
        "--space", SPACE,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "would not create the Space" in result.output
    assert f"MODEL_REPO={REPO} python space_app/app.py" in result.output
    assert "Traceback" not in result.output
    assert set(hub_server.files(REPO)) - {".gitattributes"} == set(PUBLISHED_FILES)
    assert ("space", SPACE) not in hub_server._repos


def test_dry_run_lists_the_space_files_too(hub_server, artifacts):
    from profile_rec.space import space_files

    result = run_cli(
        "--repo", REPO, "--artifacts", str(artifacts), "--space", SPACE, "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert f"files to the Space {SPACE}" in result.output
    for name in space_files(REPO, None):
        assert name in result.output
    assert hub_server.request_log == []


def test_a_network_error_wrapped_by_the_client_counts_as_transient():
    from profile_rec.publishing import is_transient

    try:
        try:
            raise ConnectionError("connection refused")
        except ConnectionError as cause:
            raise RuntimeError("Error while uploading a file to the Hub.") from cause
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(RuntimeError("a bug"))
