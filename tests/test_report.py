"""The report reads like a replication: the verdict table first (each row links to its section and
says what it checks), a table of contents, the experiments not run with their commands, incomplete
sweeps withheld, an empty store refused in one line; rendered in headless Chromium."""

import shutil
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ticketlab.config import ConfigError
from ticketlab.experiments import available
from ticketlab.report import write_report
from ticketlab.store import Store
from ticketlab.sweep import run_sweep
from ticketlab.verdicts import CATEGORIES

from test_sweep import tiny_fig4

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def fig4_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rep")
    exp, cfg = tiny_fig4(trials=3)
    db = tmp / "r.db"
    with Store(db) as st:
        run_sweep("fig4", cfg, st, progress=False)
    return db, len(exp.trials(cfg))


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links, self.tables, self.h2 = [], [], [], []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
        if tag == "table":
            self.tables.append(a.get("id"))
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2 and data.strip():
            self.h2.append(data.strip())
            self._in_h2 = False


def test_report_opens_with_the_replication_table_then_contents_then_not_run(fig4_store, tmp_path):
    db, _ = fig4_store
    res = write_report(db, tmp_path / "rep")
    text = Path(res["html"]).read_text()
    page = Page()
    page.feed(text)
    assert page.h2[:3] == ["Replication table", "Contents", "Not run"]
    assert page.tables[0] == "replication-table"
    # every verdict row links to a section that exists, and says its category and what it checked
    assert "fig4" in page.ids and set(page.links) <= set(page.ids)
    claims = res["sections"][0]["claims"]
    assert claims and all(c["verdict"] in CATEGORIES and c["check"] for c in claims)
    import html

    assert all(html.escape(c["check"]) in text for c in claims)
    # every other registered experiment is listed as not run, with its command
    missing = {x["name"] for x in res["not_run"]}
    assert missing == set(available()) - {"fig4"}
    for name in missing - {"fig11"}:
        assert f"ticketlab sweep {name} --store {db}" in text
    # Figure 11 is IMP on real data: its command is `ticketlab imp`, and no --scale hint follows it
    assert "<code>ticketlab imp --model lenet5 --data mnist:DIR" in text and "docs/results/deep" in text
    assert "ticketlab sweep fig11" not in text
    md = Path(res["markdown"]).read_text()
    assert md.index("## Replication table") < md.index("## Contents") < md.index("## Not run") < \
        md.index("## Figure 4")


def test_an_incomplete_sweep_withholds_its_verdicts(fig4_store, tmp_path):
    db, total = fig4_store
    part = tmp_path / "part.db"
    shutil.copy(db, part)
    with sqlite3.connect(part) as con:  # a sweep killed part way: drop some of its trials
        ids = [r[0] for r in con.execute("SELECT trial_id FROM trials ORDER BY trial_id")]
        con.executemany("DELETE FROM trials WHERE trial_id = ?", [(i,) for i in ids[: total // 3]])
    res = write_report(part, tmp_path / "rep")
    have = total - total // 3
    sec = res["sections"][0]
    assert sec["trials"] == have and sec["expected_trials"] == total
    assert all(c["verdict"] == "undecided" and f"{have} of {total} trials" in c["reason"] for c in sec["claims"])
    assert f"{have} of {total} trials" in Path(res["html"]).read_text()


def test_an_empty_store_is_refused_in_one_line(tmp_path):
    db = tmp_path / "empty.db"
    with Store(db):  # a store file with its tables and no rows
        pass
    with pytest.raises(ConfigError):
        write_report(db, tmp_path / "rep")
    out = subprocess.run([sys.executable, "-m", "ticketlab", "report", "--store", str(db), "--out",
                          str(tmp_path / "rep")], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "holds no results" in out.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_report_renders_in_headless_chromium(fig4_store, tmp_path):
    db, _ = fig4_store
    res = write_report(db, tmp_path / "rep")
    url = Path(res["html"]).resolve().as_uri()
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = Page()
    page.feed(dom.stdout)
    # what the browser built: the table first, every section, and the figure as a decoded image
    assert page.tables[0] == "replication-table"
    assert {"replication", "contents", "not-run", "fig4"} <= set(page.ids)
    assert dom.stdout.count("<tr>") >= 1 + len(res["sections"][0]["claims"])
    assert "data:image/png;base64," in dom.stdout
    shot = tmp_path / "report.png"
    run = subprocess.run(flags + ["--window-size=1200,1600", f"--screenshot={shot}", url], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and shot.stat().st_size > 20_000  # a page with a table and a figure, not blank
