"""A local HTTP server answering the Hugging Face Hub endpoints that huggingface_hub uses to resolve,
check and download a model, for tests that drive the real client (HF_ENDPOINT=<url>):

  GET  /api/models?author=A                       list of {id}
  GET  /api/models/<id>[/revision/<rev>]          {id, sha, gated, private, siblings[, sizes with ?blobs=]}
  GET  /api/models/<id>/refs                      {branches, tags, converts} with targetCommit
  GET  /api/models/<id>/tree/<rev>[?recursive=]   [{type: file, path, size, oid, lfs?}]
  HEAD/GET /<id>/resolve/<rev>/<path>             X-Repo-Commit, ETag (git blob sha1, or the LFS
                                                  sha256 for *.safetensors), Content-Length,
                                                  Range -> 206 Content-Range (resume)

Errors carry X-Error-Code as the Hub does (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
A gated repository answers its files only with ``Authorization: Bearer <a known token>``.
``drop_after[path] = n`` makes the next GET of that file stop after n bytes (connection closed);
``fail_next[path] = k`` answers the next k GETs of that file with 500.
Every request is logged (method, path, Range, whether a token came) in ``hub.log``.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    gated: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class FakeHub:
    def __init__(self, tokens: tuple[str, ...] = ()):
        self.repos: dict[str, Repo] = {}
        self.tokens = set(tokens)
        self.log: list[dict] = []
        self.drop_after: dict[str, int] = {}
        self.fail_next: dict[str, int] = {}
        self._n = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- content ------------------------------------------------------------------------------------
    def commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main", gated: bool | None = None) -> str:
        """A new commit of ``files`` on ``branch`` (created or moved); returns its sha."""
        repo = self.repos.setdefault(repo_id, Repo())
        if gated is not None:
            repo.gated = gated
        self._n += 1
        h = hashlib.sha1(f"{repo_id}:{self._n}".encode())
        for name in sorted(files):
            h.update(name.encode() + git_blob_sha1(files[name]).encode())
        sha = h.hexdigest()
        repo.commits[sha] = dict(files)
        repo.branches[branch] = sha
        return sha

    def commit_dir(self, repo_id: str, directory: Path, branch: str = "main", gated: bool | None = None) -> str:
        files = {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file()}
        return self.commit(repo_id, files, branch, gated)

    def tag(self, repo_id: str, name: str, sha: str) -> None:
        self.repos[repo_id].tags[name] = sha

    def resolve(self, repo_id: str, rev: str) -> str | None:
        repo = self.repos[repo_id]
        if rev in repo.commits:
            return rev
        return repo.branches.get(rev) or repo.tags.get(rev)

    # --- server -------------------------------------------------------------------------------------
    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def requests(self, method: str | None = None, contains: str = "") -> list[dict]:
        with self._lock:
            return [r for r in self.log if (method is None or r["method"] == method) and contains in r["path"]]


def _file_entry(path: str, data: bytes) -> dict:
    e = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
    if path.endswith(LFS_SUFFIXES):
        e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return e


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    # --- helpers ------------------------------------------------------------------------------------
    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.hub.tokens

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), {"X-Error-Code": code, "X-Error-Message": message})

    # --- routing ------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        u = urlparse(self.path)
        path, query = unquote(u.path), parse_qs(u.query)
        with self.hub._lock:
            self.hub.log.append({"method": self.command, "path": path, "range": self.headers.get("Range"),
                                 "auth": bool(self.headers.get("Authorization"))})
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            return self._api(parts[2:], query)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._file(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
        self._error(404, "EntryNotFound", f"no route {path}")

    def _repo(self, repo_id: str):
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        return repo

    def _api(self, rest: list[str], query: dict) -> None:
        if not rest:
            author = (query.get("author") or [""])[0]
            return self._json([{"id": r, "modelId": r} for r in sorted(self.hub.repos) if r.split("/")[0] == author])
        repo_id = "/".join(rest[:2])
        repo = self._repo(repo_id)
        if repo is None:
            return
        tail = rest[2:]
        if tail == ["refs"]:
            refs = lambda d, kind: [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s} for n, s in d.items()]
            return self._json({"branches": refs(repo.branches, "heads"), "tags": refs(repo.tags, "tags"), "converts": []})
        rev = "main"
        if tail[:1] in (["revision"], ["tree"]):
            rev = tail[1] if len(tail) > 1 else "main"
        sha = self.hub.resolve(repo_id, rev)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        files = repo.commits[sha]
        if tail[:1] == ["tree"]:
            return self._json([_file_entry(p, d) for p, d in sorted(files.items())])
        blobs = (query.get("blobs") or [""])[0].lower() in {"true", "1"}
        siblings = []
        for p, d in sorted(files.items()):
            s = {"rfilename": p}
            if blobs:
                e = _file_entry(p, d)
                s.update(size=e["size"], blobId=e["oid"])
                if "lfs" in e:
                    s["lfs"] = {"sha256": e["lfs"]["oid"], "size": e["size"], "pointerSize": 134}
            siblings.append(s)
        self._json({"id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                    "gated": "manual" if repo.gated else False, "siblings": siblings})

    def _file(self, repo_id: str, rev: str, fpath: str) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return
        if repo.gated and not self._authorized():
            return self._error(401 if not self.headers.get("Authorization") else 403, "GatedRepo",
                               f"Access to model {repo_id} is restricted")
        sha = self.hub.resolve(repo_id, rev)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        data = repo.commits[sha].get(fpath)
        if data is None:
            return self._error(404, "EntryNotFound", f"{fpath} does not exist at {rev}")
        e = _file_entry(fpath, data)
        etag = e["lfs"]["oid"] if "lfs" in e else e["oid"]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if "lfs" in e:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and self.command == "GET":
            start = int(rng[6:].split("-")[0] or 0)
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if self.command == "GET" and self.hub.fail_next.get(fpath, 0) > 0:
            self.hub.fail_next[fpath] -= 1
            return self._error(500, "InternalError", "storage backend unavailable")
        drop = self.hub.drop_after.pop(fpath, None) if self.command == "GET" else None
        if drop is not None:
            # Announce the whole body, send part of it, close: a connection lost mid-file.
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(206 if start else 200, body, headers, ctype="application/octet-stream")
