"""A stand-in for the Hugging Face Hub's upload API, for tests and benchmarks: no network.

It speaks what ``HfApi.create_repo`` and ``HfApi.upload_folder`` send (huggingface_hub 1.x/2.x):

- ``POST /api/repos/create``: makes the repo (409 when it exists, which ``exist_ok`` accepts);
- ``POST /api/validate-yaml``: the README's front matter must be a YAML mapping;
- ``POST /api/models/{repo}/branch/{branch}``: makes a branch (409 when it exists);
- ``POST /api/models/{repo}/preupload/{revision}``: ``lfs`` for ``*.safetensors``/``*.bin``
  and files of 10 MB or more, as the Hub's ``.gitattributes`` does, ``regular`` otherwise;
- ``POST /{repo}.git/info/lfs/objects/batch``: the LFS ``basic`` transfer, a PUT to
  ``/lfs-upload/{oid}`` here (without the token, as a presigned storage URL is);
- ``POST /api/models/{repo}/commit/{revision}``: the NDJSON commit; regular files arrive in
  it base64-encoded, LFS files by sha256, which must match bytes PUT before.

Point ``HF_ENDPOINT`` (read when huggingface_hub is imported) at ``base_url`` and set
``HF_HUB_DISABLE_XET=1``: with ``hf_xet`` installed, LFS files otherwise go to a Xet storage
service this stand-in does not speak. Every request must carry ``Authorization: Bearer
<token>`` (``refuse`` answers 401 to all). ``repos[repo_id]`` holds the files committed to any branch
(path -> bytes); ``authorizations`` every Authorization header seen; ``bodies`` every request
body, so a test can check the token went nowhere else. Run it in a thread
(``with FakeHubServer(token) as hub:``) or as a process: ``python -m
lm_guided_cot.testing.fake_hub --token T`` (prints the endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
from collections import Counter
from typing import Any

import yaml
from aiohttp import web

from lm_guided_cot.testing.local_server import LocalServer

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack")
LFS_MIN_SIZE = 10 * 1000 * 1000


class FakeHubServer(LocalServer):
    """See the module docstring."""

    name = "fake Hub server"

    def __init__(
        self, token: str, refuse: bool = False, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.token = token
        self.refuse = refuse
        super().__init__(host, port)
        self.repos: dict[str, dict[str, bytes]] = {}
        self.private: dict[str, bool] = {}
        self.branches: dict[str, set[str]] = {}
        self.commits: list[dict[str, Any]] = []  # each commit's header and its paths
        self.lfs: dict[str, bytes] = {}  # oid -> bytes PUT
        self.authorizations: Counter[str] = Counter()
        self.bodies: list[bytes] = []
        self.requests: list[str] = []  # "METHOD path", in order

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- lifecycle (as FakeLLMServer) ----------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record], client_max_size=1 << 30)
        app.router.add_post("/api/repos/create", self._create)
        app.router.add_post("/api/validate-yaml", self._validate_yaml)
        app.router.add_post("/api/models/{repo:.+}/preupload/{revision}", self._preupload)
        app.router.add_post("/api/models/{repo:.+}/commit/{revision}", self._commit)
        app.router.add_post("/api/models/{repo:.+}/branch/{branch}", self._branch)
        app.router.add_post("/{repo:.+}.git/info/lfs/objects/batch", self._lfs_batch)
        app.router.add_put("/lfs-upload/{oid}", self._lfs_put)
        return app

    # ---- handlers ----------------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        self.bodies.append(await request.read())
        auth = request.headers.get("Authorization")
        if auth is not None:
            self.authorizations[auth] += 1
        if request.path.startswith("/lfs-upload/"):  # a presigned URL: no token wanted
            return await handler(request)
        if self.refuse or auth != f"Bearer {self.token}":
            # the Hub's own words for a bad token
            return web.json_response(
                {"error": "Invalid credentials in Authorization header"}, status=401
            )
        return await handler(request)

    async def _create(self, request: web.Request) -> web.Response:
        payload = await request.json()
        repo_id = "/".join(p for p in (payload.get("organization"), payload["name"]) if p)
        if repo_id in self.repos:
            # the Hub's 409 names the repo too: exist_ok reads its url
            return web.json_response(
                {"error": "You already created this model repo", "url": self._url(repo_id)},
                status=409,
            )
        self.repos[repo_id] = {}
        self.branches[repo_id] = {"main"}
        self.private[repo_id] = payload.get("visibility") == "private"
        return web.json_response({"url": self._url(repo_id), "name": repo_id})

    def _url(self, repo_id: str) -> str:
        return f"{self.base_url}/{repo_id}"

    async def _validate_yaml(self, request: web.Request) -> web.Response:
        """The README's front matter must be a YAML mapping (the Hub checks much more)."""
        content = (await request.json())["content"]
        problem = front_matter_problem(content)
        if problem:
            return web.json_response({"errors": [{"message": problem}]}, status=400)
        return web.json_response({"warnings": []})

    def _repo(self, request: web.Request) -> str | None:
        repo_id = request.match_info["repo"]
        return repo_id if repo_id in self.repos else None

    async def _preupload(self, request: web.Request) -> web.Response:
        if self._repo(request) is None:
            return _not_found()
        files = (await request.json())["files"]
        modes = [
            {
                "path": f["path"],
                "uploadMode": "lfs"
                if f["path"].endswith(LFS_SUFFIXES) or f["size"] >= LFS_MIN_SIZE
                else "regular",
                "shouldIgnore": False,
            }
            for f in files
        ]
        return web.json_response({"files": modes, "commitOid": "0" * 40})

    async def _branch(self, request: web.Request) -> web.Response:
        if self._repo(request) is None:
            return _not_found()
        branch = request.match_info["branch"]
        if branch in self.branches.setdefault(request.match_info["repo"], {"main"}):
            return web.json_response({"error": "Reference already exists"}, status=409)
        self.branches[request.match_info["repo"]].add(branch)
        return web.json_response({})

    async def _lfs_batch(self, request: web.Request) -> web.Response:
        if self._repo(request) is None:
            return _not_found()
        payload = await request.json()
        objects = [
            {
                "oid": o["oid"],
                "size": o["size"],
                "authenticated": True,
                "actions": {"upload": {"href": f"{self.base_url}/lfs-upload/{o['oid']}"}},
            }
            for o in payload["objects"]
        ]
        return web.json_response({"transfer": "basic", "objects": objects})

    async def _lfs_put(self, request: web.Request) -> web.Response:
        data = await request.read()
        oid = request.match_info["oid"]
        if hashlib.sha256(data).hexdigest() != oid:
            return web.json_response({"error": "sha256 mismatch"}, status=400)
        self.lfs[oid] = data
        return web.Response(status=200)

    async def _commit(self, request: web.Request) -> web.Response:
        repo_id = self._repo(request)
        if repo_id is None:
            return _not_found()
        if request.match_info["revision"] not in self.branches[repo_id]:
            return web.json_response({"error": "Invalid rev id"}, status=404)
        header: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        for line in (await request.read()).decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                header = value
            elif item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.lfs:
                    return web.json_response(
                        {"error": f"LFS object {value['oid']} was never uploaded"}, status=422
                    )
                files[value["path"]] = self.lfs[value["oid"]]
        self.repos[repo_id].update(files)
        oid = hashlib.sha1(json.dumps(sorted(files)).encode()).hexdigest()
        self.commits.append(
            {
                "repo": repo_id,
                "revision": request.match_info["revision"],
                **header,
                "paths": sorted(files),
            }
        )
        return web.json_response(
            {
                "commitUrl": f"{self.base_url}/{repo_id}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
            }
        )


def front_matter_problem(content: str) -> str | None:
    """What is wrong with a README's ``---`` YAML block, or ``None``."""
    if not content.startswith("---\n"):
        return None  # no metadata: the Hub only warns
    block, sep, _ = content[4:].partition("\n---\n")
    if not sep:
        return "the metadata block has no closing ---"
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as err:
        return f"the metadata is not YAML: {err}"
    if not isinstance(data, dict):
        return "the metadata must be a YAML mapping"
    return None


def _not_found() -> web.Response:
    return web.json_response(
        {"error": "Repository not found"}, status=404, headers={"X-Error-Code": "RepoNotFound"}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--refuse", action="store_true", help="answer 401 to every request")
    args = parser.parse_args()

    async def serve() -> None:
        server = FakeHubServer(args.token, refuse=args.refuse, port=args.port)
        await server.start_async()
        print(server.base_url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
