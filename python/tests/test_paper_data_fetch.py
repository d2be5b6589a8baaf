"""The paper_data stage's fetch-and-verify (persona_axis/paper_data.py, stages/paper-data.ts):
a real HTTP server serving a real tarball built from ../shared/assistant-axis laid out as the
upstream repository, tampered and missing files, local directory and tarball sources, archives with
escaping entries, and the default profile (params.yaml) planning the paper's 331,200 requests from
what the stage fetched."""
from __future__ import annotations

import functools
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SHARED_ASSISTANT_AXIS
from persona_axis import generate, paper_data

MANIFEST = ROOT / "data" / "assistant-axis.manifest.json"
COMMIT = json.loads(MANIFEST.read_text())["commit"]
TOP = f"assistant-axis-{COMMIT}"  # GitHub's tarball folder name

pytestmark = pytest.mark.skipif(not (SHARED_ASSISTANT_AXIS / "roles" / "instructions").is_dir(),
                                reason=f"the paper's data is not at {SHARED_ASSISTANT_AXIS}")


def make_tarball(path: Path, *, tamper: str | None = None, drop: str | None = None,
                 extra: list[tarfile.TarInfo] | None = None) -> Path:
    """A .tar.gz laid out as GitHub's tarball of the repository: <top>/data/roles/..., <top>/README.md."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(SHARED_ASSISTANT_AXIS / "README.md", arcname=f"{TOP}/README.md")
        for f in sorted(SHARED_ASSISTANT_AXIS.rglob("*")):
            if not f.is_file() or f.name == "README.md":
                continue
            rel = f.relative_to(SHARED_ASSISTANT_AXIS).as_posix()
            if rel == drop:
                continue
            data = f.read_bytes()
            if rel == tamper:
                data = data.replace(b"You are", b"You were", 1)
            info = tarfile.TarInfo(f"{TOP}/data/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real HTTP server on 127.0.0.1 serving a directory; yields (base_url, directory)."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "persona_axis.paper_data", "--manifest", str(MANIFEST), *args],
                          capture_output=True, text=True, timeout=120)


def test_manifest_matches_the_shared_copy_and_holds_no_text():
    m = paper_data.load_manifest(MANIFEST)
    assert m.commit == "a98961956072224eaf244eb289d6c01700b63795"
    assert len(m.files) == 277  # 275 roles + default.json + the questions file
    assert paper_data.build_manifest(SHARED_ASSISTANT_AXIS, m.repository, m.commit)["files"] == m.files
    text = MANIFEST.read_text()
    assert "You are" not in text and "eval_prompt" not in text


def test_download_over_http_verifies_and_writes_exactly_the_manifest_files(server, tmp_path):
    base, www = server
    make_tarball(www / f"{COMMIT}.tar.gz")
    out = tmp_path / "paper_data"
    r = run_cli("--url", f"{base}/{{commit}}.tar.gz", "--output-dir", str(out))
    assert r.returncode == 0, r.stderr
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == set(paper_data.load_manifest(MANIFEST).files) | {"source.json"}
    for rel in ("roles/instructions/pirate.json", "roles/instructions/default.json", "extraction_questions.jsonl"):
        assert (out / rel).read_bytes() == (SHARED_ASSISTANT_AXIS / rel).read_bytes()
    info = json.loads((out / "source.json").read_text())
    assert info["commit"] == COMMIT and info["source"] == f"{base}/{COMMIT}.tar.gz" and info["files"] == 277


def test_tampered_file_fails_naming_the_file_and_both_digests(server, tmp_path):
    base, www = server
    rel = "roles/instructions/pirate.json"
    make_tarball(www / "tampered.tar.gz", tamper=rel)
    out = tmp_path / "paper_data"
    r = run_cli("--url", f"{base}/tampered.tar.gz", "--output-dir", str(out))
    assert r.returncode == 2
    expected = paper_data.load_manifest(MANIFEST).files[rel]
    line = next(x for x in r.stderr.splitlines() if rel in x)
    got = [w for w in line.replace("'", " ").split() if len(w) == 64 and w != expected]
    assert expected in line and len(got) == 1, r.stderr
    assert not out.exists(), "nothing is written when verification fails"


def test_missing_file_fails_naming_it(server, tmp_path):
    base, www = server
    make_tarball(www / "missing.tar.gz", drop="roles/instructions/default.json")
    r = run_cli("--url", f"{base}/missing.tar.gz", "--output-dir", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "roles/instructions/default.json: missing" in r.stderr
    assert paper_data.load_manifest(MANIFEST).files["roles/instructions/default.json"] in r.stderr


def test_http_error_is_one_clear_line(server, tmp_path):
    base, _ = server
    r = run_cli("--url", f"{base}/nope.tar.gz", "--output-dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "HTTP 404" in r.stderr and "paper_data.source" in r.stderr


def test_local_directory_sources(tmp_path):
    # a copy of the data directory (the shared layout) ...
    out = tmp_path / "a"
    assert paper_data.fetch(paper_data.load_manifest(MANIFEST), out, source=str(SHARED_ASSISTANT_AXIS))["files"] == 277
    assert (out / "extraction_questions.jsonl").read_bytes() == (SHARED_ASSISTANT_AXIS / "extraction_questions.jsonl").read_bytes()
    # ... and a checkout (data/ under the repository root), through the CLI
    checkout = tmp_path / "checkout"
    shutil.copytree(SHARED_ASSISTANT_AXIS, checkout / "data")
    r = run_cli("--source", str(checkout), "--output-dir", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    # a tampered checkout fails like a tampered download
    (checkout / "data" / "extraction_questions.jsonl").write_text("{}\n")
    r = run_cli("--source", str(checkout), "--output-dir", str(tmp_path / "c"))
    assert r.returncode == 2 and "extraction_questions.jsonl: sha256" in r.stderr


def test_local_directory_link_pointing_outside_is_refused(tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(SHARED_ASSISTANT_AXIS, checkout)
    outside = tmp_path / "elsewhere.json"
    shutil.copy(SHARED_ASSISTANT_AXIS / "roles" / "instructions" / "pirate.json", outside)
    (checkout / "roles" / "instructions" / "pirate.json").unlink()
    os.symlink(outside, checkout / "roles" / "instructions" / "pirate.json")
    with pytest.raises(paper_data.PaperDataError, match="pointing outside"):
        paper_data.fetch(paper_data.load_manifest(MANIFEST), tmp_path / "o", source=str(checkout))


def _info(name: str, **kw) -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(i, k, v)
    return i


@pytest.mark.parametrize("entry", [
    _info("../escape.txt", size=1),
    _info("/etc/evil.txt", size=1),
    _info(f"{TOP}/data/../../up.txt", size=1),
    _info(f"{TOP}/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
    _info(f"{TOP}/rel-link", type=tarfile.SYMTYPE, linkname="../../outside"),
], ids=["dotdot", "absolute", "nested-dotdot", "abs-symlink", "escaping-symlink"])
def test_escaping_tar_entries_are_refused(tmp_path, entry):
    tgz = make_tarball(tmp_path / "evil.tar.gz", extra=[entry])
    r = run_cli("--source", str(tgz), "--output-dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "refused" in r.stderr and repr(entry.name) in r.stderr, r.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path.parent / "escape.txt").exists()


def test_default_profile_fetches_then_plans_the_papers_331200_requests(server, tmp_path):
    """params.yaml as shipped, with only `out` and the URL moved: the stage glue fetches over HTTP,
    and planning from what it wrote gives 275 x 5 x 240 + 5 x 240 requests."""
    base, www = server
    make_tarball(www / f"{COMMIT}.tar.gz")
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert p["paper_data"]["source"] == "download" and "{commit}" in p["paper_data"]["url"]
    old_out, new_out = p["out"], str(tmp_path / "olmo2-7b")
    assert p["roles_dir"].startswith(old_out + "/paper_data/") and p["questions_file"].startswith(old_out + "/paper_data/")
    p.update(out=new_out, roles_dir=p["roles_dir"].replace(old_out, new_out, 1),
             questions_file=p["questions_file"].replace(old_out, new_out, 1))
    p["paper_data"]["url"] = f"{base}/{{commit}}.tar.gz"
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(p))
    env = {**os.environ, "PIPELINE_PARAMS_FILES": str(profile), "PERSONA_PYTHON": sys.executable}
    r = subprocess.run([str(ROOT / "node_modules" / ".bin" / "tsx"), "stages/paper-data.ts", f"{new_out}/paper_data"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    a = generate.parse_args(["--roles-dir", p["roles_dir"], "--questions", p["questions_file"],
                             "--output-dir", str(tmp_path / "t"), "--model-display-name", p["model_display_name"]])
    by_role, names = generate.plan(a)
    assert len(names) == 276 and sum(map(len, by_role.values())) == 275 * 5 * 240 + 5 * 240 == 331_200
    assert {r.system_prompt for r in by_role["default"]} >= {"", "You are OLMo."}
