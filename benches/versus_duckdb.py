#!/usr/bin/env python3
"""dealledger against the analyst's shortcut (JSON Lines into DuckDB, then SQL), side by side.

Generates a history with `dealledger gen`, then measures, on the same file and in one run:

- ours: the release binary as a user runs it, one process per command (ingest, each report from
  a current checkpoint, replay, stats, audit deal), wall time and peak resident memory;
- DuckDB: `read_json` into a table in a database file, then the SQL of benches/duckdb/ in one
  warm process (the load once, each query `--runs` times).

It checks that both give the same figures (time in stage per stage, the pipeline's open deals,
amounts and weighted amounts per currency and stage, closed counts), then prints the table with
the ratios. DuckDB does less: no validity rules, no hash chain, no bitemporal view (`--known-at`),
no idempotency, no acknowledgement that survives a power cut. README says so.

    pip install duckdb==2.0.1
    cargo build --release
    python3 benches/versus_duckdb.py --deals 29000            # about 575 k events
    python3 benches/versus_duckdb.py --deals 476000           # about 9.4 M events
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SQL = HERE / "duckdb"
# A moment after every generated event: "now" for both sides.
NOW = "2030-01-01T00:00:00Z"


def sql(name, **values):
    return (SQL / f"{name}.sql").read_text().format(**values)


def run(cmd):
    """Runs `cmd` (not timed); exits with its error if it fails."""
    proc = subprocess.run(list(map(str, cmd)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")


def measured(cmd):
    """Runs `cmd` under a small wrapper process that reports the command's own wall time and peak
    resident memory (its RUSAGE_CHILDREN has exactly one child): (seconds, rss bytes, stdout)."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
        "t = time.perf_counter() - t\n"
        "sys.stderr.write(p.stderr.decode())\n"
        "sys.stdout.buffer.write(p.stdout)\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "open(int(sys.argv[1]), 'w').write(f'{t} {rss} {p.returncode}')\n"
    )
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", wrapper, str(w), *map(str, cmd)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, pass_fds=(w,))
    os.close(w)
    out, err = proc.communicate()
    with os.fdopen(r) as f:
        seconds, rss, code = f.read().split()
    if int(code) != 0 or proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({code}): {err.decode()[-2000:]}")
    return float(seconds), int(rss), out


def best_of(runs, cmd):
    """The fastest of `runs` runs of `cmd`, and the largest peak RSS; with the last output."""
    times, rss, out = [], 0, b""
    for _ in range(runs):
        t, r, out = measured(cmd)
        times.append(t)
        rss = max(rss, r)
    return min(times), statistics.median(times), rss, out


def tree_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def ours_time_in_stage(report):
    return {s["stage"]: (s["completed"], s["mean_days"], s["median_days"], s["p90_days"], s["max_days"],
                         s["open"]) for s in report["stages"] if s["completed"] or s["open"]}


def duck_time_in_stage(rows):
    out = {}
    for stage, completed, mean, median, p90, mx, open_ in rows:
        f = (lambda v: None if v is None else round(float(v), 6))
        out[stage] = (completed, f(mean), f(median), f(p90), f(mx), open_)
    return out


def ours_pipeline(report):
    per = report.get("by_currency") or [report]
    out = {}
    for c in per:
        cur = c["currency"]
        for s in c["stages"]:
            if s["deals"]:
                out[(cur, s["stage"])] = (s["deals"], f'{s["amount"]:.2f}', f'{s["weighted_amount"]:.2f}')
        for status, n in c["closed"].items():
            if n:
                out[(cur, status)] = (n,)
    return out


def duck_pipeline(rows):
    out = {}
    for cur, stage, deals, amount, weighted in rows:
        if stage in ("won", "lost", "disqualified"):
            out[(cur, stage)] = (deals,)
        else:
            out[(cur, stage)] = (deals, f"{amount:.2f}", f"{weighted:.2f}")
    return out


def same(what, ours, theirs):
    if ours != theirs:
        keys = sorted(set(ours) | set(theirs), key=str)
        diff = [(k, ours.get(k), theirs.get(k)) for k in keys if ours.get(k) != theirs.get(k)]
        sys.exit(f"{what}: the figures differ (key, ours, DuckDB): {diff[:10]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deals", type=int, default=29000, help="deals to generate (about 19.8 events each)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--as-of", default="2025-06-30T00:00:00Z", help="the past moment of the as-of figures")
    ap.add_argument("--runs", type=int, default=3, help="runs of each timed query or report; the fastest counts")
    ap.add_argument("--binary", default=str(HERE.parent / "target/release/dealledger"))
    ap.add_argument("--dir", help="where to put the files (default: a temporary directory, removed after)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    try:
        import duckdb
    except ImportError:
        sys.exit("needs DuckDB's Python package: pip install duckdb==2.0.1")
    binary = Path(args.binary)
    if not binary.exists():
        sys.exit(f"no {binary}: cargo build --release first, or pass --binary")
    temp = None
    if args.dir:
        root = Path(args.dir)
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
    else:
        temp = tempfile.TemporaryDirectory()
        root = Path(temp.name)
    events = root / "events.jsonl"
    data = root / "ledger"
    dl = [str(binary), "--data", str(data), "--now", NOW]
    print(f"generating {args.deals} deals (seed {args.seed}) into {events}", file=sys.stderr)
    run([binary, "gen", "--deals", args.deals, "--seed", args.seed, "--out", events])
    lines = sum(1 for _ in events.open("rb"))
    fig = {"events": lines, "deals": args.deals, "jsonl_bytes": events.stat().st_size, "duckdb": duckdb.__version__}

    # Ours: ingest, then the checkpoint made current by a first report, then every command.
    print(f"dealledger: ingest of {lines} events", file=sys.stderr)
    t, rss, _ = measured([*dl, "ingest", "--quiet", events])
    fig["ours_load_s"], fig["ours_load_rss"] = t, rss
    measured([*dl, "report", "pipeline", "--format", "json"])
    fig["ours_bytes"] = tree_bytes(data)
    reports = {
        "time_in_stage_now": ["report", "time-in-stage", "--format", "json"],
        "time_in_stage_past": ["report", "time-in-stage", "--as-of", args.as_of, "--format", "json"],
        "pipeline_now": ["report", "pipeline", "--format", "json"],
        "pipeline_past": ["report", "pipeline", "--as-of", args.as_of, "--format", "json"],
    }
    ours = {}
    for name, cmd in reports.items():
        print(f"dealledger: {name}", file=sys.stderr)
        best, median, rss, out = best_of(args.runs, [*dl, *cmd])
        fig[f"ours_{name}_s"], fig[f"ours_{name}_median_s"], fig[f"ours_{name}_rss"] = best, median, rss
        ours[name] = json.loads(out)
    for name, cmd in {"stats": ["stats"], "audit_deal": ["audit", "deal", "D-0000001"]}.items():
        best, _, rss, _ = best_of(args.runs, [*dl, *cmd])
        fig[f"ours_{name}_s"], fig[f"ours_{name}_rss"] = best, rss
    print("dealledger: replay", file=sys.stderr)
    t, rss, _ = measured([*dl, "replay"])
    fig["ours_replay_s"], fig["ours_replay_rss"] = t, rss

    # DuckDB: one warm process.
    print("duckdb: load", file=sys.stderr)
    db = root / "events.duckdb"
    con = duckdb.connect(str(db))
    started = time.perf_counter()
    con.execute(sql("load", events=events))
    con.execute("CHECKPOINT")
    fig["duckdb_load_s"] = time.perf_counter() - started
    fig["duckdb_bytes"] = db.stat().st_size
    unordered = con.execute(
        "SELECT count(*) FROM (SELECT recorded_at < lag(recorded_at) OVER (ORDER BY seq) AS back FROM events) "
        "WHERE back").fetchone()[0]
    if unordered:
        sys.exit(f"seq is not the file's order ({unordered} rows recorded before the one above them)")
    duck = {}
    for name, as_of in [("now", NOW), ("past", args.as_of)]:
        con.execute(sql("lifecycle", as_of=as_of))
        for report in ("time_in_stage", "pipeline"):
            query = sql(report, as_of=as_of)
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                rows = con.execute(query).fetchall()
                times.append(time.perf_counter() - started)
            fig[f"duckdb_{report}_{name}_s"] = min(times)
            duck[f"{report}_{name}"] = rows
    con.close()

    for when in ("now", "past"):
        same(f"time in stage ({when})", ours_time_in_stage(ours[f"time_in_stage_{when}"]),
             duck_time_in_stage(duck[f"time_in_stage_{when}"]))
        same(f"pipeline ({when})", ours_pipeline(ours[f"pipeline_{when}"]), duck_pipeline(duck[f"pipeline_{when}"]))
    fig["same_figures"] = True
    if temp:
        temp.cleanup()
    if args.json:
        print(json.dumps(fig, indent=2))
        return
    print_table(fig)


def print_table(f):
    n = f["events"]
    rows = [("bulk load of the JSON Lines file", f["ours_load_s"], f["duckdb_load_s"], True)]
    for report, label in (("time_in_stage", "time in stage"), ("pipeline", "pipeline")):
        for when, desc in (("now", "as of now"), ("past", "as of a past date")):
            rows.append((f"{label}, {desc}", f[f"ours_{report}_{when}_s"], f[f"duckdb_{report}_{when}_s"], True))
    print(f"{n:,} events ({f['jsonl_bytes'] / 1e6:,.0f} MB of JSON Lines), DuckDB {f['duckdb']}; "
          "ours: a whole CLI process each; DuckDB: the query in a warm process; fastest of the runs")
    print()
    print(f"| figure | dealledger | DuckDB | DuckDB / dealledger |")
    print("|---|---:|---:|---:|")
    for label, ours, theirs, _ in rows:
        rate = f" ({n / ours / 1e3:,.0f} k ev/s)" if label.startswith("bulk") else ""
        rate_d = f" ({n / theirs / 1e3:,.0f} k ev/s)" if label.startswith("bulk") else ""
        print(f"| {label} | {ours * 1e3:,.0f} ms{rate} | {theirs * 1e3:,.0f} ms{rate_d} | {theirs / ours:.2f}x |")
    print(f"| bytes on disk per event | {f['ours_bytes'] / n:.1f} | {f['duckdb_bytes'] / n:.1f} | "
          f"{f['duckdb_bytes'] / f['ours_bytes']:.2f}x |")
    print(f"| full replay of every projection | {f['ours_replay_s'] * 1e3:,.0f} ms "
          f"({n / f['ours_replay_s'] / 1e6:.1f} M ev/s) | (no equivalent) | |")
    print(f"| `stats` | {f['ours_stats_s'] * 1e3:,.0f} ms, {f['ours_stats_rss'] / 2**20:,.0f} MiB | | |")
    print(f"| `audit deal ID` | {f['ours_audit_deal_s'] * 1e3:,.0f} ms, {f['ours_audit_deal_rss'] / 2**20:,.0f} MiB | | |")
    reports = max(f[f"ours_{r}_{w}_rss"] for r in ("time_in_stage", "pipeline") for w in ("now", "past"))
    print(f"| one CLI report, peak resident | {reports / 2**20:,.0f} MiB | | |")
    print(f"| full replay, peak resident | {f['ours_replay_rss'] / 2**20:,.0f} MiB | | |")
    print()
    print("Both sides gave the same figures: time in stage per stage and the pipeline per currency and stage, "
          "as of now and as of the past date.")


if __name__ == "__main__":
    main()
