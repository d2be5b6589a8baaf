#!/usr/bin/env python3
"""Record what DVC says of every dvc.yaml in the corpus: accepted or not, its stages and edges.

Dev-only (CI never needs DVC): run scripts/dev/record-dvc-graphs.sh, which installs the pinned DVC
into /tmp/dvcenv and calls this with it. Each entry is laid out as in its repository (SOURCES.md:
the dvc.yaml's folder inside a fresh `git init` + `dvc init` repository, with its params.yaml), and
DVC's own stage graph (dvc.repo.graph.build_graph via repo.index.graph) is read through its API.

Output (the committed fixture test/engine/fixtures/dvc-corpus-graphs.json): entry -> either
{"accepted": true, "stages": [names, sorted], "edges": [[upstream, downstream], ... sorted]} or
{"accepted": false, "error": first line}. Graphs only; no corpus text is copied.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import dvc
from dvc.repo import Repo


def layout(corpus):
    rows = {}
    with open(os.path.join(corpus, "SOURCES.md"), encoding="utf8") as f:
        for line in f:
            m = re.match(r"^\| (\d+) \| [^|]+ \| ([^|]+) \|", line)
            if m:
                rows[int(m.group(1))] = m.group(2).strip()
    return rows


def record(corpus, entry, rel):
    tmp = tempfile.mkdtemp(prefix="dvc-graph-")
    try:
        subprocess.run(["git", "init", "-q", tmp], check=True)
        subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp, check=True)
        d = os.path.join(tmp, os.path.dirname(rel))
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(corpus, entry, "dvc.yaml"), os.path.join(d, "dvc.yaml"))
        params = os.path.join(corpus, entry, "params.yaml")
        if os.path.exists(params):
            shutil.copy(params, os.path.join(d, "params.yaml"))
        try:
            repo = Repo(tmp)
            g = repo.index.graph
            stages = sorted(s.name for s in g.nodes)
            # DVC's edges point from a stage to the stage it depends on
            edges = sorted([up.name, down.name] for down, up in g.edges)
            return {"accepted": True, "stages": stages, "edges": edges}
        except Exception as e:  # noqa: BLE001 - DVC's verdict is what we record
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            return {"accepted": False, "error": re.sub(r"(\.\./)*" + re.escape(tmp.lstrip("/")) + "/", "", msg)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    rows = layout(corpus)
    res = {"dvc_version": dvc.__version__, "entries": {}}
    for entry in sorted(e for e in os.listdir(corpus) if re.match(r"^\d\d-", e)):
        res["entries"][entry] = {"path": rows[int(entry[:2])], **record(corpus, entry, rows[int(entry[:2])])}
        r = res["entries"][entry]
        print(entry, "accepted" if r["accepted"] else "rejected: " + r["error"], file=sys.stderr)
    with open(out, "w", encoding="utf8") as f:
        json.dump(res, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
