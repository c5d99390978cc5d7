#!/usr/bin/env python3
"""Check the Grafana dashboards in this folder (standard library only).

    python3 dashboards/check_dashboards.py                 # check every *.json here
    python3 dashboards/check_dashboards.py --exprs         # also print every PromQL expr, one a line
    python3 dashboards/check_dashboards.py --promtool      # also parse every expr with promtool
    python3 dashboards/check_dashboards.py --metrics m.txt # metric names must be in this scrape
    python3 dashboards/check_dashboards.py a.json b.json   # check these files

Rules, for each dashboard:
- the file is valid JSON, with a non-empty `uid` unique across the files, a `title` and
  `schemaVersion` >= 39;
- `templating.list` defines a `datasource` variable of type `datasource` with query `prometheus`;
- every panel (rows included, nested row panels too) has a `gridPos` with integer x, y, w, h
  inside the 24-column grid, panel ids are unique and no two panels overlap;
- every panel that is not a row has datasource `${datasource}` (as a string, or as a
  {"uid": "${datasource}"} reference), a unit in fieldConfig.defaults, and at least one target
  with a non-empty `expr`; every target uses the same datasource and has a unique refId;
- every template variable used anywhere ($name, ${name}, ${name:format}, [[name]]) is defined;
  Grafana's built-ins ($__interval, ${__value.raw}, ...) are allowed.

`--exprs` prints the expressions as written (with $variables). `--promtool` substitutes the
variables and Grafana built-ins with sample values, writes the expressions as recording rules
to a temporary file and runs `promtool check rules` on it, so every expr is parsed by
Prometheus itself. `--metrics FILE` reads a Prometheus text exposition (e.g. `curl
http://127.0.0.1:9750/metrics > m.txt`) and requires every `chainwatch_*` metric name in the
exprs to appear in it (histogram `_bucket`, `_sum`, `_count` series included); indicator
families only appear once their indicator returned rows. Exit status: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MIN_SCHEMA_VERSION = 39
GRID_COLUMNS = 24
DATASOURCE_VAR = "${datasource}"

# $name, ${name}, ${name:format}, ${name.path}, [[name]], [[name:format]]
VAR_RE = re.compile(
    r"\$\{(?P<braced>[A-Za-z0-9_.]+)(?::[^}]*)?\}"
    r"|\[\[(?P<bracket>[A-Za-z0-9_.]+)(?::[^\]]*)?\]\]"
    r"|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
)

# Values used for `--promtool`: built-in interval variables and dashboard variables.
SAMPLE_VALUES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
}
SAMPLE_VARIABLE_VALUE = "S01"


def walk_panels(panels):
    """Every panel, including the panels nested in (collapsed) rows."""
    for p in panels or []:
        yield p
        if p.get("type") == "row":
            yield from walk_panels(p.get("panels"))


def strings(node, path="$"):
    """(json path, string) for every string in a JSON document."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from strings(v, f"{path}[{i}]")


def variables_used(text):
    for m in VAR_RE.finditer(text):
        name = m.group("braced") or m.group("bracket") or m.group("plain")
        yield name.split(".")[0]


def is_datasource_ref(ds):
    if isinstance(ds, str):
        return ds == DATASOURCE_VAR
    if isinstance(ds, dict):
        return ds.get("uid") == DATASOURCE_VAR
    return False


def panel_name(p):
    return f"panel {p.get('id')} {p.get('title')!r}"


def check_dashboard(path: Path, doc, errors: list[str]) -> None:
    def err(msg):
        errors.append(f"{path.name}: {msg}")

    if not isinstance(doc, dict):
        err("top level is not an object")
        return
    if not doc.get("uid"):
        err("no uid")
    if not doc.get("title"):
        err("no title")
    sv = doc.get("schemaVersion")
    if not isinstance(sv, int) or sv < MIN_SCHEMA_VERSION:
        err(f"schemaVersion {sv!r} < {MIN_SCHEMA_VERSION}")

    variables = (doc.get("templating") or {}).get("list") or []
    defined = {v.get("name") for v in variables}
    ds_vars = [v for v in variables if v.get("name") == "datasource"]
    if not ds_vars:
        err("no `datasource` template variable")
    else:
        v = ds_vars[0]
        if v.get("type") != "datasource" or v.get("query") != "prometheus":
            err("variable `datasource` must have type `datasource` and query `prometheus`")
    for v in variables:
        if v.get("type") == "query" and not is_datasource_ref(v.get("datasource")):
            err(f"variable {v.get('name')!r} does not query {DATASOURCE_VAR}")

    panels = list(walk_panels(doc.get("panels")))
    if not panels:
        err("no panels")
    ids = {}
    boxes = []
    for p in panels:
        name = panel_name(p)
        pid = p.get("id")
        if not isinstance(pid, int):
            err(f"{name}: no integer id")
        elif pid in ids:
            err(f"{name}: id {pid} also used by {ids[pid]}")
        else:
            ids[pid] = name
        g = p.get("gridPos")
        if not isinstance(g, dict) or not all(isinstance(g.get(k), int) for k in "xywh"):
            err(f"{name}: gridPos with integer x, y, w, h missing")
        else:
            if g["x"] < 0 or g["y"] < 0 or g["w"] <= 0 or g["h"] <= 0:
                err(f"{name}: gridPos {g} out of range")
            if g["x"] + g["w"] > GRID_COLUMNS:
                err(f"{name}: gridPos {g} wider than {GRID_COLUMNS} columns")
            for other, og in boxes:
                if (g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"]
                        and g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"]):
                    err(f"{name}: overlaps {other}")
            boxes.append((name, g))
        if p.get("type") == "row":
            continue
        if not is_datasource_ref(p.get("datasource")):
            err(f"{name}: datasource is not {DATASOURCE_VAR}")
        unit = ((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if not unit:
            err(f"{name}: no unit in fieldConfig.defaults")
        targets = p.get("targets") or []
        if not any(isinstance(t.get("expr"), str) and t["expr"].strip() for t in targets):
            err(f"{name}: no target with an expr")
        refs = set()
        for t in targets:
            if "datasource" in t and not is_datasource_ref(t["datasource"]):
                err(f"{name}: target {t.get('refId')} datasource is not {DATASOURCE_VAR}")
            ref = t.get("refId")
            if not ref or ref in refs:
                err(f"{name}: missing or duplicate refId {ref!r}")
            refs.add(ref)

    undefined: dict[str, list[str]] = {}
    for where, text in strings(doc):
        for var in variables_used(text):
            if var.startswith("__"):
                continue  # Grafana built-ins: $__interval, ${__value.raw}, ${__data.fields.x}
            if var not in defined:
                undefined.setdefault(var, []).append(where)
    for var, places in undefined.items():
        more = f" and {len(places) - 1} more places" if len(places) > 1 else ""
        err(f"variable ${var} is not defined (used at {places[0]}{more})")


def exprs(doc):
    for p in walk_panels(doc.get("panels")):
        for t in p.get("targets") or []:
            if isinstance(t.get("expr"), str) and t["expr"].strip():
                yield panel_name(p), t.get("refId"), t["expr"]
    for v in (doc.get("templating") or {}).get("list") or []:
        if v.get("type") == "query":
            q = v.get("query")
            yield f"variable {v.get('name')!r}", None, q.get("query") if isinstance(q, dict) else q


def substitute(expr):
    def repl(m):
        name = m.group("braced") or m.group("bracket") or m.group("plain")
        return SAMPLE_VALUES.get(name, SAMPLE_VARIABLE_VALUE)

    return VAR_RE.sub(repl, expr)


def label_values_to_promql(expr):
    """label_values(metric, label) is Grafana syntax: check its metric selector."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", expr, re.S)
    return m.group(1) if m else expr


def promtool_check(all_exprs, errors):
    promtool = shutil.which("promtool")
    if not promtool:
        errors.append("promtool not found on PATH")
        return
    lines = ["groups:", "  - name: dashboard-exprs", "    rules:"]
    for i, (_, _, _, expr) in enumerate(all_exprs):
        e = label_values_to_promql(substitute(expr))
        lines.append(f"      - record: dashboard:expr_{i}")
        lines.append(f"        expr: {json.dumps(e)}")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        name = f.name
    try:
        r = subprocess.run([promtool, "check", "rules", name], capture_output=True, text=True)
    finally:
        os.unlink(name)
    out = (r.stdout + r.stderr).strip()
    print(f"promtool check rules ({len(all_exprs)} exprs): {out.splitlines()[-1] if out else ''}",
          file=sys.stderr)
    if r.returncode != 0:
        errors.append(f"promtool check rules failed:\n{out}")


METRIC_RE = re.compile(r"\b(chainwatch_[A-Za-z0-9_]+)")


def exposition_names(text):
    """Metric names in a text exposition: sample names and # TYPE / # HELP names."""
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "#":
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                base = parts[2]
                names.add(base)
                if len(parts) >= 4 and parts[1] == "TYPE" and parts[3] in ("histogram", "summary"):
                    names.update(base + s for s in ("_bucket", "_sum", "_count"))
            continue
        names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def metrics_check(all_exprs, path, errors):
    try:
        known = exposition_names(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        errors.append(f"--metrics: {e}")
        return
    used = {}
    for dash, panel, _, expr in all_exprs:
        for name in METRIC_RE.findall(expr):
            used.setdefault(name, f"{dash} {panel}")
    for name, where in sorted(used.items()):
        if name not in known:
            errors.append(f"{where}: metric {name} is not in {path}")
    print(f"metric names: {len(used)} used, {len(set(used) - known)} unknown", file=sys.stderr)


def main(argv=None):
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="dashboards (default: *.json here)")
    ap.add_argument("--exprs", action="store_true", help="print every PromQL expr, one a line")
    ap.add_argument("--promtool", action="store_true", help="parse every expr with promtool")
    ap.add_argument("--metrics", metavar="FILE", help="exposition whose names the exprs may use")
    args = ap.parse_args(argv)
    files = args.files or sorted(here.glob("*.json"))
    if not files:
        print("no dashboards found", file=sys.stderr)
        return 1

    errors: list[str] = []
    uids: dict[str, Path] = {}
    all_exprs = []
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            errors.append(f"{path.name}: {e}")
            continue
        check_dashboard(path, doc, errors)
        uid = doc.get("uid") if isinstance(doc, dict) else None
        if uid:
            if uid in uids:
                errors.append(f"{path.name}: uid {uid!r} also used by {uids[uid].name}")
            uids[uid] = path
        if isinstance(doc, dict):
            all_exprs.extend((path.name, *e) for e in exprs(doc))

    if args.exprs:
        for _, _, _, expr in all_exprs:
            print(" ".join(expr.split()))
    if args.promtool:
        promtool_check(all_exprs, errors)
    if args.metrics:
        metrics_check(all_exprs, args.metrics, errors)

    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    status = "FAILED" if errors else "OK"
    print(f"{len(files)} dashboards, {len(all_exprs)} exprs: {status}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
