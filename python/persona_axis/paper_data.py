"""The paper's role data, fetched at run time and verified against the digests the project ships.

"The Assistant Axis" (Lu et al. 2026) publishes its 275 roles, the default role and the 240 shared
questions in github.com/safety-research/assistant-axis (``data/roles/instructions/*.json``,
``data/extraction_questions.jsonl``). The project does not ship those texts; it ships a manifest
(``data/assistant-axis.manifest.json``): the repository, the pinned commit and the sha256 of every
file the pipeline reads. This module

- takes the data from a tarball URL (by default GitHub's tarball of the pinned commit), a local
  tarball, or a local directory (an upstream checkout, or a copy of its ``data/`` directory);
- refuses a tarball with any entry that would escape its folder (absolute paths, ``..``, links
  pointing outside, device files), using tarfile's own ``data`` extraction filter;
- reads exactly the manifest's files, checks each digest, and writes them, and nothing else, to
  the output directory (``roles/instructions/*.json``, ``extraction_questions.jsonl``) with a
  ``source.json`` that says where they came from.

A missing file or a wrong digest fails with the file's path and both digests (exit 2); nothing is
written then. The output is complete or absent: it is assembled beside the target and renamed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import InputError

ROLES_SUBDIR = "roles/instructions"
QUESTIONS_FILE = "extraction_questions.jsonl"
SOURCE_FILE = "source.json"


class PaperDataError(InputError):
    """Bad source, tampered or missing file, or bad manifest; the message names it and the fix."""


@dataclass(frozen=True)
class Manifest:
    repository: str
    commit: str
    data_dir: str  # where the files sit in the repository (``data``)
    files: dict[str, str]  # path relative to data_dir -> sha256 hex
    path: str
    sha256: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_manifest(path: str | os.PathLike) -> Manifest:
    p = Path(path)
    try:
        raw = p.read_bytes()
        m = json.loads(raw)
    except OSError as e:
        raise PaperDataError(f"{p}: cannot read the manifest: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise PaperDataError(f"{p}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    for key in ("repository", "commit", "data_dir", "files"):
        if key not in m:
            raise PaperDataError(f"{p}: key {key!r} missing (regenerate it with `paper_data.py --write-manifest`)")
    files = m["files"]
    if not isinstance(files, dict) or not files:
        raise PaperDataError(f"{p}: 'files' must map relative paths to sha256 digests")
    for rel, digest in files.items():
        if not _safe_relative(rel) or not (isinstance(digest, str) and len(digest) == 64):
            raise PaperDataError(f"{p}: files[{rel!r}]: expected a relative path and a 64-hex sha256")
    if f"{ROLES_SUBDIR}/default.json" not in files or QUESTIONS_FILE not in files:
        raise PaperDataError(f"{p}: must list {ROLES_SUBDIR}/default.json and {QUESTIONS_FILE}")
    return Manifest(m["repository"], m["commit"], m["data_dir"], dict(files), str(p), sha256_bytes(raw))


def _safe_relative(rel: object) -> bool:
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def build_manifest(data_root: str | os.PathLike, repository: str, commit: str, data_dir: str = "data") -> dict:
    """The manifest of a directory laid out as the repository's ``data/`` (for maintainers)."""
    root = Path(data_root)
    rels = sorted(f"{ROLES_SUBDIR}/{p.name}" for p in (root / ROLES_SUBDIR).glob("*.json")) + [QUESTIONS_FILE]
    files = {rel: sha256_bytes((root / rel).read_bytes()) for rel in sorted(rels)}
    note = ("sha256 of the files the pipeline reads from the repository at this commit (paths under data_dir); "
            "the texts are fetched at run time (stages/paper-data.ts), never shipped")
    return {"note": note, "repository": repository, "commit": commit, "data_dir": data_dir, "files": files}


# --- sources: each returns {relative path: bytes} for the manifest's files it has ---------------------

def _tar_prefix(names: list[str], manifest: Manifest) -> str:
    """Where the data directory sits in the archive: '', 'data/', '<top>/' or '<top>/data/'."""
    marker = ROLES_SUBDIR + "/"
    found = set()
    for n in names:
        i = n.find(marker)
        if i < 0 or (i > 0 and n[i - 1] != "/"):
            continue
        prefix = n[:i]
        parts = [x for x in prefix.split("/") if x]
        if len(parts) <= 1 or (len(parts) == 2 and parts[1] == manifest.data_dir):
            found.add(prefix)
    if not found:
        raise PaperDataError(f"no {marker} in the archive: is it a tarball of {manifest.repository}?")
    return min(found, key=len)


def read_tarball(path: str | os.PathLike, manifest: Manifest, display: str) -> dict[str, bytes]:
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise PaperDataError(f"{display}: not a readable tar archive ({e})") from None
    with tar, tempfile.TemporaryDirectory(prefix="paper-data-dest-") as dest:
        members = tar.getmembers()
        for m in members:
            why = None
            if m.name.startswith("/") or ".." in m.name.split("/"):
                why = "an absolute path or a '..' component"  # data_filter would strip a leading '/': refuse it
            else:
                try:  # the stdlib's extraction policy, applied to every entry before anything is read
                    tarfile.data_filter(m, dest)
                except tarfile.FilterError as e:
                    why = f"{type(e).__name__}: {e}"
            if why:
                raise PaperDataError(f"{display}: archive entry {m.name!r} refused ({why}); "
                                     "the archive is not a plain tarball of the repository")
        prefix = _tar_prefix([m.name for m in members], manifest)
        by_name = {m.name: m for m in members}
        out: dict[str, bytes] = {}
        for rel in manifest.files:
            m = by_name.get(prefix + rel)
            if m is None or not (m.isfile() or m.issym() or m.islnk()):
                continue
            try:
                f = tar.extractfile(m)
            except (KeyError, tarfile.TarError):
                f = None
            if f is not None:
                out[rel] = f.read()
        return out


def read_directory(path: str | os.PathLike, manifest: Manifest) -> dict[str, bytes]:
    src = Path(path)
    root = src / manifest.data_dir if (src / manifest.data_dir / ROLES_SUBDIR).is_dir() else src
    if not (root / ROLES_SUBDIR).is_dir():
        raise PaperDataError(f"{src}: neither {manifest.data_dir}/{ROLES_SUBDIR}/ nor {ROLES_SUBDIR}/ is there; "
                             f"give a checkout of {manifest.repository} (or of its {manifest.data_dir}/ directory)")
    real_root = os.path.realpath(root)
    out: dict[str, bytes] = {}
    for rel in manifest.files:
        p = root / rel
        real = os.path.realpath(p)
        if os.path.commonpath([real, real_root]) != real_root:
            raise PaperDataError(f"{p}: a link pointing outside {root} ({real}); refusing it")
        if os.path.isfile(real):
            out[rel] = Path(real).read_bytes()
    return out


def download(url: str, to: Path, timeout: float = 60.0) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "persona-axis-paper-data"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r, open(to, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except urllib.error.HTTPError as e:
        raise PaperDataError(f"{url}: HTTP {e.code} {e.reason} (check paper_data.url, or set paper_data.source "
                             "to a local checkout or tarball)") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise PaperDataError(f"{url}: download failed: {reason} (offline? set paper_data.source to a local checkout "
                             "or tarball of the repository)") from None


# --- verify and write ---------------------------------------------------------------------------------

def verify(found: dict[str, bytes], manifest: Manifest, source: str) -> None:
    problems = []
    for rel, expected in sorted(manifest.files.items()):
        if rel not in found:
            problems.append(f"{rel}: missing (manifest sha256 {expected}, found none)")
            continue
        got = sha256_bytes(found[rel])
        if got != expected:
            problems.append(f"{rel}: sha256 {got} differs from the manifest's {expected}")
    if problems:
        shown = "\n  ".join(problems[:10]) + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise PaperDataError(
            f"{source}: {len(problems)} of {len(manifest.files)} file(s) do not match {manifest.path} "
            f"({manifest.repository}@{manifest.commit}):\n  {shown}\n"
            "(use the repository at that commit; never edit the manifest to fit other data)")


def write_output(out_dir: Path, found: dict[str, bytes], manifest: Manifest, source: str) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for rel in sorted(manifest.files):
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(found[rel])
        info = {"repository": manifest.repository, "commit": manifest.commit, "source": source,
                "manifest": os.path.basename(manifest.path), "manifest_sha256": manifest.sha256,
                "files": len(manifest.files), "roles_dir": ROLES_SUBDIR, "questions_file": QUESTIONS_FILE}
        (tmp / SOURCE_FILE).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def fetch(manifest: Manifest, out_dir: str | os.PathLike, *, url: str | None = None,
          source: str | None = None) -> dict:
    """Fetch from ``url`` (``{commit}`` is filled) or a local ``source`` (directory or tarball), verify, write."""
    out = Path(out_dir)
    if (url is None) == (source is None):
        raise PaperDataError("give exactly one of a URL or a local source")
    if url is not None:
        url = url.replace("{commit}", manifest.commit)
        with tempfile.TemporaryDirectory(prefix="paper-data-") as d:
            tgz = Path(d) / "repo.tar.gz"
            download(url, tgz)
            found = read_tarball(tgz, manifest, url)
        where = url
    else:
        p = Path(source)
        if p.is_dir():
            found = read_directory(p, manifest)
        elif p.is_file():
            found = read_tarball(p, manifest, str(p))
        else:
            raise PaperDataError(f"{source}: paper_data.source is neither a directory nor a file")
        where = str(p.resolve())
    verify(found, manifest, where)
    write_output(out, found, manifest, where)
    return {"files": len(manifest.files), "source": where, "commit": manifest.commit}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="persona-axis-paper-data", description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True, help="the sha256 manifest (data/assistant-axis.manifest.json)")
    ap.add_argument("--output-dir", help="where the verified files go")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--url", help="tarball URL; {commit} is replaced by the manifest's commit")
    src.add_argument("--source", help="a local checkout, a copy of its data/ directory, or a tarball")
    ap.add_argument("--write-manifest", metavar="DATA_DIR",
                    help="maintainers: write --manifest from a copy of the repository's data/ at --commit")
    ap.add_argument("--repository", default="safety-research/assistant-axis")
    ap.add_argument("--commit", help="with --write-manifest: the commit DATA_DIR holds")
    a = ap.parse_args(argv)
    try:
        if a.write_manifest:
            if not a.commit:
                raise PaperDataError("--write-manifest needs --commit")
            m = build_manifest(a.write_manifest, a.repository, a.commit)
            Path(a.manifest).write_text(json.dumps(m, indent=1) + "\n", encoding="utf-8")
            print(f"paper_data: wrote {a.manifest} ({len(m['files'])} files)", file=sys.stderr)
            return 0
        if not a.output_dir or not (a.url or a.source):
            raise PaperDataError("give --output-dir and one of --url / --source")
        manifest = load_manifest(a.manifest)
        r = fetch(manifest, a.output_dir, url=a.url, source=a.source)
    except PaperDataError as e:
        print(f"paper_data: error: {e}", file=sys.stderr)
        return 2
    print(f"paper_data: {r['files']} files of {manifest.repository}@{manifest.commit[:12]} verified "
          f"from {r['source']} -> {a.output_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
