"""The report: every figure from the store, our numbers beside the paper's, a verdict per claim.

Reads only the store (and the paper's read-off values); one self-contained HTML page (figures
embedded) and a Markdown twin with the figure files beside it. It opens with the replication table
(claim, verdict, the one line it checks, a link to its section, its verdict under each stored variant of
unstated choices), the choice sets (does one set reproduce every figure?), then a table of contents, the
experiments not run (with the command that runs each), and one section per experiment. The verdict
categories are ticketlab.verdicts' (docs/replication.md).
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

from .config import ConfigError
from .experiments import available, get_experiment
from .provenance import provenance
from .sensitivity import choice_sets, choice_sets_line, verdicts_under_variants
from .verdicts import CATEGORIES, withhold_incomplete

__all__ = [
    "paper_values", "experiment_section", "verdict_word", "CSS_CLASS", "not_run_command", "not_run_after", "SENSITIVITY_NOTE", "CHOICE_SETS_NOTE",
    "write_report",
]



def paper_values() -> dict:
    """The paper's read-off values (one reader, in plotting: figures may not import the report)."""
    from .plotting import paper_values as read

    return read()


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
    expected = len(exp.trials(cfg)) if exp.sweeps else len(df)
    claims = withhold_incomplete(exp.claims(cfg, summary, paper), int(len(df)), expected)
    sec = {"name": name, "title": exp.title, "config": cfg.model_dump(mode="json"), "scale": cfg.scale,
           "trials": int(len(df)), "expected_trials": int(expected), "summary": summary,
           "figures": [str(p) for p in figures], "claims": claims,
           "notes": exp.notes(cfg) + exp.summary_notes(cfg, summary)}
    if exp.sweeps:  # the variants of this config the store holds (ticketlab.sensitivity)
        from .sensitivity import stored_variants, variant_row

        variants = stored_variants(exp, cfg, store)
        if len(variants) > 1:
            sec["sensitivity"] = [variant_row(exp, v, store, paper, label, claims=claims if i == 0 else None)
                                  for i, (label, v) in enumerate(variants)]
    table = exp.table(cfg, summary)
    if table:
        sec["markdown"] = "```\n" + table + "\n```"
        sec["html"] = "<pre>" + html.escape(table) + "</pre>"
    return sec


def verdict_word(verdict) -> str:
    """A claim's verdict as the report and the CLI print it: one of the four categories (a legacy
    True/False/None maps to reproduced / not reproduced / undecided)."""
    if verdict in CATEGORIES:
        return verdict
    return {True: "reproduced", False: "not reproduced", None: "undecided"}[verdict]


#: verdict category -> CSS class of its badge in the HTML report
CSS_CLASS = {"reproduced": "ok", "trend only": "trend", "not reproduced": "no", "undecided": "na"}


def not_run_command(name: str, store) -> str:
    """The exact command that runs a missing experiment into this store (a folder of packed tables is
    read-only: run into an SQLite store, then pack it again)."""
    from .tables import is_tables

    hint = get_experiment(name).not_run_hint()  # an experiment with its own files says how it runs
    if hint:
        return hint[0]
    if is_tables(store):  # unpack to a store of one's own (the packing machine's path means nothing here)
        return (f"ticketlab unpack {store} --store paper.db && ticketlab sweep {name} --store paper.db && "
                f"ticketlab pack {store} --store paper.db --force")
    return f"ticketlab sweep {name} --store {store}"


def _cell(text) -> str:
    """A Markdown table cell: a '|' in the text (|xi|, a norm) would end the cell, so it is escaped."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code_spans(escaped: str) -> str:
    """Markdown `code` spans of an already escaped text as <code> elements."""
    import re

    return re.sub(r"`([^`]*)`", r"<code>\1</code>", escaped)


def not_run_after(name: str) -> str:
    """What the report says after a not-run experiment's command (markdown)."""
    hint = get_experiment(name).not_run_hint()
    return hint[1] if hint else "(add `--scale paper` for the paper's grid)"


def _trials_line(s: dict) -> str:
    if s.get("trials") is None:
        return ""
    if s.get("expected_trials") and s["trials"] < s["expected_trials"]:
        return f"{s['trials']} of {s['expected_trials']} trials (incomplete: verdicts withheld)"
    return f"{s['trials']} trials"


#: the text above each Sensitivity table of the report
SENSITIVITY_NOTE = ("The variants of this config that the store holds (same grids, other unstated choices), "
                    "each judged by the same rules; the first is the config shown above. Run more with "
                    "`ticketlab sensitivity FIG --vary ...` (docs/replication.md).")


#: the text above the report's Choice sets table
CHOICE_SETS_NOTE = ("Does one set of the choices the paper leaves unstated reproduce every figure? Each row is a "
                    "set the store holds: first the configs shown above, then each set of choices its variants "
                    "make (named by how they differ from each experiment's preset, e.g. `step_convention=K2`) over "
                    "the experiments where it was run, with its "
                    "verdict counts and the claims it turns reproduced or no longer reproduced against the shown "
                    "config. A set is judged only where it was run.")


def _sensitivity_cells(variants: list[dict]):
    """(variant, claim) pairs of a sensitivity table; a variant without results gets one empty row."""
    for v in variants:
        for c in v["claims"] or [{"claim": "(no results)", "verdict": "undecided", "check": ""}]:
            yield v, c


def _summary_counts(rows: list[dict]) -> str:
    counts = {c: sum(r["verdict"] == c for r in rows) for c in CATEGORIES}
    return ", ".join(f"{n} {c}" for c, n in counts.items())


def write_report(store_path, out_dir, experiments: list[str] | None = None,
                 title: str = "ticketlab report") -> dict:
    """Write report.html and report.md (+ figures/) under out_dir; returns {'html', 'markdown', 'sections',
    'not_run'}. A store that holds no results of any experiment is an error (one line), not an empty page."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    paper = paper_values()
    names = experiments or available()
    sections, not_run = [], []
    for name in names:
        fig_dir.mkdir(parents=True, exist_ok=True)
        sec = experiment_section(name, store_path, fig_dir, paper)
        if sec is None:
            not_run.append({"name": name, "title": get_experiment(name).title,
                            "command": not_run_command(name, store_path), "after": not_run_after(name)})
        else:
            sections.append(sec)
    if not sections:
        raise ConfigError(f"--store: must hold the results of at least one experiment (got {str(store_path)!r}, "
                          f"which holds no results): run `ticketlab reproduce --store {store_path}` or "
                          f"`ticketlab sweep FIG --store {store_path}`")
    prov = provenance()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    rows = [{**c, "name": s["name"], "title": s["title"],
             "others": verdicts_under_variants(c["claim"], s.get("sensitivity") or [], verdict_word)}
            for s in sections for c in s.get("claims", [])]
    sets = choice_sets(sections, verdict_word)
    sets_line = choice_sets_line(sets)
    about = ("Paper: Zhang, Wang, Liu, Chen, Xiong, *Why Lottery Ticket Wins? A Theoretical Perspective of Sample "
             "Complexity on Pruned Neural Networks*, NeurIPS 2021. Paper values are read off its figures; each "
             "comparison uses the tolerance stated beside the value in paper_figures.json.")
    legend = ("Verdicts: *reproduced* = our 95% interval lies within the paper's value +- its tolerance and the "
              "trend holds; *trend only* = the trend holds, the value does not (or the shape is off); *not "
              "reproduced* = the trend is reversed, or the value is clearly excluded; *undecided* = the interval is "
              "too wide, trials ran to the iteration cap, the sweep is incomplete, or the setting is not the "
              "paper's (the reason says which, and how many trials would decide). See docs/replication.md.")

    md = [f"# {title}", "", f"Generated {stamp} from `{store_path}` by ticketlab {prov['ticketlab_version']} "
          f"(commit {prov['git_commit']}), torch {prov['torch_version']}, on {prov['platform']}.", "", about, "",
          "## Replication table", "", f"{len(rows)} claims: {_summary_counts(rows)}.", "", legend, "",
          "| experiment | claim | verdict | check | why | other choices |", "|---|---|---|---|---|---|"]
    for c in rows:
        md.append(f"| [{c['name']}](#{c['name']}) | {_cell(c['claim'])} | **{verdict_word(c['verdict'])}** | "
                  f"{_cell(c.get('check', c.get('ours', '')))} | {_cell(c.get('reason', ''))} | {_cell(c['others'])} |")
    md += ["", "### Choice sets", "", CHOICE_SETS_NOTE, "", sets_line, "",
           "| choices | experiments | claims | " + " | ".join(CATEGORIES) + " | now reproduced | no longer reproduced |",
           "|---|---|---|" + "---|" * (len(CATEGORIES) + 2)]
    for r in sets:
        md.append(f"| {_cell(r['choices'])} | {', '.join(r['experiments'])} | {r['claims']} | "
                  + " | ".join(str(r["counts"][k]) for k in CATEGORIES)
                  + f" | {_cell('; '.join(r['gained']) or '-')} | {_cell('; '.join(r['lost']) or '-')} |")
    md += ["", "## Contents", ""]
    md += [f"- [{s['title']}](#{s['name']})" for s in sections]
    if not_run:
        md.append("- [Not run](#not-run)")
        md += ["", "## Not run", ""]
        md += [f"- **{x['name']}** ({x['title']}): `{x['command']}` {x['after']}" for x in not_run]
    for s in sections:
        md += ["", f"<a id='{s['name']}'></a>", "", f"## {s['title']}", ""]
        if s.get("scale") and s["scale"] != "paper":
            md.append(f"*Scale: {s['scale']}* - smaller than the paper's (d, N, grids or trial counts shrunk; "
                      "see the parameters below). Trends, not absolute values, are comparable.")
            md.append("")
        for f in s.get("figures", []):
            if f.endswith(".png"):
                md.append(f"![{s['name']}](figures/{Path(f).name})")
        md.append("")
        for c in s.get("claims", []):
            md.append(f"- **{verdict_word(c['verdict'])}**: {c['claim']}. Paper: {c['paper']}. Ours: {c['ours']}. "
                      f"Check: {c.get('check', '')}. {c.get('reason', '')}")
        md.append("")
        for n in s.get("notes", []):
            md.append(f"- {n}")
        if s.get("trials"):
            md.append(f"- {_trials_line(s)}.")
        if s.get("config"):
            md += ["", "<details><summary>parameters</summary>", "", "```json",
                   json.dumps(s["config"], indent=1), "```", "</details>"]
        if s.get("markdown"):
            md += ["", s["markdown"]]
        if s.get("sensitivity"):
            md += ["", f"### Sensitivity: {s['name']}", "", SENSITIVITY_NOTE, "",
                   "| variant | config | trials | claim | verdict | check | why |", "|---|---|---|---|---|---|---|"]
            for v, c in _sensitivity_cells(s["sensitivity"]):
                md.append(f"| {_cell(v['variant'])} | `{v['config_id'][:12]}` | {v['done']}/{v['asked']} | "
                          f"{_cell(c['claim'])} | **{verdict_word(c['verdict'])}** | "
                          f"{_cell(c.get('check') or c.get('ours') or '')} | {_cell(c.get('reason') or '')} |")
    md_text = "\n".join(md) + "\n"
    (out_dir / "report.md").write_text(md_text)

    e = html.escape
    h = ["<!doctype html><html><head><meta charset='utf-8'><title>%s</title>" % e(title),
         "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;font-size:85%}td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top}"
         ".ok{color:#075;font-weight:bold}.trend{color:#a60;font-weight:bold}.no{color:#b00;font-weight:bold}"
         ".na{color:#666;font-weight:bold}.why{color:#555}img{max-width:100%}"
         "pre{background:#f6f6f6;padding:.5em;overflow:auto;font-size:80%}</style></head><body>",
         f"<h1>{e(title)}</h1>",
         f"<p>Generated {e(stamp)} from <code>{e(str(store_path))}</code> by ticketlab "
         f"{prov['ticketlab_version']} (commit {e(str(prov['git_commit']))}), torch "
         f"{prov['torch_version']}, on {e(prov['platform'])}.</p>",
         f"<p>{e(about).replace('*Why', '<i>Why').replace('Networks*', 'Networks</i>')}</p>",
         "<h2 id='replication'>Replication table</h2>",
         f"<p>{len(rows)} claims: {e(_summary_counts(rows))}.</p><p class='why'>{e(legend).replace('*', '')}</p>",
         "<table id='replication-table'><tr><th>experiment</th><th>claim</th><th>verdict</th><th>check</th>"
         "<th>why</th><th>other choices</th></tr>"]
    for c in rows:
        v = verdict_word(c["verdict"])
        h.append(f"<tr><td><a href='#{e(c['name'])}'>{e(c['name'])}</a></td><td>{e(c['claim'])}</td>"
                 f"<td class='{CSS_CLASS[v]}'>{e(v)}</td><td>{e(str(c.get('check', c.get('ours', ''))))}</td>"
                 f"<td class='why'>{e(str(c.get('reason', '')))}</td><td class='why'>{e(c['others'])}</td></tr>")
    h.append("</table>")
    h.append(f"<h3 id='choice-sets'>Choice sets</h3><p class='why'>{_code_spans(e(CHOICE_SETS_NOTE))}</p>"
             f"<p>{e(sets_line)}</p><table id='choice-sets-table'><tr><th>choices</th><th>experiments</th>"
             "<th>claims</th>" + "".join(f"<th>{e(k)}</th>" for k in CATEGORIES)
             + "<th>now reproduced</th><th>no longer reproduced</th></tr>" + "".join(
                 f"<tr><td>{e(r['choices'])}</td><td>{e(', '.join(r['experiments']))}</td><td>{r['claims']}</td>"
                 + "".join(f"<td>{r['counts'][k]}</td>" for k in CATEGORIES)
                 + f"<td>{e('; '.join(r['gained']) or '-')}</td><td>{e('; '.join(r['lost']) or '-')}</td></tr>"
                 for r in sets) + "</table>")
    h.append("<h2 id='contents'>Contents</h2><ul>" + "".join(
        f"<li><a href='#{e(s['name'])}'>{e(s['title'])}</a></li>" for s in sections)
        + ("<li><a href='#not-run'>Not run</a></li>" if not_run else "") + "</ul>")
    if not_run:
        h.append("<h2 id='not-run'>Not run</h2><ul>" + "".join(
            f"<li><b>{e(x['name'])}</b> ({e(x['title'])}): <code>{e(x['command'])}</code> "
            f"{_code_spans(e(x['after']))}</li>" for x in not_run) + "</ul>")
    for s in sections:
        h.append(f"<h2 id='{e(s['name'])}'>{e(s['title'])}</h2>")
        if s.get("scale") and s["scale"] != "paper":
            h.append(f"<p><i>Scale: {e(s['scale'])}</i> - smaller than the paper's; trends, not absolute "
                     "values, are comparable.</p>")
        for f in s.get("figures", []):
            if f.endswith(".png") and Path(f).exists():
                data = base64.b64encode(Path(f).read_bytes()).decode()
                h.append(f"<p><img alt='{e(s['name'])}' src='data:image/png;base64,{data}'></p>")
        if s.get("claims"):
            h.append("<table class='claims'><tr><th>claim</th><th>paper</th><th>ours</th><th>verdict</th>"
                     "<th>why</th></tr>" + "".join(
                         f"<tr><td>{e(c['claim'])}</td><td>{e(str(c['paper']))}</td><td>{e(str(c['ours']))}</td>"
                         f"<td class='{CSS_CLASS[verdict_word(c['verdict'])]}'>{e(verdict_word(c['verdict']))}</td>"
                         f"<td class='why'>{e(str(c.get('reason', '')))}</td></tr>" for c in s["claims"])
                     + "</table>")
        if s.get("notes") or s.get("trials"):
            h.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in s.get("notes", []))
                     + (f"<li>{e(_trials_line(s))}.</li>" if s.get("trials") else "") + "</ul>")
        if s.get("config"):
            h.append("<details><summary>parameters</summary><pre>"
                     + e(json.dumps(s["config"], indent=1)) + "</pre></details>")
        if s.get("html"):
            h.append(s["html"])
        if s.get("sensitivity"):
            h.append(f"<h3 id='{e(s['name'])}-sensitivity'>Sensitivity: {e(s['name'])}</h3><p class='why'>"
                     f"{e(SENSITIVITY_NOTE)}</p><table class='sensitivity'><tr><th>variant</th><th>config</th>"
                     "<th>trials</th><th>claim</th><th>verdict</th><th>check</th><th>why</th></tr>" + "".join(
                         f"<tr><td>{e(v['variant'])}</td><td><code>{e(v['config_id'][:12])}</code></td>"
                         f"<td>{v['done']}/{v['asked']}</td><td>{e(c['claim'])}</td>"
                         f"<td class='{CSS_CLASS[verdict_word(c['verdict'])]}'>{e(verdict_word(c['verdict']))}</td>"
                         f"<td>{e(str(c.get('check') or c.get('ours') or ''))}</td>"
                         f"<td class='why'>{e(str(c.get('reason') or ''))}</td></tr>"
                         for v, c in _sensitivity_cells(s["sensitivity"])) + "</table>")
    h.append("</body></html>")
    (out_dir / "report.html").write_text("\n".join(h))
    return {"html": str(out_dir / "report.html"), "markdown": str(out_dir / "report.md"), "sections": sections,
            "not_run": not_run}
