"""Drive the real huggingface_hub client over HTTP against the test Hub server."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from hub_server import (  # noqa: F401 (hub_server_fixture registers the fixture)
    ALICE_TOKEN,
    BOB_TOKEN,
    HubServer,
    client_env,
    hub_server_fixture,
)
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

# httpx2 deprecates the `data=<file>` call huggingface_hub 2.4 makes for LFS uploads.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"
)

REPO_ID = "alice/profile-rec"
CONFIG = b'{"n_clusters": 3}\n'
WEIGHTS = bytes(range(256)) * 4  # binary, so it must travel through LFS


@pytest.fixture
def alice() -> HfApi:
    return HfApi(token=ALICE_TOKEN)


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "weights").mkdir(parents=True)
    (folder / "config.json").write_bytes(CONFIG)
    (folder / "weights" / "model.keras").write_bytes(WEIGHTS)
    return folder


def _upload(api: HfApi, folder: Path, message: str = "Upload model", **kwargs):
    return api.upload_folder(
        repo_id=REPO_ID, folder_path=folder, commit_message=message, **kwargs
    )


def test_fixture_and_client_setup_send_no_request(hub_server: HubServer):
    api = HfApi(token=ALICE_TOKEN)

    url = hf_hub_url(REPO_ID, "config.json")

    assert api.endpoint == hub_server.url
    assert url == f"{hub_server.url}/{REPO_ID}/resolve/main/config.json"
    assert hub_server.request_log == []


def test_create_repo_conflicts_unless_exist_ok(hub_server: HubServer, alice: HfApi):
    url = alice.create_repo(REPO_ID)

    with pytest.raises(HfHubHTTPError) as conflict:
        alice.create_repo(REPO_ID)
    again = alice.create_repo(REPO_ID, exist_ok=True)

    assert url == f"{hub_server.url}/{REPO_ID}"
    assert (url.repo_id, url.repo_type) == (REPO_ID, "model")
    assert conflict.value.response.status_code == 409
    assert again == url
    assert hub_server.files(REPO_ID).keys() == {".gitattributes"}


def test_server_rejects_invalid_repo_name(hub_server: HubServer):
    response = httpx2.post(
        f"{hub_server.url}/api/repos/create",
        json={"name": "bad--name..", "type": "model"},
        headers={"Authorization": f"Bearer {ALICE_TOKEN}"},
    )

    assert response.status_code == 400
    assert "Invalid repo name" in response.json()["error"]


def test_upload_folder_sends_one_commit_and_downloads_round_trip(
    hub_server: HubServer, alice: HfApi, model_folder: Path
):
    alice.create_repo(REPO_ID)
    hub_server.request_log.clear()

    info = _upload(alice, model_folder)
    config_path = hf_hub_download(REPO_ID, "config.json")
    weights_path = hf_hub_download(REPO_ID, "weights/model.keras")

    methods = [method for method, _ in hub_server.request_log]
    commit_posts = [p for m, p in hub_server.request_log if p.endswith("/commit/main")]
    assert commit_posts == [f"/api/models/{REPO_ID}/commit/main"]
    assert methods.count("PUT") == 1  # the LFS file, sent to its upload URL
    assert [c.title for c in hub_server.commits(REPO_ID)] == [
        "Upload model",
        "initial commit",
    ]
    assert hub_server.commits(REPO_ID)[0].oid == info.oid
    tree = hub_server.commits(REPO_ID)[0].tree
    assert (tree["config.json"].lfs, tree["weights/model.keras"].lfs) == (False, True)
    assert Path(config_path).read_bytes() == CONFIG
    assert Path(weights_path).read_bytes() == WEIGHTS
    assert Path(weights_path).parent.parent.name == info.oid  # snapshots/<oid>/...


def test_unchanged_files_are_not_committed_again(
    hub_server: HubServer, alice: HfApi, model_folder: Path
):
    alice.create_repo(REPO_ID)
    first = _upload(alice, model_folder)

    second = _upload(alice, model_folder, message="Same files")

    assert second.oid == first.oid
    assert len(hub_server.commits(REPO_ID)) == 2


def test_past_commit_still_serves_old_bytes(
    hub_server: HubServer, alice: HfApi, model_folder: Path, tmp_path: Path
):
    alice.create_repo(REPO_ID)
    first = _upload(alice, model_folder)
    (model_folder / "config.json").write_bytes(b'{"n_clusters": 5}\n')
    second = _upload(alice, model_folder, message="Five clusters")

    old = hf_hub_download(REPO_ID, "config.json", revision=first.oid)
    new = hf_hub_download(REPO_ID, "config.json")
    snapshot = snapshot_download(REPO_ID, revision=first.oid[:7], cache_dir=tmp_path)

    assert second.oid != first.oid
    assert Path(old).read_bytes() == CONFIG
    assert Path(new).read_bytes() == b'{"n_clusters": 5}\n'
    assert Path(snapshot).name == first.oid
    assert (Path(snapshot) / "weights" / "model.keras").read_bytes() == WEIGHTS


def test_seeded_repo_downloads_whole(hub_server: HubServer, tmp_path: Path):
    oid = hub_server.seed_repo(REPO_ID, {"config.json": CONFIG, "w.npz": WEIGHTS})

    snapshot = Path(snapshot_download(REPO_ID, cache_dir=tmp_path))

    assert snapshot.name == oid
    assert (snapshot / "config.json").read_bytes() == CONFIG
    assert (snapshot / "w.npz").read_bytes() == WEIGHTS
    assert hub_server.commits(REPO_ID)[0].tree["w.npz"].lfs


def test_branch_and_pull_request(hub_server: HubServer, alice: HfApi):
    alice.create_repo(REPO_ID)
    alice.create_branch(REPO_ID, branch="dev")
    alice.upload_file(
        path_or_fileobj=b"dev notes\n",
        path_in_repo="NOTES.md",
        repo_id=REPO_ID,
        revision="dev",
    )

    pr = alice.upload_file(
        path_or_fileobj=b"proposal\n",
        path_in_repo="PROPOSAL.md",
        repo_id=REPO_ID,
        create_pr=True,
    )
    from_pr = hf_hub_download(REPO_ID, "PROPOSAL.md", revision=pr.pr_revision)
    refs = alice.list_repo_refs(REPO_ID, include_pull_requests=True)

    assert "NOTES.md" not in hub_server.files(REPO_ID)
    assert hub_server.files(REPO_ID, revision="dev")["NOTES.md"] == b"dev notes\n"
    assert (pr.pr_revision, pr.pr_num) == ("refs/pr/1", 1)
    assert hub_server.refs(REPO_ID)["refs/pr/1"] == pr.oid
    assert "PROPOSAL.md" not in hub_server.files(REPO_ID)
    assert Path(from_pr).read_bytes() == b"proposal\n"
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"]


def test_repo_info_and_listings(
    hub_server: HubServer, alice: HfApi, model_folder: Path
):
    alice.create_repo(REPO_ID)
    info = _upload(alice, model_folder)

    repo = alice.model_info(REPO_ID, files_metadata=True)
    siblings = {s.rfilename: s for s in repo.siblings}
    weights = siblings["weights/model.keras"]
    folders = [e.path for e in alice.list_repo_tree(REPO_ID) if not hasattr(e, "size")]

    assert (repo.id, repo.sha, repo.private) == (REPO_ID, info.oid, False)
    assert weights.size == len(WEIGHTS)
    assert weights.lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert siblings["config.json"].lfs is None
    assert alice.list_repo_files(REPO_ID) == [
        ".gitattributes",
        "config.json",
        "weights/model.keras",
    ]
    assert folders == ["weights"]
    assert [c.title for c in alice.list_repo_commits(REPO_ID)] == [
        "Upload model",
        "initial commit",
    ]
    assert alice.file_exists(REPO_ID, "config.json")
    assert not alice.file_exists(REPO_ID, "missing.json")
    assert alice.repo_exists(REPO_ID)
    assert not alice.repo_exists("alice/nothing-here")


def test_missing_file_repo_and_revision_raise_their_errors(
    hub_server: HubServer, alice: HfApi
):
    alice.create_repo(REPO_ID)

    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO_ID, "missing.json")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/nothing-here", "config.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO_ID, ".gitattributes", revision="no-such-branch")


def test_private_repo_needs_the_owner_token(hub_server: HubServer, alice: HfApi):
    alice.create_repo(REPO_ID, private=True)
    alice.upload_file(
        path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id=REPO_ID
    )

    with pytest.raises(RepositoryNotFoundError) as anonymous:
        hf_hub_download(REPO_ID, "config.json")
    with pytest.raises(RepositoryNotFoundError) as stranger:
        HfApi(token=BOB_TOKEN).model_info(REPO_ID)
    owner = hf_hub_download(REPO_ID, "config.json", token=ALICE_TOKEN)

    assert anonymous.value.response.status_code == 401
    assert stranger.value.response.status_code == 404
    assert Path(owner).read_bytes() == CONFIG
    assert alice.model_info(REPO_ID).private is True


def test_writes_need_a_valid_token_for_the_namespace(
    hub_server: HubServer, alice: HfApi
):
    alice.create_repo(REPO_ID)
    bob = HfApi(token=BOB_TOKEN)

    with pytest.raises(RepositoryNotFoundError) as anonymous:
        HfApi(token=False).upload_file(
            path_or_fileobj=CONFIG, path_in_repo="x.json", repo_id=REPO_ID
        )
    with pytest.raises(HfHubHTTPError) as other_namespace:
        bob.create_repo("alice/bobs-idea")
    with pytest.raises(HfHubHTTPError) as foreign_commit:
        bob.upload_file(path_or_fileobj=CONFIG, path_in_repo="x.json", repo_id=REPO_ID)
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        HfApi(token="hf_not_a_token").whoami()

    assert anonymous.value.response.status_code == 401
    assert other_namespace.value.response.status_code == 403
    assert foreign_commit.value.response.status_code == 403
    assert alice.create_repo("acme/shared").repo_id == "acme/shared"
    assert bob.whoami()["name"] == "bob"
    assert len(hub_server.commits(REPO_ID)) == 1


def test_lfs_upload_with_wrong_bytes_is_rejected(hub_server: HubServer, alice: HfApi):
    alice.create_repo(REPO_ID)
    announced = hashlib.sha256(WEIGHTS).hexdigest()
    batch = httpx2.post(
        f"{hub_server.url}/{REPO_ID}.git/info/lfs/objects/batch",
        json={
            "operation": "upload",
            "objects": [{"oid": announced, "size": len(WEIGHTS)}],
            "ref": {"name": "main"},
        },
        headers={"Authorization": f"Bearer {ALICE_TOKEN}"},
    )
    upload_url = batch.json()["objects"][0]["actions"]["upload"]["href"]

    tampered = httpx2.put(upload_url, content=WEIGHTS[:-1] + b"!")
    # A generator body arrives chunked, as streamed uploads do.
    genuine = httpx2.put(upload_url, content=iter([WEIGHTS[:100], WEIGHTS[100:]]))

    assert tampered.status_code == 400
    assert "do not match" in tampered.json()["error"]
    assert genuine.status_code == 200
    assert hub_server.repo(REPO_ID).lfs_objects[announced] == WEIGHTS


def test_failed_commit_changes_nothing(hub_server: HubServer, alice: HfApi):
    alice.create_repo(REPO_ID)
    operations = [
        CommitOperationAdd(path_in_repo="config.json", path_or_fileobj=CONFIG),
        CommitOperationDelete(path_in_repo="never-existed.txt"),
    ]

    with pytest.raises(RemoteEntryNotFoundError):
        alice.create_commit(REPO_ID, operations, commit_message="Half a commit")

    assert len(hub_server.commits(REPO_ID)) == 1
    assert hub_server.files(REPO_ID).keys() == {".gitattributes"}


def test_stale_parent_commit_is_refused(hub_server: HubServer, alice: HfApi):
    alice.create_repo(REPO_ID)
    initial = hub_server.commits(REPO_ID)[0].oid
    alice.upload_file(
        path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id=REPO_ID
    )
    late = [CommitOperationAdd(path_in_repo="late.txt", path_or_fileobj=b"late\n")]

    with pytest.raises(HfHubHTTPError) as refused:
        alice.create_commit(REPO_ID, late, commit_message="Late", parent_commit=initial)

    assert refused.value.response.status_code == 412
    assert "late.txt" not in hub_server.files(REPO_ID)


def test_space_creation_and_variables(hub_server: HubServer, alice: HfApi):
    space_id = "alice/profile-rec-demo"

    url = alice.create_repo(space_id, repo_type="space", space_sdk="gradio")
    alice.add_space_variable(space_id, "MODEL_REPO_ID", REPO_ID)
    alice.upload_file(
        path_or_fileobj=b"import gradio\n",
        path_in_repo="app.py",
        repo_id=space_id,
        repo_type="space",
    )
    app = hf_hub_download(space_id, "app.py", repo_type="space")

    assert url == f"{hub_server.url}/spaces/{space_id}"
    assert alice.space_info(space_id).sdk == "gradio"
    assert alice.get_space_variables(space_id)["MODEL_REPO_ID"].value == REPO_ID
    assert hub_server.repo(space_id, "space").variables["MODEL_REPO_ID"]["value"] == (
        REPO_ID
    )
    assert Path(app).read_bytes() == b"import gradio\n"


def test_refused_space_creation_reports_payment_required(
    hub_server: HubServer, alice: HfApi
):
    hub_server.refuse_spaces = True

    with pytest.raises(HfHubHTTPError, match="requires a paid plan") as refused:
        alice.create_repo("alice/demo", repo_type="space", space_sdk="gradio")
    with pytest.raises(HfHubHTTPError) as refused_exist_ok:
        alice.create_repo(
            "alice/demo", repo_type="space", space_sdk="gradio", exist_ok=True
        )
    static = alice.create_repo(
        "alice/static-demo", repo_type="space", space_sdk="static"
    )

    assert refused.value.response.status_code == 402
    assert refused_exist_ok.value.response.status_code == 402
    assert static.repo_type == "space"


def test_transient_failures_are_retried_where_the_client_retries(
    hub_server: HubServer, alice: HfApi, tmp_path: Path
):
    alice.create_repo(REPO_ID)
    hub_server.fail_next(1, status=503, path_contains="/preupload/")
    alice.upload_file(
        path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id=REPO_ID
    )
    hub_server.fail_next(
        1, drop_connection=True, method="GET", path_contains="/resolve/"
    )
    hub_server.request_log.clear()

    downloaded = hf_hub_download(REPO_ID, "config.json", cache_dir=tmp_path)

    assert hub_server.files(REPO_ID)["config.json"] == CONFIG
    assert Path(downloaded).read_bytes() == CONFIG
    resolve = f"/{REPO_ID}/resolve/main/config.json"
    assert hub_server.request_log == [
        ("HEAD", resolve),
        ("GET", resolve),
        ("GET", resolve),
    ]


def test_failed_commit_post_is_not_retried(hub_server: HubServer, alice: HfApi):
    alice.create_repo(REPO_ID)
    hub_server.fail_next(1, status=503, path_contains="/commit/")

    with pytest.raises(HfHubHTTPError) as unavailable:
        alice.upload_file(
            path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id=REPO_ID
        )

    assert unavailable.value.response.status_code == 503
    assert len(hub_server.commits(REPO_ID)) == 1


def test_command_line_server_serves_a_subprocess_client(tmp_path: Path):
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("hub_server.py")),
            "--token",
            "hf_carol_token:carol",
            "--lifetime",
            "60",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()
        env = {**os.environ, **client_env(url, tmp_path / "hf_home")}
        client = subprocess.run(
            [
                sys.executable,
                "-c",
                "from huggingface_hub import whoami; "
                "print(whoami(token='hf_carol_token')['name'])",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=10)
        server.stdout.close()

    assert url.startswith("http://127.0.0.1:")
    assert client.stdout.strip() == "carol", client.stderr
    assert exit_code == 0


@pytest.mark.slow
# Keras' TensorFlow backend trips numpy 2's `copy` deprecation while saving.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_hf_round_trip(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch):
    keras = pytest.importorskip("keras")
    import numpy as np

    monkeypatch.setenv("HF_TOKEN", ALICE_TOKEN)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    inputs = np.array([[1.0, 2.0, 3.0]])

    keras.saving.save_model(model, "hf://alice/keras-demo")
    loaded = keras.saving.load_model("hf://alice/keras-demo")

    assert hub_server.commits("alice/keras-demo")[0].tree["model.weights.h5"].lfs
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model(inputs))
