"""Markdown and standalone HTML report: claim table, metrics, notes and figures per run, and the
history of its claim metrics over the published runs of that suite, tier and machine class; and the
results page (``RESULTS.md``): each run's verdicts, what was scaled, and its figures."""

from __future__ import annotations

import base64
import html
import os
import shutil
from collections import Counter
from pathlib import Path

from runners.claims import n_label
from runners.errors import HarnessError
from runners.rundir import CONFIG, SUMMARY, atomic_write_text, load_summary


def fmt(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(x)


def claim_rows(summary: dict) -> list[list[str]]:
    ops = {"ge": ">=", "le": "<=", "approx": "~"}
    rows = []
    for c in summary["claims"]:
        value = fmt(c["value"])
        if c.get("ci") and c.get("n", 0) > 1:
            value += f" [{fmt(c['ci'][0])}, {fmt(c['ci'][1])}]"
        paper = fmt(c["paper_value"]) if c["paper_value"] is not None or not c.get("context") else "- (see source)"
        source = c["source"] + (f"; context: {c['context']}" if c.get("context") else "")
        rows.append([c["id"], c["metric"], paper, f"{ops[c['op']]} {fmt(c['threshold'])}" + _rule(c),
                     value, n_label(c), c["status"] + (f" ({c['reason']})" if c.get("reason") else ""), source])
    return rows


def _rule(claim: dict) -> str:
    return {"exact": " (every unit)", "rate": " (rate)"}.get(claim.get("rule", "mean"), "")


def invariant_rows(summary: dict) -> list[list[str]]:
    ops = {"ge": ">=", "le": "<="}
    return [[i["id"], f"{i['metric']} {ops[i['op']]} {fmt(i['bound'])}", i["status"]
             + (f" ({i['reason']})" if i.get("reason") else ""), i.get("source", "")]
            for i in summary.get("invariants", [])]


CLAIM_HEADER = ["claim", "metric", "paper", "threshold", "measured (95% CI)", "n", "status", "source"]
INVARIANT_HEADER = ["invariant (checked, not a claim)", "bound", "status", "source"]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class='{html.escape(c.split(' ')[0])}'>{html.escape(c)}</td>"
                                    for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(run_dirs: list[Path]):
    for run_dir in run_dirs:
        s = load_summary(run_dir)
        meta = (f"tier `{s['tier']}`, hardware `{s['hw_class']}` ({s['env'].get('cpu_model', '?')}), seeds "
                f"{s['seeds_done']} of {s['seeds']}, git `{s['env']['git_sha']}`, wall {s['wall_s']:.1f} s, started "
                f"{s['started_at']}" + "".join(f"; {k} per seed: " + ", ".join(f"`{str(v)[:12]}`" for v in vs)
                                                for k, vs in s.get("inputs", {}).items()))
        metrics = [[k, fmt(v), ", ".join(fmt(x) for x in s["samples"].get(k, []))] for k, v in s["metrics"].items()]
        yield run_dir, s, meta, metrics


def history_figure(summary: dict, out_prefix: Path) -> Path | None:
    """The claim metrics over every published run of this suite, tier and class (``runners.history``),
    drawn beside the report; None where the store has fewer than two such runs or cannot be read
    (the report never creates a store, and never fails for want of one)."""
    from runners import registry
    from runners.history import histories, plot
    from runners.tracking import tracking_uri

    uri = tracking_uri()
    try:
        runs, hist = histories(uri, registry.load(summary["suite"]), summary["tier"], summary["hw_class"])
    except Exception:  # a store that is down or foreign: the report is written without its history
        return None
    if len(runs) < 2 or not hist:
        return None
    path = Path(f"{out_prefix}_history_{summary['suite']}_{summary['tier']}.png")
    return plot(hist, path, f"{summary['suite']} / {summary['tier']} / {summary['hw_class']}: {len(runs)} runs")


def write_report(run_dirs: list[Path], out_prefix: Path) -> tuple[Path, Path]:
    sections = list(_sections(run_dirs))  # read (and validate) everything before writing anything
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    md = ["# paperclub report", ""]
    body = []
    for run_dir, s, meta, metrics in sections:
        title = f"{s['suite']} — status: {s['status']}"
        md += [f"## {title}", "", meta, ""]
        body.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(meta.replace('`', ''))}</p>")
        if s.get("reason"):
            md += [f"**Reason:** {s['reason']}", ""]
            body.append(f"<p><b>Reason:</b> {html.escape(s['reason'])}</p>")
        if s.get("notes"):
            md += ["What was scaled or substituted at this tier:", ""] + [f"- {n}" for n in s["notes"]] + [""]
            body.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in s["notes"]) + "</ul>")
        md += ["### Claims", "", _md_table(CLAIM_HEADER, claim_rows(s)), ""]
        body.append("<h3>Claims</h3>" + _html_table(CLAIM_HEADER, claim_rows(s)))
        if s.get("invariants"):
            md += ["### Invariants", "", _md_table(INVARIANT_HEADER, invariant_rows(s)), ""]
            body.append("<h3>Invariants</h3>" + _html_table(INVARIANT_HEADER, invariant_rows(s)))
        md += ["### Metrics (seed mean; per-seed values)", "", _md_table(["metric", "mean", "per seed"], metrics), ""]
        body.append("<h3>Metrics</h3>" + _html_table(["metric", "mean", "per seed"], metrics))
        history = history_figure(s, out_prefix)
        if history:
            md += ["### History (published runs of this suite, tier and machine class; red: beyond tolerance)", "",
                   f"![history]({os.path.relpath(history, out_prefix.parent)})", ""]
            body.append("<h3>History</h3><figure><img src='data:image/png;base64,"
                        f"{base64.b64encode(history.read_bytes()).decode()}' alt='history'></figure>")
        for fig in s["figures"]:
            path = Path(run_dir) / fig
            md += [f"![{fig}]({os.path.relpath(path, out_prefix.parent)})", ""]
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode()
                body.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(fig)}'>"
                            f"<figcaption>{html.escape(fig)}</figcaption></figure>")
    md_path, html_path = out_prefix.with_suffix(".md"), out_prefix.with_suffix(".html")
    atomic_write_text(md_path, "\n".join(md))
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "font-size:14px}td.pass{background:#e6f4ea}td.fail{background:#fce8e6}"
             "td.inconclusive,td.skipped{background:#fef7e0}img{max-width:100%}")
    atomic_write_text(html_path, f"<!doctype html><html><head><meta charset='utf-8'><title>paperclub report</title>"
                                 f"<style>{style}</style></head><body><h1>paperclub report</h1>"
                                 f"{''.join(body)}</body></html>\n")
    return md_path, html_path


RESULTS_HEADER = ["claim", "paper", "threshold", "measured (95% CI)", "n", "status"]
STATUS_ORDER = ("pass", "fail", "inconclusive", "skipped")


def status_counts(summary: dict) -> str:
    """'4 pass, 1 fail, 3 inconclusive': the claims' statuses, in a fixed order."""
    counts = Counter(c["status"] for c in summary["claims"])
    return ", ".join(f"{counts[k]} {k}" for k in STATUS_ORDER if counts[k]) or "no claims"


def keep_runs(run_dirs: list[Path], keep: Path) -> list[Path]:
    """Each run's summary, config and figures copied to ``keep/<suite>_<tier>`` (replacing what was there),
    so a results page and the runs it names can be committed together; a run already there stays as it is.
    Returns the copies' folders."""
    kept: dict[Path, tuple[Path, dict]] = {}
    for run_dir in map(Path, run_dirs):  # every run read and checked before anything is copied
        s = load_summary(run_dir)
        dest = Path(keep) / f"{s['suite']}_{s['tier']}"
        if dest in kept:
            raise HarnessError(f"two runs of {s['suite']} at tier {s['tier']!r} ({kept[dest][0]}, {run_dir}): "
                               f"{keep} keeps one of each")
        kept[dest] = run_dir, s
    for dest, (run_dir, s) in kept.items():
        if dest.resolve() != run_dir.resolve():
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for name in [SUMMARY, CONFIG, *s["figures"]]:
                if (run_dir / name).is_file():
                    shutil.copy2(run_dir / name, dest / name)
    return list(kept)


def write_results(run_dirs: list[Path], path: Path) -> Path:
    """``results_page`` written to ``path``."""
    path = Path(path)
    atomic_write_text(path, results_page(run_dirs, path))
    return path


def results_page(run_dirs: list[Path], path: Path) -> str:
    """The results page: an overview line per run, then per run where it came from, its claims (the source
    column left to the report), what was scaled and its figures (linked relative to the page at ``path``).
    Made from the runs' summaries, so the command that wrote it (first line) writes it again."""
    sections = list(_sections(run_dirs))
    dirs = " ".join(str(d) for d in run_dirs)
    path = Path(path)
    md = ["# Results", "", f"Written by `paperclub report --results {path.name} {dirs}` from those runs' "
          "summaries; `paperclub report` on the same runs gives every metric and source.", "",
          _md_table(["suite", "tier", "claims", "machine", "git"],
                    [[f"[{s['suite']}](#{s['suite']}-{s['tier']})", s["tier"], status_counts(s), s["hw_class"],
                      s["env"]["git_sha"]] for _, s, _, _ in sections]), ""]
    for run_dir, s, _, _ in sections:
        # no wall time: a run that found its models cached says nothing about how long the tier takes
        meta = (f"hardware `{s['hw_class']}` ({s['env'].get('cpu_model', '?')}), seeds {s['seeds_done']} of "
                f"{s['seeds']}, git `{s['env']['git_sha']}`, started {s['started_at']}")
        md += [f"## {s['suite']} ({s['tier']})", "", meta, ""]
        if s.get("reason"):
            md += [f"**Reason:** {s['reason']}", ""]
        rows = [row[:1] + row[2:7] for row in claim_rows(s)]  # without the metric name and the source
        md += [_md_table(RESULTS_HEADER, rows), ""]
        if s.get("notes"):
            md += ["<details><summary>What was scaled or substituted at this tier</summary>", ""]
            md += [f"- {n}" for n in s["notes"]] + ["", "</details>", ""]
        md += [f"![{fig}]({Path(os.path.relpath(Path(run_dir) / fig, path.parent)).as_posix()})"
               for fig in s["figures"] if (Path(run_dir) / fig).is_file()]
        md += [""] if s["figures"] else []
    return "\n".join(md)
