"""Publish a trained artifact folder to the Hugging Face Hub in one commit."""

from __future__ import annotations

import hashlib
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .recommender import (
    CARD_FILE,
    KERAS_FOLDER_FILES,
    MODEL_FILE,
    OPTIONAL_FILES,
    PUBLISHED_FILES,
    ArtifactError,
    ProfileRecommender,
)

T = TypeVar("T")

LOGIN_HELP = (
    "Log in with `hf auth login`, set the HF_TOKEN environment variable, or pass "
    "--token (a token with write access from https://huggingface.co/settings/tokens)."
)


class PublishError(Exception):
    """A publish that cannot go ahead; the message says why and what to do."""


class HubRefusedError(PublishError):
    """The Hub answered a request with a refusal (HTTP ``status``)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class PublishResult:
    repo_url: str
    commit: str | None
    commit_url: str | None
    changed: bool
    files: list[str] = field(default_factory=list)
    pr_url: str | None = None


def validate_artifacts(folder: str | Path) -> ProfileRecommender:
    """Check that ``folder`` is complete and coherent before anything is uploaded.

    Every published file must be present; the skops pipeline and the Keras model
    must load (safely); the Keras model's movie vocabulary and embedding sizes must
    agree with the config; the numpy weights must be the Keras model's; and the
    unzipped Keras files must be the ones inside the ``.keras`` file.

    Raises
    ------
    PublishError
        Naming the first problem found.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(
            f"No artifact folder at {folder}. Train one with "
            f"'profile-rec train --out {folder}' or pass --artifacts."
        )
    missing = [name for name in PUBLISHED_FILES if not (folder / name).is_file()]
    if missing:
        raise PublishError(
            f"{folder} is missing {', '.join(missing)}; re-run "
            f"'profile-rec train --out {folder}'."
        )
    try:
        recommender = ProfileRecommender.from_pretrained(folder)
    except (ArtifactError, ValueError, KeyError, OSError) as exc:
        raise PublishError(f"{folder} does not load: {exc}") from None
    try:
        with zipfile.ZipFile(folder / MODEL_FILE) as archive:
            for name in KERAS_FOLDER_FILES:
                if archive.read(name) != (folder / name).read_bytes():
                    raise PublishError(
                        f"{folder / name} differs from the copy inside {MODEL_FILE}; "
                        f"re-run 'profile-rec train --out {folder}'."
                    )
    except (zipfile.BadZipFile, KeyError) as exc:
        raise PublishError(
            f"{folder / MODEL_FILE} is not a Keras model: {exc}"
        ) from None
    _check_keras_model(folder, recommender)
    return recommender


def _check_keras_model(folder: Path, recommender: ProfileRecommender) -> None:
    import numpy as np

    from .model import export_weights, load_keras_model

    try:
        model = load_keras_model(folder / MODEL_FILE)
    except Exception as exc:  # Keras raises many types for a broken file.
        raise PublishError(f"{folder / MODEL_FILE} does not load: {exc}") from None
    try:
        vocabulary = model.get_layer("movie_lookup").get_vocabulary()[1:]
        exported = export_weights(model)
    except (ValueError, KeyError, IndexError) as exc:
        raise PublishError(
            f"{folder / MODEL_FILE} is not a profile-rec model ({exc}); "
            f"re-run 'profile-rec train --out {folder}'."
        ) from None
    if not np.array_equal(np.asarray(vocabulary), recommender.movie_index.movie_ids):
        raise PublishError(
            f"The movie ids of {MODEL_FILE} and of the config disagree; "
            f"re-run 'profile-rec train --out {folder}'."
        )
    for name in ("profile_embedding", "movie_embedding", "profile_bias", "movie_bias"):
        keras_weights = exported[name]
        if keras_weights.shape != recommender.weights[name].shape or not np.allclose(
            keras_weights, recommender.weights[name], atol=1e-6
        ):
            raise PublishError(
                f"{name} in {MODEL_FILE} differs from the scoring weights; "
                f"re-run 'profile-rec train --out {folder}'."
            )
    # Equal weights in a differently wired model would still score differently.
    profiles, movies = _sample_pairs(recommender)
    scores = model.predict([profiles, movies], verbose=0, batch_size=len(profiles))
    if not np.allclose(
        scores[:, 0], recommender.predict(profiles, movies), atol=1e-4, rtol=0
    ):
        raise PublishError(
            f"{MODEL_FILE} scores (profile, movie) pairs differently from the "
            f"scoring weights; re-run 'profile-rec train --out {folder}'."
        )


def _sample_pairs(recommender: ProfileRecommender, n: int = 2_000):
    """Seeded (profile, movie id) pairs, every profile and an unknown id included."""
    import numpy as np

    rng = np.random.default_rng(0)
    ids = recommender.movie_index.movie_ids
    profiles = np.arange(n) % recommender.n_profiles
    movies = rng.choice(ids, n)
    movies[-1] = ids.max() + 1  # never seen: the unknown row
    return profiles.astype(np.int32), movies.astype(np.int32)


def publish_files(
    folder: str | Path, repo_id: str, recommender: ProfileRecommender
) -> dict[str, bytes]:
    """Exactly what goes to the Hub: the allow-listed files and a card for the repo."""
    from .card import render_card

    folder = Path(folder)
    files = {
        name: (folder / name).read_bytes()
        for name in PUBLISHED_FILES + OPTIONAL_FILES
        if name != CARD_FILE and (folder / name).is_file()
    }
    card = render_card(
        recommender.config, recommender.metrics, location=repo_id, on_hub=True
    )
    files[CARD_FILE] = card.encode("utf-8")
    return dict(sorted(files.items()))


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the Hub) gives a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _same_content(remote: Any, data: bytes) -> bool:
    lfs = getattr(remote, "lfs", None)
    if lfs is not None:
        sha256 = lfs.get("sha256") if isinstance(lfs, dict) else lfs.sha256
        return sha256 == hashlib.sha256(data).hexdigest()
    return getattr(remote, "blob_id", None) == git_blob_sha1(data)


def check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"Invalid repo id {repo_id!r}: {exc}") from None
    if repo_id.count("/") != 1:
        raise PublishError(
            f"Invalid repo id {repo_id!r}: expected 'namespace/name', e.g. "
            "'your-user/profile-rec'."
        )


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Hub call is worth trying again."""
    from huggingface_hub.errors import HfHubHTTPError

    # huggingface_hub may wrap a network error (an upload failing, say) in another
    # exception; look down the chain of causes.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, HfHubHTTPError):
            return _status(seen) in (408, 429, 500, 502, 503, 504)
        names = {cls.__name__ for cls in type(seen).__mro__}
        if names & {"TransportError", "ConnectionError", "TimeoutError"}:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def with_retries(
    call: Callable[[], T], *, what: str, tries: int = 3, wait: float = 1.0
) -> T:
    """Run ``call``; on a network failure or a 5xx, wait and try again."""
    for attempt in range(1, tries + 1):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or attempt == tries:
                raise
            time.sleep(wait * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


class HubPublisher:
    """Talks to the Hub on behalf of one token; turns its errors into PublishError.

    Parameters
    ----------
    token : str, optional
        A Hub token; by default the one huggingface_hub already knows (``HF_TOKEN``
        or a login).
    retry_wait : float, default=1.0
        Seconds before the first retry of a failed call; doubled on each retry.
    """

    def __init__(self, token: str | None = None, *, retry_wait: float = 1.0) -> None:
        from huggingface_hub import HfApi, constants, get_token

        self.token = token or get_token()
        if not self.token:
            raise PublishError(f"No Hugging Face token found. {LOGIN_HELP}")
        self.endpoint = constants.ENDPOINT
        self.api = HfApi(endpoint=self.endpoint, token=self.token)
        self.retry_wait = retry_wait

    def call(self, what: str, function: Callable[[], T], *, repo_id: str = "") -> T:
        """Run a Hub call with retries; explain any failure in one line."""
        from huggingface_hub.errors import (
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        try:
            return with_retries(function, what=what, wait=self.retry_wait)
        except RevisionNotFoundError:
            raise PublishError(f"{repo_id} has no such revision.") from None
        except RepositoryNotFoundError:
            raise PublishError(
                f"Repository {repo_id} was not found, or your token may not see it."
            ) from None
        except HfHubHTTPError as exc:
            status = _status(exc)
            if status == 401:
                raise PublishError(
                    f"The Hub rejected the token (401) while trying to {what}. "
                    + LOGIN_HELP
                ) from None
            if status == 403:
                raise HubRefusedError(
                    f"The token may not write to {repo_id} (403) while trying to "
                    f"{what}. Use a token with write access to that namespace. "
                    f"The Hub said: {self.redact(_server_message(exc))}",
                    status,
                ) from None
            raise HubRefusedError(
                f"The Hub refused to {what} (HTTP {status}): "
                f"{self.redact(_server_message(exc))}",
                status,
            ) from None
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, OSError):
                raise PublishError(
                    f"Could not reach the Hub at {self.endpoint} to {what} after "
                    f"3 tries ({type(exc).__name__}: {self.redact(str(exc))}). "
                    "Check your connection and try again."
                ) from None
            raise

    def redact(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    def whoami(self) -> dict[str, Any]:
        return self.call("check the token", lambda: self.api.whoami())

    def check_namespace(self, repo_id: str) -> None:
        user = self.whoami()
        namespace = repo_id.split("/")[0]
        names = {user.get("name")} | {
            org.get("name") for org in user.get("orgs", []) if isinstance(org, dict)
        }
        if namespace not in names:
            raise PublishError(
                f"The token belongs to {user.get('name')!r}, who may not write to "
                f"{namespace!r}. Use a repo id under your own name or an "
                "organization you belong to."
            )

    def remote_files(self, repo_id: str, revision: str) -> dict[str, Any] | None:
        """The files at ``revision``, or None when the revision does not exist."""
        from huggingface_hub.errors import RevisionNotFoundError

        def listing():
            try:
                entries = self.api.list_repo_tree(
                    repo_id, revision=revision, recursive=True
                )
                return {e.path: e for e in entries if hasattr(e, "blob_id")}
            except RevisionNotFoundError:
                return None

        return self.call("list the repository files", listing, repo_id=repo_id)

    def head(self, repo_id: str, revision: str, repo_type: str = "model") -> str:
        info = self.call(
            "read the repository",
            lambda: self.api.repo_info(repo_id, revision=revision, repo_type=repo_type),
            repo_id=repo_id,
        )
        return info.sha

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        message: str,
        revision: str,
        create_pr: bool,
        parent: str | None,
        repo_type: str = "model",
    ):
        """Upload ``files`` in one commit; on a network failure, check it landed."""
        from huggingface_hub import CommitOperationAdd

        operations = [CommitOperationAdd(path, data) for path, data in files.items()]

        def attempt():
            return self.api.create_commit(
                repo_id,
                operations,
                commit_message=message,
                revision=revision,
                create_pr=create_pr,
                parent_commit=parent,
                repo_type=repo_type,
            )

        try:
            return self.call("upload the files", attempt, repo_id=repo_id)
        except PublishError:
            # The commit may have landed before the connection broke; a commit is
            # all or nothing, so comparing the files tells.
            if create_pr or repo_type != "model":
                raise
            remote = self.remote_files(repo_id, revision) or {}
            if all(
                path in remote and _same_content(remote[path], data)
                for path, data in files.items()
            ):
                return None
            raise


def _server_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    try:
        data = response.json()
        return str(data.get("error") or data)
    except Exception:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def publish(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str = "main",
    create_pr: bool = False,
    commit_message: str | None = None,
    retry_wait: float = 1.0,
    log: Callable[[str], None] = print,
) -> PublishResult:
    """Validate ``folder`` and put it on the Hub as one commit of ``repo_id``.

    Re-publishing files identical to those at ``revision`` makes no commit.
    """
    check_repo_id(repo_id)
    recommender = validate_artifacts(folder)
    files = publish_files(folder, repo_id, recommender)
    hub = HubPublisher(token, retry_wait=retry_wait)
    hub.check_namespace(repo_id)
    repo_url = str(
        hub.call(
            "create the repository",
            lambda: hub.api.create_repo(repo_id, private=private, exist_ok=True),
            repo_id=repo_id,
        )
    )
    remote = hub.remote_files(repo_id, revision)
    if remote is None:
        log(f"Creating branch {revision} of {repo_id}.")
        hub.call(
            "create the branch",
            lambda: hub.api.create_branch(repo_id, branch=revision, exist_ok=True),
            repo_id=repo_id,
        )
        remote = hub.remote_files(repo_id, revision) or {}
    parent = hub.head(repo_id, revision)
    if all(
        path in remote and _same_content(remote[path], data)
        for path, data in files.items()
    ):
        return PublishResult(repo_url, parent, None, changed=False, files=list(files))
    message = commit_message or _default_message(recommender)
    info = hub.commit(
        repo_id,
        files,
        message=message,
        revision=revision,
        create_pr=create_pr,
        parent=parent,
    )
    if info is None:  # It landed although the answer was lost.
        commit = hub.head(repo_id, revision)
        return PublishResult(repo_url, commit, None, changed=True, files=list(files))
    return PublishResult(
        repo_url,
        info.oid,
        info.commit_url,
        changed=True,
        files=list(files),
        pr_url=info.pr_url,
    )


def _default_message(recommender: ProfileRecommender) -> str:
    dataset = recommender.config["dataset"]
    return (
        f"Upload profile-rec model ({recommender.config.get('preset', 'default')} "
        f"preset, {recommender.n_profiles} profiles, {dataset['name']})"
    )


@dataclass
class SpaceResult:
    space_url: str | None
    commit: str | None
    refused: str | None = None


def publish_space(
    space_id: str,
    model_repo: str,
    *,
    model_revision: str | None = None,
    token: str | None = None,
    private: bool = False,
    retry_wait: float = 1.0,
) -> SpaceResult:
    """Create or update a Gradio Space serving ``model_repo``, in one commit.

    The Space gets the app and the inference code it needs (see
    :func:`profile_rec.space.space_files`) and the ``MODEL_REPO`` and
    ``MODEL_REVISION`` variables. When the Hub refuses to create the Space (it asks
    for a paid plan for Gradio Spaces), the result says so in ``refused`` instead of
    raising: the model is published either way.
    """
    from .space import space_files

    check_repo_id(space_id)
    hub = HubPublisher(token, retry_wait=retry_wait)
    hub.check_namespace(space_id)
    try:
        url = hub.call(
            "create the Space",
            lambda: hub.api.create_repo(
                space_id,
                repo_type="space",
                space_sdk="gradio",
                private=private,
                exist_ok=True,
            ),
            repo_id=space_id,
        )
    except HubRefusedError as exc:
        if exc.status in (402, 403):
            return SpaceResult(None, None, refused=str(exc))
        raise
    files = space_files(model_repo, model_revision)
    info = hub.call(
        "upload the Space",
        lambda: hub.api.create_commit(
            space_id,
            [_add(path, data) for path, data in files.items()],
            commit_message=f"Deploy the profile-rec demo for {model_repo}",
            repo_type="space",
        ),
        repo_id=space_id,
    )
    variables = {"MODEL_REPO": model_repo, "MODEL_REVISION": model_revision or "main"}
    for key, value in variables.items():
        hub.call(
            f"set the Space variable {key}",
            lambda key=key, value=value: hub.api.add_space_variable(
                space_id, key, value
            ),
            repo_id=space_id,
        )
    return SpaceResult(str(url), info.oid)


def _add(path: str, data: bytes):
    from huggingface_hub import CommitOperationAdd

    return CommitOperationAdd(path, data)
