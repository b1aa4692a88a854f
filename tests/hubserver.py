"""A small, in-memory, Hub-API-compatible HTTP server for testing publishing and downloading offline.

It speaks the subset of the Hugging Face Hub API that `huggingface_hub` (with `HF_HUB_DISABLE_XET=1`)
and `transformers` use to create a model repo, upload files (preupload → LFS batch → PUT → verify →
NDJSON commit), create branches, list files and download them (`/resolve/` with `X-Repo-Commit`,
`ETag`, `X-Linked-Etag`, `X-Linked-Size`). Commits get git-like oids (sha1 over parent, tree and
message); regular files are stored as git blobs, large or binary files as LFS objects behind
pointer files, as on the real Hub.

Every request is logged in `server.requests`; a request to a route it does not know is printed
to stderr and kept in `server.unknown_routes`, so a test sees at once what is missing.
`server.fail(route, status_or_"drop", times=None)` makes a route answer an error (or close the
connection without replying) to test failure handling.

    server = HubServer(token="hf_test").start()   # 127.0.0.1, a free port
    os.environ["HF_ENDPOINT"] = server.url        # in the child process that talks to it
    ...
    server.stop()
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

# Files stored through LFS whatever their size (the Hub's default .gitattributes), and the size above
# which any file goes through LFS.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".npy", ".npz", ".zip")
LFS_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob with this content."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that stands in the git tree for an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class StoredFile:
    """One file of a commit's tree: inline content (regular) or a pointer to an LFS object."""

    size: int
    blob_oid: str
    content: bytes | None = None
    lfs_sha256: str | None = None
    pointer_size: int | None = None


@dataclass
class Commit:
    """A commit: its oid, parent, message and full tree (path → file)."""

    oid: str
    parent: str | None
    message: str
    files: dict[str, StoredFile]
    created: float = field(default_factory=time.time)


@dataclass
class Repo:
    """A model repository: its branches (name → commit oid) and all its commits."""

    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        """The commit a branch name or a (full or abbreviated) commit oid points to."""
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [c for oid, c in self.commits.items() if oid.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        return None


class HttpError(Exception):
    """An error answer: status, message and the Hub's `X-Error-Code` header."""

    def __init__(self, status: int, message: str, error_code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.error_code = status, message, error_code


class HubServer:
    """The server: repos, LFS storage, request log and failure injection."""

    def __init__(self, token: str | None = None, user: str = "tester"):
        self.token = token
        self.user = user
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.unknown_routes: list[str] = []
        self.lfs_uploads: list[tuple[str, int]] = []  # (sha256, size) of every completed LFS PUT
        self.commit_payloads: list[dict] = []  # every accepted commit: header + operations
        self.failures: dict[tuple, list] = {}  # (route, repo or None) → [status or "drop", times left or None]
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.url = ""

    # ----- lifecycle -----
    def start(self, host: str = "127.0.0.1", port: int = 0) -> HubServer:
        """Serve in a background thread (port 0: a free port); `self.url` is the endpoint to use."""
        handler = type("BoundHandler", (Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="hubserver", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (later connections are refused)."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def fail(self, route: str, answer: int | str, times: int | None = None, repo: str | None = None) -> None:
        """Make `route` ("create", "preupload", "lfs-batch", "lfs-upload", "commit", "*", …) answer
        HTTP `answer`, or close the connection without replying when `answer == "drop"`; only for
        requests about `repo` when given, at most `times` times when given."""
        self.failures[(route, repo)] = [answer, times]

    # ----- repository helpers -----
    def create_repo(self, repo_id: str, private: bool = False) -> Repo:
        """A new repo whose first commit holds the default `.gitattributes` (as on the Hub)."""
        repo = Repo(repo_id, private)
        self.repos[repo_id] = repo
        files = {".gitattributes": StoredFile(len(GITATTRIBUTES), git_blob_oid(GITATTRIBUTES), GITATTRIBUTES)}
        self._add_commit(repo, "main", None, "initial commit", files)
        return repo

    def _add_commit(self, repo: Repo, branch: str, parent: str | None, message: str, files) -> Commit:
        tree = "\n".join(f"{path} {f.blob_oid}" for path, f in sorted(files.items()))
        oid = hashlib.sha1(f"tree {tree}\nparent {parent}\n\n{message}\n{time.time_ns()}".encode()).hexdigest()
        commit = Commit(oid, parent, message, files)
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    def put_file(self, repo_id: str, path: str, content: bytes, branch: str = "main", message: str | None = None) -> str:
        """Commit one file directly (test setup, e.g. a repo holding only a pickle); returns the commit oid."""
        repo = self.repos.get(repo_id) or self.create_repo(repo_id)
        head = repo.commits[repo.branches[branch]]
        files = dict(head.files)
        files[path] = self._store(path, content)
        return self._add_commit(repo, branch, head.oid, message or f"Upload {path}", files).oid

    def _store(self, path: str, content: bytes) -> StoredFile:
        if path.endswith(LFS_SUFFIXES) or len(content) > LFS_THRESHOLD:
            sha = hashlib.sha256(content).hexdigest()
            self.lfs_objects[sha] = content
            pointer = lfs_pointer(sha, len(content))
            return StoredFile(len(content), git_blob_oid(pointer), None, sha, len(pointer))
        return StoredFile(len(content), git_blob_oid(content), content)

    def file_content(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        """The bytes of a file at a revision (reads LFS objects through their pointer)."""
        stored = self.repos[repo_id].resolve(revision).files[path]
        return self.lfs_objects[stored.lfs_sha256] if stored.lfs_sha256 else stored.content

    def files(self, repo_id: str, revision: str = "main") -> list[str]:
        """The paths in a repo at a revision."""
        return sorted(self.repos[repo_id].resolve(revision).files)

    def upload_mode(self, path: str, size: int, sample: bytes) -> str:
        """"lfs" or "regular", by suffix, size or binary content (like the Hub's preupload answer)."""
        if path.endswith(LFS_SUFFIXES) or size > LFS_THRESHOLD or b"\0" in sample:
            return "lfs"
        return "regular"


class Handler(BaseHTTPRequestHandler):
    """Routes one request to the matching `route_*` method."""

    hub: HubServer
    protocol_version = "HTTP/1.1"

    ROUTES = [
        ("GET", r"/api/whoami-v2", "whoami"),
        ("GET", r"/api/agent-harnesses", "agent_harnesses"),
        ("POST", r"/api/repos/create", "create"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)", "commit"),
        ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/branch/(?P<rev>[^/]+)", "branch"),
        ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)/refs", "refs"),
        ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)", "model_info"),
        ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
        ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)", "paths_info"),
        ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)", "model_info"),
        ("POST", r"/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch", "lfs-batch"),
        ("POST", r"/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/verify", "lfs-verify"),
        ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "lfs-upload"),
        ("HEAD", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ("GET", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ]
    # Routes that change state need a valid token.
    WRITE_ROUTES = {"create", "preupload", "commit", "branch", "lfs-batch", "lfs-verify"}

    def log_message(self, format, *args):  # quiet: requests are recorded in hub.requests
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    # ----- plumbing -----
    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query)
        body = self._read_body()
        for route_method, pattern, name in self.ROUTES:
            match = re.fullmatch(pattern, parts.path)
            if route_method == method and match:
                break
        else:
            message = f"HUBSERVER: UNKNOWN ROUTE {method} {self.path}"
            print(message, file=sys.stderr, flush=True)
            self.hub.unknown_routes.append(f"{method} {self.path}")
            self._send_json(404, {"error": message})
            return
        params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
        status = 0
        try:
            repo = params.get("repo")
            if name == "create":
                payload = json.loads(body or b"{}")
                repo = f"{payload.get('organization') or self.hub.user}/{payload.get('name')}"
            injected = self._inject_failure(name, repo)
            if injected is not None:
                status = injected
                return
            if name in self.WRITE_ROUTES:
                self._check_token()
            status = getattr(self, "route_" + name.replace("-", "_"))(body=body, **params)
        except HttpError as error:
            status = error.status
            headers = {"X-Error-Code": error.error_code} if error.error_code else {}
            self._send_json(error.status, {"error": error.message}, headers, head_only=method == "HEAD")
        finally:
            self.hub.requests.append((method, parts.path, status))

    def _inject_failure(self, name: str, repo: str | None) -> int | None:
        """Answer with the injected failure for this route, if any; returns the status sent (0: dropped)."""
        with self.hub.lock:
            keys = [(name, repo), ("*", repo), (name, None), ("*", None)]
            rule = next((self.hub.failures[k] for k in keys if k in self.hub.failures), None)
            if rule is None or rule[1] == 0:
                return None
            answer, times = rule
            if times is not None:
                rule[1] = times - 1
        if answer == "drop":  # close the socket without a reply
            self.close_connection = True
            self.connection.shutdown(2)
            return 0
        error = {401: "Invalid credentials in Authorization header", 403: "You don't have the rights to write here",
                 404: "Not found"}.get(answer, "Internal Error (injected)")
        return self._send_json(answer, {"error": error}, head_only=self.command == "HEAD")

    def _check_token(self) -> None:
        if self.hub.token is None:
            return
        if self.headers.get("Authorization") != f"Bearer {self.hub.token}":
            raise HttpError(401, "Invalid credentials in Authorization header")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str, headers=None, head_only=False) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)
        return status

    def _send_json(self, status: int, payload, headers=None, head_only=False) -> int:
        return self._send(status, json.dumps(payload).encode(), "application/json", headers, head_only)

    def _repo(self, repo_id: str, write: bool = False) -> Repo:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not write and self.hub.token is not None and not self._authorized()):
            raise HttpError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ----- routes -----
    def route_whoami(self, body):
        if self.hub.token is not None and not self._authorized():
            raise HttpError(401, "Invalid credentials in Authorization header")
        return self._send_json(200, {"type": "user", "name": self.hub.user, "orgs": [], "auth": {"type": "access_token"}})

    def route_agent_harnesses(self, body):  # huggingface_hub's user-agent registry: empty here
        return self._send_json(200, {"standardEnvVars": [], "harnesses": {}})

    def route_create(self, body):
        payload = json.loads(body)
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        with self.hub.lock:
            if repo_id in self.hub.repos:
                return self._send_json(409, {"error": "You already created this model repo", "url": f"{self.hub.url}/{repo_id}"})
            private = payload.get("private") or payload.get("visibility") == "private"
            self.hub.create_repo(repo_id, private=bool(private))
        return self._send_json(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def route_validate_yaml(self, body):
        content = json.loads(body)["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        errors = []
        if match is None:
            errors.append({"message": "README.md has no YAML metadata block"})
        else:
            try:
                metadata = yaml.safe_load(match.group(1))
                if not isinstance(metadata, dict):
                    errors.append({"message": "metadata is not a mapping"})
            except yaml.YAMLError as error:
                errors.append({"message": f"invalid YAML: {error}"})
        return self._send_json(400 if errors else 200, {"errors": errors, "warnings": []})

    def route_preupload(self, body, repo, rev):
        stored = self._repo(repo, write=True).resolve(rev)
        answer = []
        for item in json.loads(body)["files"]:
            existing = stored.files.get(item["path"]) if stored else None
            mode = self.hub.upload_mode(item["path"], item["size"], base64.b64decode(item["sample"]))
            oid = None
            if existing is not None:
                oid = existing.lfs_sha256 if mode == "lfs" else existing.blob_oid
            answer.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return self._send_json(200, {"files": answer, "commitOid": stored.oid if stored else None})

    def route_lfs_batch(self, body, repo):
        self._repo(repo, write=True)
        payload = json.loads(body)
        objects = []
        for obj in payload["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs_objects:
                answer["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/{repo}.git/info/lfs/objects/verify", "header": {}},
                }
            objects.append(answer)
        return self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(), "application/vnd.git-lfs+json")

    def route_lfs_upload(self, body, oid):
        if hashlib.sha256(body).hexdigest() != oid:
            raise HttpError(400, f"uploaded content does not hash to {oid}")
        with self.hub.lock:
            self.hub.lfs_objects[oid] = body
            self.hub.lfs_uploads.append((oid, len(body)))
        return self._send(200, b"", "text/plain")

    def route_lfs_verify(self, body, repo):
        payload = json.loads(body)
        stored = self.hub.lfs_objects.get(payload["oid"])
        if stored is None or len(stored) != payload["size"]:
            raise HttpError(404, f"LFS object {payload['oid']} not found or of the wrong size")
        return self._send_json(200, {"success": True})

    def route_commit(self, body, repo, rev):
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), None)
        if header is None or not header.get("summary"):
            raise HttpError(400, "commit has no header with a summary")
        with self.hub.lock:
            repository = self._repo(repo, write=True)
            if rev not in repository.branches:
                raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            head = repository.commits[repository.branches[rev]]
            parent = header.get("parentCommit")
            if parent and not head.oid.startswith(parent):
                raise HttpError(412, f"parent commit {parent} is not the head of {rev} ({head.oid})")
            files = dict(head.files)
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    content = base64.b64decode(value["content"])
                    files[value["path"]] = StoredFile(len(content), git_blob_oid(content), content)
                elif key == "lfsFile":
                    data = self.hub.lfs_objects.get(value["oid"])
                    if data is None:
                        raise HttpError(422, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                    pointer = lfs_pointer(value["oid"], len(data))
                    files[value["path"]] = StoredFile(len(data), git_blob_oid(pointer), None, value["oid"], len(pointer))
                elif key in ("deletedFile", "deletedFolder"):
                    prefix = value["path"].rstrip("/")
                    for path in [p for p in files if p == prefix or p.startswith(prefix + "/")]:
                        del files[path]
                elif key != "header":
                    raise HttpError(400, f"unknown commit operation {key!r}")
            message = header["summary"] + ("\n\n" + header["description"] if header.get("description") else "")
            commit = self.hub._add_commit(repository, rev, head.oid, message, files)
            self.hub.commit_payloads.append({"repo": repo, "revision": rev, "oid": commit.oid, "lines": lines})
        return self._send_json(
            200, {"commitUrl": f"{self.hub.url}/{repo}/commit/{commit.oid}", "commitOid": commit.oid, "pullRequestUrl": None}
        )

    def route_branch(self, body, repo, rev):
        payload = json.loads(body) if body else {}
        with self.hub.lock:
            repository = self._repo(repo, write=True)
            if rev in repository.branches:
                raise HttpError(409, f"Reference refs/heads/{rev} already exists")
            start = self._commit(repository, payload.get("startingPoint") or "main")
            repository.branches[rev] = start.oid
        return self._send_json(200, {})

    def route_refs(self, body, repo):
        repository = self._repo(repo)
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid} for n, oid in repository.branches.items()]
        return self._send_json(200, {"branches": branches, "converts": [], "tags": []})

    def route_model_info(self, body, repo, rev="main"):
        repository = self._repo(repo)
        commit = self._commit(repository, rev)
        siblings = []
        for path, stored in sorted(commit.files.items()):
            sibling = {"rfilename": path, "size": stored.size, "blobId": stored.blob_oid}
            if stored.lfs_sha256:
                sibling["lfs"] = {"size": stored.size, "sha256": stored.lfs_sha256, "pointerSize": stored.pointer_size}
            siblings.append(sibling)
        info = {
            "id": repo, "modelId": repo, "author": repo.split("/")[0], "sha": commit.oid, "private": repository.private,
            "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created)),
        }
        return self._send_json(200, info)

    def _tree_entry(self, path: str, stored: StoredFile) -> dict:
        entry = {"type": "file", "oid": stored.blob_oid, "size": stored.size, "path": path}
        if stored.lfs_sha256:
            entry["lfs"] = {"oid": stored.lfs_sha256, "size": stored.size, "pointerSize": stored.pointer_size}
        return entry

    def route_tree(self, body, repo, rev, path=""):
        commit = self._commit(self._repo(repo), rev)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
        entries, folders = [], set()
        for file_path, stored in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                folders.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
            entries.append(self._tree_entry(file_path, stored))
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
        if prefix and not entries:
            raise HttpError(404, f"{path} not found at {rev}", "EntryNotFound")
        return self._send_json(200, entries)

    def route_paths_info(self, body, repo, rev):
        commit = self._commit(self._repo(repo), rev)
        form = parse_qs(body.decode())
        paths = form.get("paths", [])
        if not paths and body.strip().startswith(b"{"):
            paths = json.loads(body).get("paths", [])
        entries = [self._tree_entry(p, commit.files[p]) for p in paths if p in commit.files]
        return self._send_json(200, entries)

    def route_resolve(self, body, repo, rev, path):
        repository = self._repo(repo)
        commit = self._commit(repository, rev)
        stored = commit.files.get(path)
        if stored is None:
            raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.blob_oid}"', "Accept-Ranges": "none"}
        if stored.lfs_sha256:
            data = self.hub.lfs_objects[stored.lfs_sha256]
            headers.update({"X-Linked-Etag": f'"{stored.lfs_sha256}"', "X-Linked-Size": str(stored.size)})
        else:
            data = stored.content
        return self._send(200, data, "application/octet-stream", headers, head_only=self.command == "HEAD")


def hub_url(server: HubServer, repo_id: str, revision: str = "main", path: str = "") -> str:
    """The `/resolve/` URL of a file (for debugging by hand with curl)."""
    return f"{server.url}/{repo_id}/resolve/{quote(revision, safe='')}/{path}"


if __name__ == "__main__":  # run by hand: python tests/hubserver.py [PORT]
    server = HubServer().start(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f"serving a test Hub at {server.url} (HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1)", flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()
