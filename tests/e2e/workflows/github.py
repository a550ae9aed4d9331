"""The smallest stand-in for the parts of GitHub itself that the workflows talk to over HTTP, on
loopback, recording every call. Nothing of tms-stack is here: these are GitHub's services.

- REST (what `github.rest.*` of actions/github-script and download-artifact's `run-id` path call):
  a pull request's head and changed files, the issue comments (list, create, update), a run's
  artifacts and their zip (a 302 to a blob URL, as GitHub answers).
- The artifact service (what upload-artifact calls: twirp `CreateArtifact` / `FinalizeArtifact`,
  and the signed blob URL it uploads to in Azure block-blob style). act v0.2.89's own artifact
  server cannot take what upload-artifact v7 (@actions/artifact 6) sends: its strict protobuf
  decoding refuses the new `mime_type` field ("Unexpected end of JSON input" in the action), and
  with that field dropped, every block upload fails its signature check ("Error unauthorized": the
  Azure client re-encodes the `+` of the signed URL's `expires`). The blobs are stored as
  ``<artifact dir>/<run id>/<name>/<name>.zip``, from which the REST listing reads.

What GitHub would do besides and the tests do themselves: run review-comment.yml when review
completes (``workflow_run``), build ``refs/pull/N/merge``, merge a pull request (a push to main),
start scheduled runs.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class PullRequest:
    number: int
    head_sha: str
    files: list[str]
    comments: list[dict[str, Any]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        self.send_response(status)
        if raw is None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        gh = self.server.github
        if path.startswith("/twirp/"):
            self._twirp(path, raw)
            return
        body = json.loads(raw) if raw else None
        gh.calls.append((self.command, path, body))
        status, answer, headers, blob = gh.answer(self.command, path, body)
        self._send(status, answer, headers, blob)

    def _twirp(self, path: str, raw: bytes) -> None:
        gh = self.server.github
        body = json.loads(raw or b"{}")
        method = path.rsplit("/", 1)[-1]
        gh.calls.append(("POST", path, body))
        run, name = body.get("workflowRunBackendId") or body.get("workflow_run_backend_id"), body.get("name")
        if method == "CreateArtifact":
            self._send(200, {"ok": True, "signedUploadUrl": f"{gh.url}/upload/{run}/{name}?sig=stand-in"})
        elif method == "FinalizeArtifact":
            blob = gh.artifact_dir / str(run) / name / f"{name}.zip"
            self._send(200 if blob.exists() else 404, {"ok": blob.exists(), "artifactId": str(gh.artifact_id(blob))})
        else:
            self._send(404, {"msg": f"not served by the stand-in: {method}"})

    def do_PUT(self) -> None:  # noqa: N802 - the base class's naming
        """The blob upload: `?comp=block&blockid=ID` stages a block, `?comp=blocklist` commits them."""
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        run, name = parts.path.split("/")[2:4]
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        gh = self.server.github
        blocks = gh.blocks.setdefault((run, name), {})
        if query.get("comp") == "block":
            blocks[query["blockid"]] = data
        else:
            if query.get("comp") == "blocklist":
                ids = re.findall(r"<(?:Latest|Committed|Uncommitted)>([^<]*)</", data.decode())
                data = b"".join(blocks[i] for i in ids)
            blob = gh.artifact_dir / run / name / f"{name}.zip"
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
        self._send(201, raw=b"", headers={"ETag": '"stand-in"', "Last-Modified": "Mon, 07 Dec 2026 00:00:00 GMT"})

    do_GET = _handle
    do_POST = _handle
    do_PATCH = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, github: GitHubStandIn):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.github = github


class GitHubStandIn:
    def __init__(self, repository: str, artifact_dir: Path):
        self.repository = repository
        self.artifact_dir = artifact_dir
        self.blocks: dict[tuple[str, str], dict[str, bytes]] = {}
        self.pulls: dict[int, PullRequest] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self._artifacts: dict[int, Path] = {}
        self._lock = threading.Lock()
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GitHubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def artifact_id(self, blob: Path) -> int:
        with self._lock:
            return self._id_unlocked(blob)

    def _id_unlocked(self, blob: Path) -> int:
        for aid, known in self._artifacts.items():
            if known == blob:
                return aid
        aid = len(self._artifacts) + 1
        self._artifacts[aid] = blob
        return aid

    def uploaded(self, run_id: int) -> dict[str, Path]:
        """name -> zip of what a run uploaded."""
        return {b.parent.name: b for b in sorted((self.artifact_dir / str(run_id)).glob("*/*.zip"))}

    # --- what the REST answers -------------------------------------------------------------------

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str] | None, bytes | None]:
        repo = f"/repos/{self.repository}"
        with self._lock:
            if m := re.fullmatch(rf"{repo}/pulls/(\d+)", path):
                pr = self.pulls[int(m[1])]
                return 200, {"number": pr.number, "head": {"sha": pr.head_sha}}, None, None
            if m := re.fullmatch(rf"{repo}/pulls/(\d+)/files", path):
                return 200, [{"filename": f, "status": "modified"} for f in self.pulls[int(m[1])].files], None, None
            if m := re.fullmatch(rf"{repo}/issues/(\d+)/comments", path):
                pr = self.pulls[int(m[1])]
                if method == "GET":
                    return 200, pr.comments, None, None
                comment = {"id": 1000 + sum(len(p.comments) for p in self.pulls.values()), "body": body["body"],
                           "user": {"login": "github-actions[bot]"}}
                pr.comments.append(comment)
                return 201, comment, None, None
            if m := re.fullmatch(rf"{repo}/issues/comments/(\d+)", path):
                comment = next(c for p in self.pulls.values() for c in p.comments if c["id"] == int(m[1]))
                comment["body"] = body["body"]
                return 200, comment, None, None
            if m := re.fullmatch(rf"{repo}/actions/runs/(\d+)/artifacts", path):
                found = [{"id": self._id_unlocked(blob), "name": name, "size_in_bytes": blob.stat().st_size,
                          "created_at": "2026-12-07T00:00:00Z"} for name, blob in self.uploaded(int(m[1])).items()]
                return 200, {"total_count": len(found), "artifacts": found}, None, None
            if m := re.fullmatch(rf"{repo}/actions/artifacts/(\d+)/zip", path):
                return 302, None, {"Location": f"{self.url}/blobs/{m[1]}"}, None
            if m := re.fullmatch(r"/blobs/(\d+)", path):
                return 200, None, {"Content-Type": "application/zip"}, self._artifacts[int(m[1])].read_bytes()
        return 404, {"message": f"not served by the stand-in: {method} {path}"}, None, None
