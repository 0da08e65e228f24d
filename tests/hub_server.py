"""A small in-memory HTTP server speaking enough of the Hugging Face Hub API for tests.

The real `huggingface_hub` client (2.4) talks to it over real HTTP, so tests exercise
the same requests, headers and error classes as against huggingface.co, offline.

What it models, for model, dataset and Space repos:

- Tokens set on the server, `whoami`, and the Hub's answers to missing, invalid and
  foreign tokens (401 / 403 / 404, with the `X-Error-Code` headers the client turns
  into `RepositoryNotFoundError`, `RevisionNotFoundError`, ...).
- `create_repo` (409 if it exists, private repos, Space SDKs), Space variables, and a
  switch that refuses non-static Spaces with the Hub's 402 "payment required".
- Commits as `create_commit` / `upload_folder` send them: preupload (regular or LFS),
  the LFS batch API, the PUT upload checked against its sha256, the verify step, and
  the ndjson commit, applied all or nothing, with `parent_commit` and `create_pr`.
- Downloads from `/resolve/` (GET, HEAD) with `X-Repo-Commit`, `ETag` and, for LFS
  files, `X-Linked-Etag` / `X-Linked-Size`; every past commit stays resolvable.
- Repo info, tree listing, refs, commit history and `create_branch`.

Not modelled: Xet storage (clients must set `HF_HUB_DISABLE_XET=1`), multipart LFS,
byte ranges, tags, discussions, gated repos, README metadata checks (all accepted),
`.gitignore`, copy operations, pagination, rate limits and persistence.

Using it from tests:

- The `hub_server` fixture runs a server that accepts `ALICE_TOKEN` (user "alice", who
  may also write to org "acme") and `BOB_TOKEN` (user "bob"), and points
  huggingface_hub at it with `HubServer.configure_client`. A test module enables it
  with `from hub_server import hub_server_fixture  # noqa: F401`, or every module
  does once `tests/conftest.py` says `pytest_plugins = ["hub_server"]`.
- `configure_client` sets `HF_ENDPOINT`, a temporary `HF_HOME`, `HF_HUB_DISABLE_XET`
  and `HF_HUB_DISABLE_TELEMETRY`, clears `HF_TOKEN`, and patches the copies that an
  already imported huggingface_hub took of them, so import order does not matter.
- A subprocess gets `client_env(url, hf_home)` as its environment. The server also
  runs alone: `python tests/hub_server.py --token hf_x:alice` prints its URL.
- Tests read state with `commits`, `files`, `refs` and `repo`, check `request_log`
  (say, that a dry run sent nothing), and inject failures with `fail_next`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

logger = logging.getLogger(__name__)

ALICE_TOKEN = "hf_alice_token"
BOB_TOKEN = "hf_bob_token"
DEFAULT_TOKENS = {ALICE_TOKEN: "alice", BOB_TOKEN: "bob"}
DEFAULT_ORGANIZATIONS = {"acme": {"alice"}}

# Files with these suffixes go through LFS, like the patterns of the Hub's default
# .gitattributes; binary content and files above the size threshold do too.
LFS_SUFFIXES = (
    ".bin",
    ".ckpt",
    ".gz",
    ".h5",
    ".joblib",
    ".jpg",
    ".keras",
    ".msgpack",
    ".npy",
    ".npz",
    ".onnx",
    ".parquet",
    ".pkl",
    ".png",
    ".pt",
    ".safetensors",
    ".skops",
    ".tar",
    ".tflite",
    ".zip",
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")

_URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
# Variables that would point the client elsewhere than `HF_HOME` or this server.
_CLEARED_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_TOKEN_PATH",
    "HF_XET_CACHE",
    "HF_ASSETS_CACHE",
    "HUGGINGFACE_CO_STAGING",
)
# Letters, digits and "-_." inside, no "--" or "..", at most 96 characters.
_REPO_NAME = re.compile(
    r"(?!.*(--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# Stored state


@dataclass(frozen=True)
class StoredFile:
    """One file of a commit: its bytes, and whether the Hub keeps it in LFS."""

    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        """The git-lfs pointer that git stores in place of an LFS file."""
        return (
            "version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{self.sha256}\nsize {len(self.data)}\n"
        ).encode()

    @property
    def blob_id(self) -> str:
        """Git blob id of what git stores: the bytes, or the pointer for LFS files."""
        stored = self.pointer if self.lfs else self.data
        return hashlib.sha1(b"blob %d\0" % len(stored) + stored).hexdigest()


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    description: str
    author: str
    date: str
    tree: Mapping[str, StoredFile]


@dataclass
class Repo:
    """A repo as the server holds it; tests may read it but should not change it."""

    repo_type: str
    repo_id: str
    private: bool
    sdk: str | None = None
    created_at: str = field(default_factory=_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, str] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]


@dataclass
class _Fault:
    remaining: int
    status: int | None  # None drops the connection without an answer
    method: str | None
    path_contains: str | None

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in (None, method)
            and (self.path_contains is None or self.path_contains in path)
        )


# Requests and responses


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    user: str | None = None

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _HubError(Exception):
    """An error answer; `code` becomes the `X-Error-Code` header the client maps."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = {"X-Error-Message": message, **(headers or {})}
        if code is not None:
            self.headers["X-Error-Code"] = code


def _json(data: Any, status: int = 200, headers: dict | None = None) -> _Response:
    body = json.dumps(data).encode()
    return _Response(
        status, body, {"Content-Type": "application/json", **(headers or {})}
    )


_REPO = r"(?P<repo_id>[^/]+/[^/]+)"
_API = rf"/api/(?P<types>models|datasets|spaces)/{_REPO}"
# Model repos have no prefix in git and download URLs; others use their plural type.
_TYPED_REPO = rf"/(?:(?P<prefix>datasets|spaces)/)?{_REPO}"
_GIT = rf"{_TYPED_REPO}\.git/info/lfs/objects"
_ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"/api/whoami-v2", "_whoami"),
    ("POST", r"/api/validate-yaml", "_validate_yaml"),
    ("POST", r"/api/repos/create", "_create_repo"),
    ("GET", rf"{_API}(?:/revision/(?P<revision>[^/]+))?", "_repo_info"),
    ("GET", rf"{_API}/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?", "_tree"),
    ("GET", rf"{_API}/refs", "_refs"),
    ("GET", rf"{_API}/commits/(?P<revision>[^/]+)", "_list_commits"),
    ("POST", rf"{_API}/branch/(?P<branch>[^/]+)", "_create_branch"),
    ("POST", rf"{_API}/preupload/(?P<revision>[^/]+)", "_preupload"),
    ("POST", rf"{_API}/commit/(?P<revision>[^/]+)", "_commit"),
    ("GET", rf"{_API}/xet-(?:read|write)-token(?:/.*)?", "_xet_token"),
    ("GET|POST|DELETE", rf"/api/spaces/{_REPO}/variables", "_space_variables"),
    ("POST", rf"{_GIT}/batch", "_lfs_batch"),
    ("POST", rf"{_GIT}/verify", "_lfs_verify"),
    ("PUT", r"/__lfs-upload/(?P<ticket>[0-9a-f]+)", "_lfs_put"),
    (
        "GET|HEAD",
        rf"{_TYPED_REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)",
        "_resolve",
    ),
]


class HubServer:
    """An in-memory, Hub-compatible HTTP server on 127.0.0.1, run in a daemon thread.

    Args:
        tokens: Maps each accepted token to its user name.
        organizations: Maps an organization to the users allowed to write in it.
        refuse_spaces: Answer Space creation with other SDKs than "static" with a 402,
            as the Hub does for accounts without a paid plan. Can be changed later.
        port: Port to listen on; 0 picks a free one.
        lifetime: Seconds after which the server stops itself, so none outlives a run.

    Example:
        ```py
        with HubServer(tokens={"hf_x": "alice"}) as server:
            env = server.client_env(tmp_path / "hf_home")  # for a subprocess
        ```
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, str] | None = None,
        organizations: Mapping[str, set[str]] | None = None,
        refuse_spaces: bool = False,
        port: int = 0,
        lifetime: float = 600.0,
    ) -> None:
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self.organizations = dict(organizations or {})
        self.refuse_spaces = refuse_spaces
        self.request_log: list[tuple[str, str]] = []
        self._repos: dict[tuple[str, str], Repo] = {}
        self._upload_tickets: dict[str, tuple[Repo, str, int]] = {}
        self._faults: list[_Fault] = []
        self._commit_count = 0
        self._lock = threading.RLock()
        self._routes = [
            (methods.split("|"), re.compile(pattern), getattr(self, name))
            for methods, pattern, name in _ROUTES
        ]
        self._httpd = _HTTPServer(self, port)
        # A short poll interval keeps `stop` quick; the default waits up to 0.5 s.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._watchdog = threading.Timer(lifetime, self.stop)
        self._watchdog.daemon = True

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call more than once."""
        self._watchdog.cancel()
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Pointing the client at this server

    def client_env(self, hf_home: str | os.PathLike) -> dict[str, str]:
        """Environment variables that point a fresh huggingface_hub at this server."""
        return client_env(self.url, hf_home)

    def configure_client(
        self, monkeypatch: pytest.MonkeyPatch, hf_home: str | os.PathLike
    ) -> None:
        """Point huggingface_hub at this server for one test, imported or not."""
        for name, value in self.client_env(hf_home).items():
            monkeypatch.setenv(name, value)
        for name in _CLEARED_ENV:
            monkeypatch.delenv(name, raising=False)
        _patch_imported_client(monkeypatch, self.url, Path(hf_home))

    # Inspecting and seeding state

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        with self._lock:
            return self._repos[(repo_type, repo_id)]

    def commits(
        self, repo_id: str, repo_type: str = "model", revision: str = "main"
    ) -> list[Commit]:
        """The history of `revision`, newest first, down to the initial commit."""
        with self._lock:
            repo = self.repo(repo_id, repo_type)
            oid: str | None = _resolve_revision(repo, revision)
            history = []
            while oid is not None:
                history.append(repo.commits[oid])
                oid = repo.commits[oid].parent
            return history

    def files(
        self, repo_id: str, revision: str = "main", repo_type: str = "model"
    ) -> dict[str, bytes]:
        """Path -> bytes of every file at `revision`."""
        tree = self.commits(repo_id, repo_type, revision)[0].tree
        return {path: stored.data for path, stored in tree.items()}

    def refs(self, repo_id: str, repo_type: str = "model") -> dict[str, str]:
        """Branch names and `refs/pr/N` -> commit id."""
        repo = self.repo(repo_id, repo_type)
        pulls = {f"refs/pr/{number}": oid for number, oid in repo.pulls.items()}
        return {**repo.branches, **pulls}

    def seed_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        repo_type: str = "model",
        private: bool = False,
        sdk: str | None = None,
    ) -> str:
        """Create the repo if missing, commit `files` to main, return the commit id."""
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            if repo is None:
                repo = self._new_repo(repo_type, repo_id, private, sdk, author="system")
            tree = dict(repo.commits[repo.branches["main"]].tree)
            for path, data in files.items():
                tree[path] = StoredFile(data, _needs_lfs(path, len(data), data[:512]))
            commit = self._add_commit(
                repo, repo.branches["main"], tree, "Seed", "", "system"
            )
            repo.branches["main"] = commit.oid
            return commit.oid

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        drop_connection: bool = False,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Fail the next `count` matching requests with `status`, or drop them.

        Only requests with `method` (if given) whose path contains `path_contains` (if
        given) count. A dropped request closes the connection without a response, which
        the client sees as `httpx2.RemoteProtocolError`.
        """
        with self._lock:
            fault_status = None if drop_connection else status
            self._faults.append(_Fault(count, fault_status, method, path_contains))

    # Dispatch

    def handle(self, request: _Request) -> _Response | None:
        """Answer one request; None means drop the connection."""
        with self._lock:
            self.request_log.append((request.method, request.path))
            for fault in self._faults:
                if fault.matches(request.method, request.path):
                    fault.remaining -= 1
                    if fault.status is None:
                        return None
                    return _json({"error": "Injected failure"}, fault.status)
            try:
                request.user = self._authenticate(request)
                handler, params = self._route(request)
                return handler(request, **params)
            except _HubError as error:
                return _json({"error": str(error)}, error.status, error.headers)
            except (ValueError, KeyError, TypeError) as error:
                # Bad payloads surface here: a 400 keeps the client from retrying.
                return _json({"error": f"Malformed request: {error!r}"}, 400)

    def _route(self, request: _Request) -> tuple[Callable[..., _Response], dict]:
        for methods, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is not None and request.method in methods:
                params = {k: unquote(v) for k, v in match.groupdict().items() if v}
                return handler, params
        raise _HubError(404, f"No route for {request.method} {request.path}")

    def _authenticate(self, request: _Request) -> str | None:
        header = request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            # The client recognises this exact message as a bad token, not a bad repo.
            raise _HubError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{_URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    def _can_write(self, user: str | None, namespace: str) -> bool:
        return user is not None and (
            user == namespace or user in self.organizations.get(namespace, set())
        )

    def _find_repo(
        self, request: _Request, repo_type: str, repo_id: str, *, write: bool = False
    ) -> Repo:
        repo = self._repos.get((repo_type, repo_id))
        user = request.user
        if repo is None or (repo.private and not self._can_write(user, repo.namespace)):
            # Like the Hub, hide private repos: anonymous callers get 401, others 404.
            status = 401 if user is None else 404
            raise _HubError(status, "Repository not found", code="RepoNotFound")
        if write and user is None:
            message = "You must be authenticated to write to this repository"
            raise _HubError(401, message, code="RepoNotFound")
        if write and not self._can_write(user, repo.namespace):
            raise _HubError(403, f"You don't have write access to {repo_id}")
        return repo

    # Account and repo endpoints

    def _whoami(self, request: _Request) -> _Response:
        if request.user is None:
            raise _HubError(401, "You must send a token to call whoami")
        orgs = [
            n for n, members in self.organizations.items() if request.user in members
        ]
        return _json(
            {
                "type": "user",
                "name": request.user,
                "fullname": request.user,
                "orgs": [{"type": "org", "name": name} for name in orgs],
                "auth": {"type": "access_token", "accessToken": {"role": "write"}},
            }
        )

    def _validate_yaml(self, request: _Request) -> _Response:
        return _json({"errors": [], "warnings": []})

    def _create_repo(self, request: _Request) -> _Response:
        if request.user is None:
            raise _HubError(401, "You must be authenticated to create a repo")
        payload = request.json()
        repo_type = payload.get("type") or "model"
        namespace = payload.get("organization") or request.user
        name = payload.get("name")
        if repo_type not in _URL_PREFIXES:
            raise _HubError(400, f"Unknown repo type {repo_type!r}")
        if not (isinstance(name, str) and _REPO_NAME.fullmatch(name)):
            raise _HubError(400, f"Invalid repo name {name!r}")
        if not self._can_write(request.user, namespace):
            message = (
                f"You cannot create a {repo_type} under the namespace {namespace!r}"
            )
            raise _HubError(403, message)
        repo_id = f"{namespace}/{name}"
        url = self._repo_url(Repo(repo_type, repo_id, private=False))
        if (repo_type, repo_id) in self._repos:
            message = f"You already created this {repo_type} repo"
            return _json(
                {"error": message, "url": url}, 409, {"X-Error-Message": message}
            )

        sdk = payload.get("sdk")
        if repo_type == "space" and sdk not in SPACE_SDKS:
            raise _HubError(400, f"Space SDK must be one of {SPACE_SDKS}, got {sdk!r}")
        if repo_type == "space" and self.refuse_spaces and sdk != "static":
            message = (
                f"Creating a {sdk} Space on free hardware requires a paid plan; "
                "subscribe or create a static Space"
            )
            raise _HubError(402, message)
        private = (
            payload.get("visibility") == "private" or payload.get("private") is True
        )
        repo = self._new_repo(repo_type, repo_id, private, sdk, author=request.user)
        for variable in payload.get("variables") or []:
            repo.variables[variable["key"]] = _variable(variable)
        return _json({"url": url, "name": repo_id, "id": secrets.token_hex(12)})

    def _repo_info(
        self, request: _Request, types: str, repo_id: str, revision: str = "main"
    ) -> _Response:
        repo = self._find_repo(request, _API_TYPES[types], repo_id)
        commit = repo.commits[_resolve_revision(repo, revision)]
        with_blobs = request.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, stored in sorted(commit.tree.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=len(stored.data), blobId=stored.blob_id)
                if stored.lfs:
                    sibling["lfs"] = _lfs_info(stored, oid_key="sha256")
            siblings.append(sibling)
        info = {
            "id": repo.repo_id,
            "author": repo.namespace,
            "sha": commit.oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "createdAt": repo.created_at,
            "lastModified": commit.date,
            "tags": [],
            "siblings": siblings,
        }
        if repo.repo_type == "space":
            info["sdk"] = repo.sdk
        return _json(info)

    def _tree(
        self, request: _Request, types: str, repo_id: str, revision: str, path: str = ""
    ) -> _Response:
        repo = self._find_repo(request, _API_TYPES[types], repo_id)
        commit = repo.commits[_resolve_revision(repo, revision)]
        recursive = request.query.get("recursive", "").lower() in ("1", "true")
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries: dict[str, dict[str, Any]] = {}
        for file_path, stored in commit.tree.items():
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix) :].split("/")
            # Without recursion, only the first folder level below `path` is listed.
            depth = len(parts) if recursive else min(len(parts), 2)
            for end in range(1, depth):
                folder = prefix + "/".join(parts[:end])
                folder_id = hashlib.sha1(f"{commit.oid}:{folder}".encode()).hexdigest()
                entries[folder] = {"type": "directory", "oid": folder_id, "size": 0}
            if recursive or len(parts) == 1:
                entries[file_path] = {
                    "type": "file",
                    "oid": stored.blob_id,
                    "size": len(stored.data),
                }
                if stored.lfs:
                    entries[file_path]["lfs"] = _lfs_info(stored, oid_key="oid")
        if prefix and not entries:
            message = f"{path} is not a folder at {revision}"
            raise _HubError(404, message, code="EntryNotFound")
        return _json([{"path": p, **entry} for p, entry in sorted(entries.items())])

    def _refs(self, request: _Request, types: str, repo_id: str) -> _Response:
        repo = self._find_repo(request, _API_TYPES[types], repo_id)
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
            for name, oid in repo.branches.items()
        ]
        pulls = [
            {
                "name": f"refs/pr/{number}",
                "ref": f"refs/pr/{number}",
                "targetCommit": oid,
            }
            for number, oid in repo.pulls.items()
        ]
        refs = {"branches": branches, "converts": [], "tags": [], "pullRequests": pulls}
        return _json(refs)

    def _list_commits(
        self, request: _Request, types: str, repo_id: str, revision: str
    ) -> _Response:
        repo = self._find_repo(request, _API_TYPES[types], repo_id)
        items = []
        oid: str | None = _resolve_revision(repo, revision)
        while oid is not None:
            commit = repo.commits[oid]
            items.append(
                {
                    "id": commit.oid,
                    "authors": [{"user": commit.author}],
                    "date": commit.date,
                    "title": commit.title,
                    "message": commit.description,
                }
            )
            oid = commit.parent
        return _json(items)

    def _create_branch(
        self, request: _Request, types: str, repo_id: str, branch: str
    ) -> _Response:
        repo = self._find_repo(request, _API_TYPES[types], repo_id, write=True)
        if branch.startswith("refs/") or not branch.strip():
            raise _HubError(400, f"Invalid branch name {branch!r}")
        if branch in repo.branches:
            raise _HubError(409, f"Branch {branch} already exists")
        starting_point = request.json().get("startingPoint") or "main"
        repo.branches[branch] = _resolve_revision(repo, starting_point)
        return _json({})

    def _xet_token(self, request: _Request, types: str, repo_id: str) -> _Response:
        message = "This test server only speaks LFS: set HF_HUB_DISABLE_XET=1"
        raise _HubError(501, message)

    # Commits

    def _preupload(
        self, request: _Request, types: str, repo_id: str, revision: str
    ) -> _Response:
        # Opening a PR needs only read access, as on the Hub, but still a login.
        create_pr = request.query.get("create_pr") == "1"
        repo = self._find_repo(request, _API_TYPES[types], repo_id, write=not create_pr)
        if request.user is None:
            raise _HubError(401, "You must be authenticated", code="RepoNotFound")
        tree = repo.commits[_resolve_revision(repo, revision)].tree
        answers = []
        for item in request.json()["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = _needs_lfs(item["path"], item["size"], sample)
            existing = tree.get(item["path"])
            # The current oid lets the client skip files that did not change.
            remote_oid = None
            if existing is not None:
                remote_oid = existing.sha256 if existing.lfs else existing.blob_id
            answers.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": remote_oid,
                }
            )
        return _json({"files": answers})

    def _commit(
        self, request: _Request, types: str, repo_id: str, revision: str
    ) -> _Response:
        create_pr = request.query.get("create_pr") == "1"
        repo = self._find_repo(request, _API_TYPES[types], repo_id, write=not create_pr)
        if request.user is None:
            raise _HubError(401, "You must be authenticated", code="RepoNotFound")
        lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _HubError(400, "The first ndjson line must be the commit header")
        header = lines[0]["value"]
        if not header.get("summary"):
            raise _HubError(400, "The commit summary must not be empty")

        branch = revision.removeprefix("refs/heads/")
        pr_match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if branch not in repo.branches and not (
            pr_match and int(pr_match[1]) in repo.pulls
        ):
            message = f"Cannot commit to {revision!r}: not a branch or a PR ref"
            raise _HubError(404, message, code="RevisionNotFound")
        base = _find_commit_base(repo, revision, header.get("parentCommit"), create_pr)

        # Apply every operation to a copy, so a failure leaves the repo untouched.
        tree = dict(repo.commits[base].tree)
        for line in lines[1:]:
            _apply_operation(repo, tree, line["key"], line["value"])
        description = header.get("description", "")
        commit = self._add_commit(
            repo, base, tree, header["summary"], description, request.user
        )
        repo_url = self._repo_url(repo)
        pr_url = None
        if create_pr:
            number = max([0, *repo.pulls]) + 1
            repo.pulls[number] = commit.oid
            pr_url = f"{repo_url}/discussions/{number}"
        elif pr_match:
            repo.pulls[int(pr_match[1])] = commit.oid
        else:
            repo.branches[branch] = commit.oid
        return _json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{repo_url}/commit/{commit.oid}",
                "pullRequestUrl": pr_url,
            }
        )

    # LFS

    def _lfs_batch(
        self, request: _Request, repo_id: str, prefix: str = "models"
    ) -> _Response:
        payload = request.json()
        ref = (payload.get("ref") or {}).get("name")
        # Without a ref the client is uploading for a PR, which needs read access only.
        repo = self._find_repo(
            request, _API_TYPES[prefix], repo_id, write=ref is not None
        )
        if request.user is None:
            raise _HubError(401, "You must be authenticated to upload LFS files")
        if payload.get("operation") != "upload":
            raise _HubError(400, "Only the LFS upload operation is supported")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            if not (_SHA256.fullmatch(oid) and isinstance(size, int) and size >= 0):
                error = {"code": 422, "message": "oid must be a sha256, size an int"}
                objects.append({"oid": str(oid), "size": 0, "error": error})
            elif oid in repo.lfs_objects:
                objects.append({"oid": oid, "size": size})  # no actions: already there
            else:
                ticket = secrets.token_hex(16)
                self._upload_tickets[ticket] = (repo, oid, size)
                upload = {"href": f"{self.url}/__lfs-upload/{ticket}"}
                verify = {"href": f"{self._repo_url(repo)}.git/info/lfs/objects/verify"}
                actions = {"upload": upload, "verify": verify}
                objects.append({"oid": oid, "size": size, "actions": actions})
        headers = {"Content-Type": "application/vnd.git-lfs+json"}
        return _json({"transfer": "basic", "objects": objects}, headers=headers)

    def _lfs_put(self, request: _Request, ticket: str) -> _Response:
        """Stands in for the signed storage URL the Hub hands out: no token needed."""
        if ticket not in self._upload_tickets:
            raise _HubError(403, "This upload URL is unknown or was already used")
        repo, oid, size = self._upload_tickets[ticket]
        actual = hashlib.sha256(request.body).hexdigest()
        if actual != oid or len(request.body) != size:
            message = (
                f"Uploaded bytes do not match the announced object: sha256 {actual} "
                f"({len(request.body)} bytes), expected {oid} ({size} bytes)"
            )
            raise _HubError(400, message)
        repo.lfs_objects[oid] = request.body
        del self._upload_tickets[ticket]
        return _Response(200, headers={"ETag": f'"{oid}"'})

    def _lfs_verify(
        self, request: _Request, repo_id: str, prefix: str = "models"
    ) -> _Response:
        repo = self._find_repo(request, _API_TYPES[prefix], repo_id)
        payload = request.json()
        data = repo.lfs_objects.get(payload["oid"])
        if data is None or len(data) != payload["size"]:
            raise _HubError(404, f"LFS object {payload['oid']} was not uploaded")
        return _json({"success": True})

    # Downloads

    def _resolve(
        self,
        request: _Request,
        repo_id: str,
        revision: str,
        path: str,
        prefix: str = "models",
    ) -> _Response:
        repo = self._find_repo(request, _API_TYPES[prefix], repo_id)
        oid = _resolve_revision(repo, revision)
        stored = repo.commits[oid].tree.get(path)
        if stored is None:
            # The commit header lets the client cache that the file is absent.
            message = f"{path} does not exist at {revision}"
            headers = {"X-Repo-Commit": oid}
            raise _HubError(404, message, code="EntryNotFound", headers=headers)
        headers = {
            "X-Repo-Commit": oid,
            "ETag": f'"{stored.sha256 if stored.lfs else stored.blob_id}"',
            "Content-Type": "application/octet-stream",
        }
        if stored.lfs:
            headers["X-Linked-Etag"] = f'"{stored.sha256}"'
            headers["X-Linked-Size"] = str(len(stored.data))
        return _Response(200, stored.data, headers)

    # Spaces

    def _space_variables(self, request: _Request, repo_id: str) -> _Response:
        repo = self._find_repo(request, "space", repo_id, write=True)
        if request.method == "POST":
            payload = request.json()
            if not payload.get("key"):
                raise _HubError(400, "A Space variable needs a non-empty key")
            repo.variables[payload["key"]] = _variable(payload)
        elif request.method == "DELETE":
            repo.variables.pop(request.json()["key"], None)
        return _json(repo.variables)

    # State changes

    def _new_repo(
        self, repo_type: str, repo_id: str, private: bool, sdk: str | None, author: str
    ) -> Repo:
        repo = Repo(repo_type, repo_id, private, sdk)
        # Like the Hub, a new repo starts with one commit holding .gitattributes.
        patterns = "".join(
            f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES
        )
        tree = {".gitattributes": StoredFile(patterns.encode(), lfs=False)}
        commit = self._add_commit(repo, None, tree, "initial commit", "", author)
        repo.branches["main"] = commit.oid
        self._repos[(repo_type, repo_id)] = repo
        return repo

    def _add_commit(
        self,
        repo: Repo,
        parent: str | None,
        tree: dict[str, StoredFile],
        title: str,
        description: str,
        author: str,
    ) -> Commit:
        # The counter keeps two commits with identical content apart.
        self._commit_count += 1
        listing = sorted((path, stored.blob_id) for path, stored in tree.items())
        identity = [parent, listing, title, description, author, self._commit_count]
        oid = hashlib.sha1(json.dumps(identity).encode()).hexdigest()
        commit = Commit(oid, parent, title, description, author, _now(), dict(tree))
        repo.commits[oid] = commit
        return commit


# Helpers without server state


def client_env(endpoint: str, hf_home: str | os.PathLike) -> dict[str, str]:
    """Environment variables that point a fresh huggingface_hub at `endpoint`."""
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }


def _needs_lfs(path: str, size: int, sample: bytes) -> bool:
    binary = b"\0" in sample
    return path.lower().endswith(LFS_SUFFIXES) or size > LFS_SIZE_THRESHOLD or binary


def _resolve_revision(repo: Repo, revision: str) -> str:
    """Commit id for a branch, `refs/pr/N`, or a full or abbreviated commit id."""
    branch = revision.removeprefix("refs/heads/")
    if branch in repo.branches:
        return repo.branches[branch]
    pr_match = re.fullmatch(r"refs/pr/(\d+)", revision)
    if pr_match and int(pr_match[1]) in repo.pulls:
        return repo.pulls[int(pr_match[1])]
    if re.fullmatch(r"[0-9a-f]{7,40}", revision):
        found = [oid for oid in repo.commits if oid.startswith(revision)]
        if len(found) == 1:
            return found[0]
    raise _HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")


def _find_commit_base(
    repo: Repo, revision: str, parent_commit: str | None, create_pr: bool
) -> str:
    """The commit a new commit builds on: the ref's head, or a PR's parent commit."""
    head = _resolve_revision(repo, revision)
    if not parent_commit:
        return head
    base = _resolve_revision(repo, parent_commit)
    if not create_pr and base != head:
        # The client asked to commit on top of a head that has moved since.
        message = f"{revision} moved to {head}; the commit expected {base}"
        raise _HubError(412, message)
    return base


def _apply_operation(repo: Repo, tree: dict[str, StoredFile], key: str, value: dict):
    path = value["path"]
    if path.startswith("/") or ".." in path.split("/") or not path.strip("/"):
        raise _HubError(400, f"Invalid path in repo {path!r}")
    if key == "file":
        tree[path] = StoredFile(base64.b64decode(value["content"]), lfs=False)
    elif key == "lfsFile":
        data = repo.lfs_objects.get(value["oid"])
        if data is None:
            message = f"LFS object {value['oid']} for {path} was never uploaded"
            raise _HubError(400, message)
        tree[path] = StoredFile(data, lfs=True)
    elif key == "deletedFile":
        if tree.pop(path, None) is None:
            message = f"A file with this name doesn't exist: {path}"
            raise _HubError(404, message, code="EntryNotFound")
    elif key == "deletedFolder":
        folder = path.rstrip("/") + "/"
        doomed = [p for p in tree if p.startswith(folder)]
        if not doomed:
            raise _HubError(404, f"No folder {path}", code="EntryNotFound")
        for doomed_path in doomed:
            del tree[doomed_path]
    else:
        raise _HubError(400, f"Unknown commit operation {key!r}")


def _lfs_info(stored: StoredFile, oid_key: str) -> dict[str, Any]:
    # The tree API calls the sha256 "oid", repo info calls it "sha256".
    return {
        oid_key: stored.sha256,
        "size": len(stored.data),
        "pointerSize": len(stored.pointer),
    }


def _variable(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "value": payload["value"],
        "description": payload.get("description"),
        "updatedAt": _now(),
    }


def _patch_imported_client(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, hf_home: Path
) -> None:
    """Redo what importing huggingface_hub does with the env, if it already happened.

    huggingface_hub reads these variables once, into `huggingface_hub.constants`, and
    its module-level functions (`upload_folder`, ...) use an `HfApi` built at import.
    """
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is None:
        return  # the env variables will be read at import
    url_template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    values = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": url_template,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(hf_home / "hub"),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_OFFLINE": False,
    }
    for name, value in values.items():
        monkeypatch.setattr(constants, name, value)
    hf_api = sys.modules.get("huggingface_hub.hf_api")
    if hf_api is not None:
        monkeypatch.setattr(hf_api.api, "endpoint", endpoint)


# HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: HubServer, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.hub = hub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client pools connections
    # Headers and body go out as two writes; without this, Nagle's algorithm and the
    # client's delayed ACK hold every response back by tens of milliseconds.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections end their thread after this
    server: _HTTPServer

    def _serve(self) -> None:
        parsed = urlsplit(self.path)
        request = _Request(
            method=self.command,
            path=parsed.path,
            query=dict(parse_qsl(parsed.query)),
            headers=self.headers,
            body=self._read_body(),
        )
        response = self.server.hub.handle(request)
        if response is None:
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        # A HEAD answer announces the length of the body a GET would return.
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


@pytest.fixture(name="hub_server")
def hub_server_fixture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HubServer]:
    """A running HubServer (alice, bob, org acme) with huggingface_hub pointed at it."""
    server = HubServer(tokens=DEFAULT_TOKENS, organizations=DEFAULT_ORGANIZATIONS)
    with server:
        server.configure_client(monkeypatch, tmp_path / "hf_home")
        yield server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a Hub-compatible test server.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN:USER",
        help="accepted token and its user; repeatable (default: alice and bob)",
    )
    parser.add_argument("--refuse-spaces", action="store_true")
    parser.add_argument("--lifetime", type=float, default=600.0, help="seconds")
    args = parser.parse_args(argv)
    tokens = dict(item.split(":", 1) for item in args.token) or DEFAULT_TOKENS

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    server = HubServer(
        tokens=tokens,
        refuse_spaces=args.refuse_spaces,
        port=args.port,
        lifetime=args.lifetime,
    )
    with server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait(args.lifetime)


if __name__ == "__main__":
    main()
