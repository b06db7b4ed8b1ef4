"""An in-memory stand-in for the Hugging Face Hub HTTP API, for tests that push and pull with the real client.

The server speaks the subset of the Hub API that `huggingface_hub` (create_repo, upload_folder, upload_file,
create_commit, create_branch, create_tag, list_repo_refs, list_repo_files, list_repo_tree, list_repo_commits,
model_info, hf_hub_download, snapshot_download) and `transformers` (`push_to_hub`, `from_pretrained`,
`Trainer(push_to_hub=True)`) use. Every file is committed as a regular git blob: the preupload answer is
`uploadMode: "regular"`, so contents arrive inline (base64) in the NDJSON commit and no LFS or Xet transfer happens;
downloads name the types the Hub keeps in LFS (weights) by their sha256 (`X-Linked-Etag`), as the Hub does, so the
client's cache names their blobs by it. A commit naming its parent (`parentCommit`, `create_commit(...,
parent_commit=...)`) is refused with 412 when that parent is no longer the branch's head, as on the Hub.
Writes need a bearer token (any string); reads need none, private repositories included. Each request and commit
records the token and user agent that sent it, so a test can tell which process pushed. A request the server does
not serve gets a 404 naming it and shows up in `hub.requests`.

`huggingface_hub` reads `HF_ENDPOINT` when it is imported, so the client must run in a process started after the
server, with `client_environment(hub, hf_home)`:

    HF_ENDPOINT=<hub.endpoint>  HF_TOKEN=<any string>  HF_HOME=<empty directory>
    HF_HUB_DISABLE_TELEMETRY=1  HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE removed (or "0")

Only the first three and the absence of the offline switches are required. `HF_HUB_DISABLE_TELEMETRY=1` keeps the
client from asking the endpoint for its agent registry (`/api/agent-harnesses`, answered anyway); a fresh `HF_HOME`
keeps cached files and stored tokens of other runs out of the picture. `HF_HUB_OFFLINE=1` makes the client refuse
every request (`OfflineModeIsEnabled`); Xet is never involved because the server advertises no Xet storage.

Usage:

    with HubTestServer() as hub:
        subprocess.run([...], env=client_environment(hub, tmp_path / "hf_home"), check=True)
        assert hub.files("org/tiny")["config.json"] == ...
        assert [commit.title for commit in hub.commits("org/tiny")] == [...]
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_USER = "test-user"
DEFAULT_BRANCH = "main"
REPO_TYPES = ("model", "dataset", "space")

# What a new repository on the Hub starts with: one commit holding a `.gitattributes`.
INITIAL_GITATTRIBUTES = b"""*.bin filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
"""

_API_REPO_ROUTE = re.compile(
    r"^/api/(?P<type>models|datasets|spaces)/(?P<namespace>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$"
)
_RESOLVE_ROUTE = re.compile(
    r"^/(?:(?P<type>datasets|spaces)/)?(?P<namespace>[^/]+)/(?P<name>[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$"
)
_PULL_REQUEST_REF = re.compile(r"^refs/pr/(?P<number>\d+)$")

# Offline switches make the client refuse every request; the others would point it at another cache or token.
_VARIABLES_HIDDEN_FROM_CLIENTS = {
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_TOKEN_PATH",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
}


def git_blob_sha(content: bytes) -> str:
    """The git object id of a blob, which the client also computes to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    """A timestamp in the one format the client parses (`%Y-%m-%dT%H:%M:%S.%fZ`)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def client_environment(hub: HubTestServer, hf_home: str | os.PathLike, token: str = "test-token") -> dict[str, str]:
    """The environment for a process whose `huggingface_hub` should talk to `hub`.

    Starts from `os.environ`, points the client at the server, gives it a token and an empty cache, and removes the
    offline switches (the client refuses every request while `HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE` is true).
    Set `HF_HUB_USER_AGENT_ORIGIN` in the result to tell processes apart in `hub.request_counts("origin")`.
    """
    environment = {key: value for key, value in os.environ.items() if key not in _VARIABLES_HIDDEN_FROM_CLIENTS}
    Path(hf_home).mkdir(parents=True, exist_ok=True)
    environment.update(
        HF_ENDPOINT=hub.endpoint,
        HF_TOKEN=token,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return environment


@dataclass(frozen=True)
class HubCommit:
    """One commit of a repository: its id, message, parent, author token and the tree it points to."""

    sha: str
    title: str
    description: str
    parent: str | None
    tree: Mapping[str, str]  # path in repo -> git blob sha
    token: str | None
    user_agent: str | None
    date: str


@dataclass(frozen=True)
class HubRequest:
    """One request the server received, with what identifies the client that sent it."""

    method: str
    path: str
    status: int
    token: str | None
    user_agent: str | None

    @property
    def origin(self) -> str | None:
        """The `origin/...` part of the user agent, set by the client from `HF_HUB_USER_AGENT_ORIGIN`."""
        for part in (self.user_agent or "").split(";"):
            if part.strip().startswith("origin/"):
                return part.strip()[len("origin/") :]
        return None


@dataclass
class _Repository:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit sha
    tags: dict[str, str] = field(default_factory=dict)
    pull_requests: dict[int, str] = field(default_factory=dict)


class HubError(Exception):
    """An error answer, with the `X-Error-Code` the client turns into its own exception types."""

    def __init__(self, status: int, message: str, error_code: str | None = None, repo_commit: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.repo_commit = repo_commit


class _HubState:
    """Repositories, commits and blobs, guarded by one lock (the server answers requests on many threads)."""

    def __init__(self, user: str):
        self.user = user
        self.lock = threading.RLock()
        self.repositories: dict[tuple[str, str], _Repository] = {}
        self.commits: dict[str, HubCommit] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[HubRequest] = []
        # By repository id (None: every repository): ("status", 500), ("drop", 0), ("stall", seconds) or ("lose",
        # how many more commits are applied with their answer lost).
        self.commit_faults: dict[str | None, tuple[str, float]] = {}
        self._commit_counter = itertools.count()

    # Repositories and revisions

    def repository(self, repo_type: str, repo_id: str) -> _Repository:
        repository = self.repositories.get((repo_type, repo_id))
        if repository is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repository

    def create_repository(self, repo_type: str, repo_id: str, private: bool) -> tuple[_Repository, bool]:
        """Creates the repository with its initial commit; returns it and whether it is new."""
        with self.lock:
            if (repo_type, repo_id) in self.repositories:
                return self.repositories[(repo_type, repo_id)], False
            repository = _Repository(repo_type, repo_id, private, created_at=_now())
            initial = self.add_commit(
                parent=None,
                tree={".gitattributes": self.store_blob(INITIAL_GITATTRIBUTES)},
                title="initial commit",
                description="",
                token=None,
                user_agent=None,
            )
            repository.branches[DEFAULT_BRANCH] = initial.sha
            self.repositories[(repo_type, repo_id)] = repository
            return repository, True

    def resolve_revision(self, repository: _Repository, revision: str) -> str:
        """The commit sha a branch, tag, pull-request ref or (full) commit id names."""
        if revision in repository.branches:
            return repository.branches[revision]
        if revision in repository.tags:
            return repository.tags[revision]
        if (match := _PULL_REQUEST_REF.match(revision)) and int(match["number"]) in repository.pull_requests:
            return repository.pull_requests[int(match["number"])]
        if revision in self.commits and revision in self.history_shas(repository):
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def history_shas(self, repository: _Repository) -> set[str]:
        """Every commit reachable from the repository's refs."""
        heads = [*repository.branches.values(), *repository.tags.values(), *repository.pull_requests.values()]
        reachable = set()
        for sha in heads:
            while sha is not None and sha not in reachable:
                reachable.add(sha)
                sha = self.commits[sha].parent
        return reachable

    def history(self, sha: str) -> list[HubCommit]:
        """The commits from `sha` back to the first one, newest first."""
        commits = []
        while sha is not None:
            commits.append(self.commits[sha])
            sha = self.commits[sha].parent
        return commits

    # Commits and blobs

    def store_blob(self, content: bytes) -> str:
        sha = git_blob_sha(content)
        self.blobs[sha] = content
        return sha

    def add_commit(
        self,
        *,
        parent: str | None,
        tree: dict[str, str],
        title: str,
        description: str,
        token: str | None,
        user_agent: str | None,
    ) -> HubCommit:
        # A counter in the hash keeps two identical commits apart.
        seed = json.dumps([parent, sorted(tree.items()), title, description, next(self._commit_counter)])
        commit = HubCommit(
            sha=hashlib.sha1(seed.encode()).hexdigest(),
            title=title,
            description=description,
            parent=parent,
            tree=dict(tree),
            token=token,
            user_agent=user_agent,
            date=_now(),
        )
        self.commits[commit.sha] = commit
        return commit


def _stored_in_lfs(path: str) -> bool:
    """Whether the Hub would keep the file in LFS: the types the initial `.gitattributes` sends there (weights)."""
    return path.endswith((".safetensors", ".bin", ".pt", ".h5", ".parquet"))


def _tree_entry(path: str, blob_sha: str, size: int) -> dict[str, Any]:
    return {"type": "file", "oid": blob_sha, "size": size, "path": path}


def _folder_entry(path: str, tree: Mapping[str, str]) -> dict[str, Any]:
    # A stable id for the folder's content, standing in for git's tree object id.
    content = sorted((name, sha) for name, sha in tree.items() if name.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(json.dumps(content).encode()).hexdigest(), "size": 0, "path": path}


def _folders_of(tree: Mapping[str, str]) -> set[str]:
    folders = set()
    for path in tree:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return folders


def _read_operations(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The (key, value) lines of an NDJSON commit payload."""
    operations = []
    for line in body.splitlines():
        if line.strip():
            item = json.loads(line)
            operations.append((item["key"], item["value"]))
    return operations


class _HubRequestHandler(BaseHTTPRequestHandler):
    """Routes one request to the Hub endpoint it targets."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    server: _HubHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silences the per-request log line; requests are recorded in `HubTestServer.requests` instead."""

    # Plumbing

    @property
    def state(self) -> _HubState:
        return self.server.state

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def token(self) -> str | None:
        authorization = self.headers.get("Authorization", "")
        return authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else None

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self.body = self._read_body()
        self.status_sent = 500
        self.answer_lost = False  # set for a commit that is applied and then not answered
        if self._commit_fault_applied(method, url.path):
            return
        try:
            self._route(method, url.path)
        except HubError as error:
            self._send_error(error)
        except Exception as error:  # a server bug must reach the client as a 500, not a hang
            self._send_error(HubError(500, f"{type(error).__name__}: {error}"))
        with self.state.lock:
            self.state.requests.append(
                HubRequest(method, url.path, self.status_sent, self.token, self.headers.get("User-Agent"))
            )

    def _commit_fault_applied(self, method: str, path: str) -> bool:
        """Answers a commit with the injected fault, if any: an HTTP error, a dropped connection, or a stall. A
        commit whose answer is to be lost is applied as usual (False) and its success never sent."""
        commit = re.search(r"^/api/(?:models|datasets|spaces)/(.+)/commit/[^/]+$", path)
        if method != "POST" or commit is None:
            return False
        with self.state.lock:
            faults = self.state.commit_faults
            key = commit.group(1) if commit.group(1) in faults else None
            fault = faults.get(key)
            if fault is not None and fault[0] == "lose":
                if fault[1] <= 1:
                    del faults[key]
                else:
                    faults[key] = ("lose", fault[1] - 1)
                self.answer_lost = True
                return False
        if fault is None:
            return False
        kind, value = fault
        with self.state.lock:
            self.state.requests.append(HubRequest(method, path, 0, self.token, self.headers.get("User-Agent")))
        if kind == "status":
            self._send_error(HubError(int(value), "injected failure"))
        elif kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # no response at all, as a dropped connection
        else:
            time.sleep(value)  # a stalled server: nothing is sent for `value` seconds
            try:
                self._send_error(HubError(504, "stalled"))
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting, as it should
                self.close_connection = True
        return True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json_body(self) -> Any:
        return json.loads(self.body or b"{}")

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        if self.answer_lost and status < 300:  # applied, and the answer lost on its way: the connection drops
            self.status_sent = 0
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.status_sent = status
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _send_error(self, error: HubError) -> None:
        headers = {"X-Error-Message": error.message}
        if error.error_code:
            headers["X-Error-Code"] = error.error_code
        if error.repo_commit:
            headers["X-Repo-Commit"] = error.repo_commit
        self._send_json({"error": error.message}, error.status, headers)

    def _require_token(self) -> str:
        if self.token is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.token

    # Routing

    def _route(self, method: str, path: str) -> None:
        if path == "/api/whoami-v2" and method == "GET":
            return self._whoami()
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo()
        if path == "/api/repos/delete" and method == "DELETE":
            return self._delete_repo()
        if path == "/api/validate-yaml" and method == "POST":
            return self._send_json({"errors": [], "warnings": []})
        if path == "/api/agent-harnesses" and method == "GET":
            return self._send_json({"standardEnvVars": [], "harnesses": {}})
        if match := _API_REPO_ROUTE.match(path):
            repo_type = match["type"][:-1]
            repo_id = f"{unquote(match['namespace'])}/{unquote(match['name'])}"
            segments = [unquote(segment) for segment in (match["rest"] or "").split("/")[1:]]
            return self._route_repo_api(method, repo_type, repo_id, segments)
        if (match := _RESOLVE_ROUTE.match(path)) and method in ("GET", "HEAD"):
            repo_type = match["type"][:-1] if match["type"] else "model"
            repo_id = f"{unquote(match['namespace'])}/{unquote(match['name'])}"
            return self._resolve(repo_type, repo_id, unquote(match["revision"]), unquote(match["path"]))
        raise HubError(404, f"The test Hub does not serve {method} {path}")

    def _route_repo_api(self, method: str, repo_type: str, repo_id: str, segments: list[str]) -> None:
        action, arguments = (segments[0], segments[1:]) if segments else ("", [])
        with self.state.lock:
            repository = self.state.repository(repo_type, repo_id)
            if action == "" and method == "GET":
                return self._repo_info(repository, DEFAULT_BRANCH)
            if action == "revision" and method == "GET" and len(arguments) == 1:
                return self._repo_info(repository, arguments[0])
            if action == "preupload" and method == "POST" and len(arguments) == 1:
                return self._preupload(repository, arguments[0])
            if action == "commit" and method == "POST" and len(arguments) == 1:
                return self._commit(repository, arguments[0])
            if action == "paths-info" and method == "POST" and len(arguments) == 1:
                return self._paths_info(repository, arguments[0])
            if action == "tree" and method == "GET" and arguments:
                return self._tree(repository, arguments[0], "/".join(arguments[1:]))
            if action == "refs" and method == "GET" and not arguments:
                return self._refs(repository)
            if action == "commits" and method == "GET" and len(arguments) == 1:
                return self._list_commits(repository, arguments[0])
            if action == "branch" and len(arguments) == 1 and method in ("POST", "DELETE"):
                return self._branch(repository, arguments[0], method)
            if action == "tag" and len(arguments) == 1 and method in ("POST", "DELETE"):
                return self._tag(repository, arguments[0], method)
            if action == "settings" and method == "PUT":
                repository.private = bool(self._json_body().get("private", repository.private))
                return self._send_json({})
        raise HubError(404, f"The test Hub does not serve {method} /api/{repo_type}s/{repo_id}/{'/'.join(segments)}")

    # Account and repositories

    def _whoami(self) -> None:
        self._require_token()
        self._send_json(
            {
                "type": "user",
                "id": "0",
                "name": self.state.user,
                "fullname": self.state.user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def _repo_url(self, repository: _Repository) -> str:
        prefix = "" if repository.repo_type == "model" else f"{repository.repo_type}s/"
        return f"{self.endpoint}/{prefix}{repository.repo_id}"

    def _create_repo(self) -> None:
        self._require_token()
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        repo_id = f"{payload.get('organization') or self.state.user}/{payload['name']}"
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        repository, created = self.state.create_repository(repo_type, repo_id, private)
        url = self._repo_url(repository)
        if not created:
            # The client reads the url from this body too when `exist_ok=True`.
            self._send_json({"error": "You already created this repo", "url": url}, 409)
            return
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        self._require_token()
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.state.user}/{payload['name']}"
        with self.state.lock:
            self.state.repository(repo_type, repo_id)
            del self.state.repositories[(repo_type, repo_id)]
        self._send_json({})

    def _repo_info(self, repository: _Repository, revision: str) -> None:
        sha = self.state.resolve_revision(repository, revision)
        commit = self.state.commits[sha]
        siblings = [self._sibling(path, blob) for path, blob in sorted(commit.tree.items())]
        self._send_json(
            {
                "_id": hashlib.sha1(repository.repo_id.encode()).hexdigest()[:24],
                "id": repository.repo_id,
                "modelId": repository.repo_id,
                "author": repository.repo_id.split("/")[0],
                "sha": sha,
                "lastModified": commit.date,
                "createdAt": repository.created_at,
                "private": repository.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            }
        )

    def _sibling(self, path: str, blob: str) -> dict[str, Any]:
        """A file as `model_info(files_metadata=True)` lists it: weights (the types `.gitattributes` sends to LFS)
        carry their sha256 under `lfs`, as on the Hub; other files are known by their git blob id."""
        content = self.state.blobs[blob]
        sibling: dict[str, Any] = {"rfilename": path, "size": len(content), "blobId": blob}
        if _stored_in_lfs(path):
            sibling["lfs"] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
        return sibling

    # Uploads

    def _preupload(self, repository: _Repository, revision: str) -> None:
        self._require_token()
        try:
            tree = self.state.commits[self.state.resolve_revision(repository, revision)].tree
        except HubError:
            tree = {}  # a commit may create the branch (pull requests); nothing there to compare with
        files = []
        for file in self._json_body().get("files", []):
            entry = {"path": file["path"], "uploadMode": "regular", "shouldIgnore": False}
            if file["path"] in tree:
                entry["oid"] = tree[file["path"]]  # lets the client drop files that did not change
            files.append(entry)
        self._send_json({"files": files, "commitOid": repository.branches.get(revision)})

    def _commit(self, repository: _Repository, revision: str) -> None:
        token = self._require_token()
        operations = _read_operations(self.body)
        if not operations or operations[0][0] != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = operations[0][1]
        pull_request = None
        if self.query.get("create_pr") in ("1", "true", "True"):
            pull_request = max(repository.pull_requests, default=0) + 1
            parent = self.state.resolve_revision(repository, revision)
        else:
            parent = self.state.resolve_revision(repository, revision)
            if revision not in repository.branches and not _PULL_REQUEST_REF.match(revision):
                raise HubError(400, f"Commits go to a branch; {revision!r} is not one")
        if header.get("parentCommit") not in (None, parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        tree = dict(self.state.commits[parent].tree)
        for key, value in operations[1:]:
            self._apply_operation(tree, key, value)
        commit = self.state.add_commit(
            parent=parent,
            tree=tree,
            title=header.get("summary", ""),
            description=header.get("description", ""),
            token=token,
            user_agent=self.headers.get("User-Agent"),
        )
        pull_request_url = None
        if pull_request is not None:
            repository.pull_requests[pull_request] = commit.sha
            pull_request_url = f"{self._repo_url(repository)}/discussions/{pull_request}"
        elif (match := _PULL_REQUEST_REF.match(revision)) and int(match["number"]) in repository.pull_requests:
            repository.pull_requests[int(match["number"])] = commit.sha
        else:
            repository.branches[revision] = commit.sha
        self._send_json(
            {
                "success": True,
                "commitOid": commit.sha,
                "commitUrl": f"{self._repo_url(repository)}/commit/{commit.sha}",
                "pullRequestUrl": pull_request_url,
            }
        )

    def _apply_operation(self, tree: dict[str, str], key: str, value: dict[str, Any]) -> None:
        path = value["path"]
        if key == "file":
            content = value["content"].encode()
            tree[path] = self.state.store_blob(
                base64.b64decode(content) if value.get("encoding") == "base64" else content
            )
        elif key == "deletedFile":
            if path not in tree:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del tree[path]
        elif key == "deletedFolder":
            prefix = path.rstrip("/") + "/"
            for name in [name for name in tree if name.startswith(prefix)]:
                del tree[name]
        else:
            # LFS and Xet files never come: the preupload answer makes every file a regular one.
            raise HubError(400, f"The test Hub accepts file, deletedFile and deletedFolder lines, not {key!r}")

    def _branch(self, repository: _Repository, branch: str, method: str) -> None:
        self._require_token()
        if method == "DELETE":
            if branch not in repository.branches:
                raise HubError(404, f"Branch {branch} not found", "RevisionNotFound")
            del repository.branches[branch]
            return self._send_json({})
        if branch in repository.branches:
            raise HubError(409, f"Branch {branch} already exists")
        starting_point = self._json_body().get("startingPoint") or DEFAULT_BRANCH
        repository.branches[branch] = self.state.resolve_revision(repository, starting_point)
        self._send_json({})

    def _tag(self, repository: _Repository, name_or_revision: str, method: str) -> None:
        self._require_token()
        if method == "DELETE":
            if name_or_revision not in repository.tags:
                raise HubError(404, f"Tag {name_or_revision} not found", "RevisionNotFound")
            del repository.tags[name_or_revision]
            return self._send_json({})
        tag = self._json_body()["tag"]
        if tag in repository.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repository.tags[tag] = self.state.resolve_revision(repository, name_or_revision)
        self._send_json({})

    # Listings

    def _paths_info(self, repository: _Repository, revision: str) -> None:
        sha = self.state.resolve_revision(repository, revision)
        tree = self.state.commits[sha].tree
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = self._json_body().get("paths", [])
        else:
            paths = parse_qs(self.body.decode()).get("paths", [])
        folders = _folders_of(tree)
        entries = []
        for path in paths:
            path = path.strip("/")
            if path in tree:
                entries.append(_tree_entry(path, tree[path], len(self.state.blobs[tree[path]])))
            elif path in folders:
                entries.append(_folder_entry(path, tree))
        self._send_json(entries)

    def _tree(self, repository: _Repository, revision: str, folder: str) -> None:
        sha = self.state.resolve_revision(repository, revision)
        tree = self.state.commits[sha].tree
        folder = folder.strip("/")
        recursive = self.query.get("recursive", "false").lower() in ("1", "true")
        prefix = f"{folder}/" if folder else ""
        folders = _folders_of(tree)
        if folder and folder not in folders:
            raise HubError(404, f"{folder} does not exist on {revision}", "EntryNotFound", repo_commit=sha)

        def listed(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        entries = [_folder_entry(path, tree) for path in sorted(folders) if listed(path)]
        entries += [
            _tree_entry(path, blob, len(self.state.blobs[blob])) for path, blob in sorted(tree.items()) if listed(path)
        ]
        if self.query.get("expand", "false").lower() in ("1", "true"):
            for entry in entries:
                entry["lastCommit"] = self._last_commit(sha, entry["path"])
        self._send_json(entries)

    def _last_commit(self, sha: str, path: str) -> dict[str, str]:
        """The newest commit that changed `path` (a file or a folder)."""

        def content(commit: HubCommit) -> list[tuple[str, str]]:
            return sorted(
                (name, blob) for name, blob in commit.tree.items() if name == path or name.startswith(path + "/")
            )

        history = self.state.history(sha)
        changed = history[-1]
        for commit, parent in itertools.pairwise(history):
            if content(commit) != content(parent):
                changed = commit
                break
        return {"id": changed.sha, "title": changed.title, "date": changed.date}

    def _refs(self, repository: _Repository) -> None:
        def refs(names: Mapping[Any, str], prefix: str) -> list[dict[str, str]]:
            return [{"name": str(name), "ref": f"{prefix}{name}", "targetCommit": sha} for name, sha in names.items()]

        self._send_json(
            {
                "branches": refs(repository.branches, "refs/heads/"),
                "converts": [],
                "tags": refs(repository.tags, "refs/tags/"),
                "pullRequests": refs(repository.pull_requests, "refs/pr/"),
            }
        )

    def _list_commits(self, repository: _Repository, revision: str) -> None:
        sha = self.state.resolve_revision(repository, revision)
        self._send_json(
            [
                {
                    "id": commit.sha,
                    "title": commit.title,
                    "message": commit.description,
                    "authors": [{"user": self.state.user}] if commit.token else [],
                    "date": commit.date,
                }
                for commit in self.state.history(sha)
            ]
        )

    # Downloads

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        with self.state.lock:
            repository = self.state.repository(repo_type, repo_id)
            sha = self.state.resolve_revision(repository, revision)
            blob = self.state.commits[sha].tree.get(path)
            if blob is None:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound", repo_commit=sha)
            content = self.state.blobs[blob]
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{blob}"',
            "X-Repo-Commit": sha,
        }
        if _stored_in_lfs(path):
            # As the Hub names an LFS file: by its sha256, which the client's cache then names its blob by.
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(content).hexdigest()}"'
            headers["X-Linked-Size"] = str(len(content))
        start, end = self._requested_range(len(content))
        if (start, end) == (0, len(content)):
            return self._send(200, content, headers)
        if start >= len(content):
            return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(content)}"})
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(content)}"
        self._send(HTTPStatus.PARTIAL_CONTENT, content[start:end], headers)

    def _requested_range(self, size: int) -> tuple[int, int]:
        """The [start, end) byte range of a `Range: bytes=a-b` header (whole file without one)."""
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match is None or not (match[1] or match[2]):
            return 0, size
        if not match[1]:  # a suffix: the last n bytes
            return max(size - int(match[2]), 0), size
        return int(match[1]), min(int(match[2]) + 1, size) if match[2] else size


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _HubState):
        super().__init__(("127.0.0.1", 0), _HubRequestHandler)
        self.state = state
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"


class HubTestServer:
    """A Hub on 127.0.0.1 with in-memory repositories, served from a background thread.

    Args:
        user: the account name every token belongs to; repositories created without a namespace go there.
    """

    def __init__(self, user: str = DEFAULT_USER):
        self._state = _HubState(user)
        self._server: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HubTestServer:
        """Binds a free port and serves in a daemon thread."""
        self._server = _HubHTTPServer(self._state)
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> HubTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The base URL to put in `HF_ENDPOINT`, e.g. `http://127.0.0.1:40123`."""
        if self._server is None:
            raise RuntimeError("The Hub test server is not running: use it as a context manager or call start()")
        return self._server.endpoint

    def fail_commits(self, kind: str | None, value: float = 0, repo_id: str | None = None) -> None:
        """Makes every commit (to `repo_id`, or to any repository) fail from now on: `"status"` answers HTTP `value`
        (e.g. 500), `"drop"` closes the connection without an answer, `"stall"` answers nothing for `value` seconds;
        `"lose"` applies the next `value` commit requests as usual but closes the connection instead of answering
        those that succeed (a response lost on its way: the client cannot tell whether its commit landed), then
        heals itself (`math.inf`: never); None heals the server (for `repo_id`, or everywhere)."""
        if kind not in (None, "status", "drop", "stall", "lose"):
            raise ValueError(f"unknown fault {kind!r}")
        if kind == "lose" and not value >= 1:
            raise ValueError(f"a lost answer needs a count of commits >= 1, got {value!r}")
        if kind is None and repo_id is None:
            self._state.commit_faults.clear()
        elif kind is None:
            self._state.commit_faults.pop(repo_id, None)
        else:
            self._state.commit_faults[repo_id] = (kind, value)

    def create_repo(self, repo_id: str, repo_type: str = "model", private: bool = False) -> str:
        """Creates a repository from the test side (as `HfApi.create_repo` would); returns its initial commit sha."""
        repository, _ = self._state.create_repository(repo_type, repo_id, private)
        return repository.branches[DEFAULT_BRANCH]

    def commit_files(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        message: str = "Upload files",
        deleted: tuple[str, ...] = (),
        branch: str = DEFAULT_BRANCH,
        repo_type: str = "model",
    ) -> str:
        """Commits files from the test side, e.g. to seed a repository a client then reads; returns the commit sha."""
        with self._state.lock:
            repository = self._state.repository(repo_type, repo_id)
            parent = self._state.resolve_revision(repository, branch)
            tree = dict(self._state.commits[parent].tree)
            tree.update({path: self._state.store_blob(content) for path, content in files.items()})
            for path in deleted:
                del tree[path]
            commit = self._state.add_commit(
                parent=parent, tree=tree, title=message, description="", token=None, user_agent=None
            )
            repository.branches[branch] = commit.sha
            return commit.sha

    def repo_ids(self, repo_type: str = "model") -> list[str]:
        with self._state.lock:
            return sorted(repo_id for kind, repo_id in self._state.repositories if kind == repo_type)

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH, repo_type: str = "model") -> dict[str, bytes]:
        """The files of a repository at a branch, tag or commit sha, as path -> content."""
        with self._state.lock:
            repository = self._state.repository(repo_type, repo_id)
            tree = self._state.commits[self._state.resolve_revision(repository, revision)].tree
            return {path: self._state.blobs[blob] for path, blob in sorted(tree.items())}

    def commits(self, repo_id: str, revision: str = DEFAULT_BRANCH, repo_type: str = "model") -> list[HubCommit]:
        """The history of a branch, oldest first; the first one is the repository's "initial commit"."""
        with self._state.lock:
            repository = self._state.repository(repo_type, repo_id)
            return self._state.history(self._state.resolve_revision(repository, revision))[::-1]

    def branches(self, repo_id: str, repo_type: str = "model") -> dict[str, str]:
        """Branch name -> commit sha."""
        with self._state.lock:
            return dict(self._state.repository(repo_type, repo_id).branches)

    @property
    def requests(self) -> list[HubRequest]:
        """Every request received so far, in order."""
        with self._state.lock:
            return list(self._state.requests)

    def request_counts(self, by: str = "token") -> Counter:
        """How many requests came per `token`, `origin` (`HF_HUB_USER_AGENT_ORIGIN`), `user_agent` or `method`."""
        return Counter(getattr(request, by) for request in self.requests)
