"""The report: every figure from the store, our numbers beside the paper's, a verdict per claim.

Reads only the store (and the paper's read-off values); one self-contained HTML page (figures
embedded) and a Markdown twin with the figure files beside it.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

from .experiments import available, get_experiment
from .provenance import provenance

PAPER_FIGURES = Path(__file__).resolve().parent / "paper_figures.json"  # shipped as package data


def paper_values() -> dict:
    return json.loads(PAPER_FIGURES.read_text())


def experiment_section(name: str, store, fig_dir: Path, paper: dict, cfg=None) -> dict | None:
    """Summary, figures and claims of one experiment from the store (a path); None if it holds no
    results of it."""
    exp = get_experiment(name)
    if not exp.has_results(store):
        return None
    cfg = cfg or exp.stored_config(store)
    if cfg is None:
        return None
    df = exp.load(cfg, store)
    if df.empty:
        return None
    summary = exp.summarize(cfg, df)
    figures = exp.plot(cfg, df, summary, Path(fig_dir))
    sec = {"name": name, "title": exp.title, "config": cfg.model_dump(mode="json"), "scale": cfg.scale,
           "trials": int(len(df)), "summary": summary, "figures": [str(p) for p in figures],
           "claims": exp.claims(cfg, summary, paper),
           "notes": exp.notes(cfg) + exp.summary_notes(cfg, summary)}
    table = exp.table(cfg, summary)
    if table:
        sec["markdown"] = "```\n" + table + "\n```"
        sec["html"] = "<pre>" + html.escape(table) + "</pre>"
    return sec


def verdict_word(verdict) -> str:
    """A claim's verdict (True, False, None) as the report and the CLI print it."""
    return {True: "supported", False: "NOT supported", None: "undecided"}[verdict]


def write_report(store_path, out_dir, experiments: list[str] | None = None,
                 title: str = "ticketlab report") -> dict:
    """Write report.html and report.md (+ figures/) under out_dir; returns {'html', 'markdown', 'sections'}."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paper = paper_values()
    sections = []
    for name in experiments or available():
        sec = experiment_section(name, store_path, fig_dir, paper)
        if sec is not None:
            sections.append(sec)
    prov = provenance()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    md = [f"# {title}", "", f"Generated {stamp} from `{store_path}` by ticketlab {prov['ticketlab_version']} "
          f"(commit {prov['git_commit']}), torch {prov['torch_version']}, on {prov['platform']}.", "",
          "Paper: Zhang, Wang, Liu, Chen, Xiong, *Why Lottery Ticket Wins? A Theoretical Perspective of Sample "
          "Complexity on Pruned Neural Networks*, NeurIPS 2021. Paper values are read off its figures by eye "
          "(about +-5%).", "", "## Verdicts", "", "| experiment | claim | paper | ours | verdict |", "|---|---|---|---|---|"]
    for s in sections:
        for c in s.get("claims", []):
            md.append(f"| {s['name']} | {c['claim']} | {c['paper']} | {c['ours']} | **{verdict_word(c['verdict'])}** |")
    for s in sections:
        md += ["", f"## {s['title']}", ""]
        if s.get("scale") and s["scale"] != "paper":
            md.append(f"*Scale: {s['scale']}* - smaller than the paper's (d, N, grids or trial counts shrunk; "
                      "see the parameters below). Trends, not absolute values, are comparable.")
            md.append("")
        for f in s.get("figures", []):
            if f.endswith(".png"):
                md.append(f"![{s['name']}](figures/{Path(f).name})")
        md.append("")
        for n in s.get("notes", []):
            md.append(f"- {n}")
        if s.get("trials"):
            md.append(f"- {s['trials']} trials.")
        if s.get("config"):
            md += ["", "<details><summary>parameters</summary>", "", "```json",
                   json.dumps(s["config"], indent=1), "```", "</details>"]
        if s.get("markdown"):
            md += ["", s["markdown"]]
    md_text = "\n".join(md) + "\n"
    (out_dir / "report.md").write_text(md_text)

    h = ["<!doctype html><html><head><meta charset='utf-8'><title>%s</title>" % html.escape(title),
         "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top}"
         ".ok{color:#075;font-weight:bold}.no{color:#b00;font-weight:bold}.na{color:#777}img{max-width:100%}"
         "pre{background:#f6f6f6;padding:.5em;overflow:auto;font-size:80%}</style></head><body>",
         f"<h1>{html.escape(title)}</h1>",
         f"<p>Generated {html.escape(stamp)} from <code>{html.escape(str(store_path))}</code> by ticketlab "
         f"{prov['ticketlab_version']} (commit {html.escape(str(prov['git_commit']))}), torch "
         f"{prov['torch_version']}, on {html.escape(prov['platform'])}.</p>",
         "<p>Paper: Zhang et al., <i>Why Lottery Ticket Wins? A Theoretical Perspective of Sample Complexity on "
         "Pruned Neural Networks</i>, NeurIPS 2021. Paper values are read off its figures by eye (about &plusmn;5%).</p>",
         "<h2>Verdicts</h2><table><tr><th>experiment</th><th>claim</th><th>paper</th><th>ours</th><th>verdict</th></tr>"]
    for s in sections:
        for c in s.get("claims", []):
            cls = {True: "ok", False: "no", None: "na"}[c["verdict"]]
            h.append(f"<tr><td>{s['name']}</td><td>{html.escape(c['claim'])}</td><td>{html.escape(str(c['paper']))}"
                     f"</td><td>{html.escape(str(c['ours']))}</td><td class='{cls}'>{verdict_word(c['verdict'])}</td></tr>")
    h.append("</table>")
    for s in sections:
        h.append(f"<h2 id='{s['name']}'>{html.escape(s['title'])}</h2>")
        if s.get("scale") and s["scale"] != "paper":
            h.append(f"<p><i>Scale: {html.escape(s['scale'])}</i> - smaller than the paper's; trends, not absolute "
                     "values, are comparable.</p>")
        for f in s.get("figures", []):
            if f.endswith(".png") and Path(f).exists():
                data = base64.b64encode(Path(f).read_bytes()).decode()
                h.append(f"<p><img alt='{s['name']}' src='data:image/png;base64,{data}'></p>")
        if s.get("notes") or s.get("trials"):
            h.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in s.get("notes", []))
                     + (f"<li>{s['trials']} trials.</li>" if s.get("trials") else "") + "</ul>")
        if s.get("config"):
            h.append("<details><summary>parameters</summary><pre>"
                     + html.escape(json.dumps(s["config"], indent=1)) + "</pre></details>")
        if s.get("html"):
            h.append(s["html"])
    h.append("</body></html>")
    (out_dir / "report.html").write_text("\n".join(h))
    return {"html": str(out_dir / "report.html"), "markdown": str(out_dir / "report.md"), "sections": sections}
