"""`snakemake --report` after a small run against the fake server, opened in headless Chromium as a reader would.

Also what every job leaves for a user: a log that starts with version, config digest and server (no secrets),
and progress lines in the generation logs.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import make_workdir, snakemake
from fakeserver import FakeServer, Options

from evoselfcode.datagen.readers import read_jsonl

pytestmark = pytest.mark.workflow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PLOTS = ("ab_test", "name_rejects", "code_funnel", "code_lengths", "perplexity")
DESCRIPTIONS = [{"id": f"r{i}", "desc": f"Task {i}: return the {w} of a list of numbers."}
                for i, w in enumerate(["sum", "mean", "median", "maximum"])]  # fmt: skip
SECRET = "hunter2-password"
KEY = "sk-report-test-key"
# Shows each plot the way the report's own buttons do, then writes what loaded into the page for --dump-dom.
VIEWER = """<script>
window.addEventListener("load", () => {
  const wanted = %s, loaded = {};
  const step = (i) => {
    if (i === wanted.length) {
      const pre = document.createElement("pre"); pre.id = "evo-check"; pre.textContent = JSON.stringify(loaded);
      document.body.appendChild(pre); return;
    }
    const path = Object.keys(results).find((p) => p.endsWith("/" + wanted[i] + ".svg"));
    if (path === undefined) { loaded[wanted[i]] = "missing"; step(i + 1); return; }
    const cat = Object.keys(categories).find((c) => JSON.stringify(categories[c]).includes(path));
    if (cat !== undefined) app.showCategory(cat);
    app.setView({content: "img", contentPath: results[path].data_uri, resultPath: path});
    setTimeout(() => {
      const img = document.querySelector("#app img[src*='filename=" + wanted[i] + ".svg;']");
      loaded[wanted[i]] = img ? img.naturalWidth : "no img";
      step(i + 1);
    }, 500);
  };
  setTimeout(() => step(0), 500);
});
</script>"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with FakeServer(Options(seed=1)) as server:
        url = server.url.replace("http://", f"http://evo:{SECRET}@")
        config = f"""
api: {{base_url: "{url}", headers: {{X-Api-Key: "${{EVO_REPORT_KEY}}"}}, timeout: {{read: 5}}}}
namegen: {{n: 2}}
io: {{shard_size: 3, concurrency: 4}}
scoring: {{enabled: true}}
"""
        workdir = make_workdir(tmp_path_factory.mktemp("report"), DESCRIPTIONS, config)
        env = {"EVO_REPORT_KEY": KEY}
        proc = snakemake(workdir, env=env)  # the default target, as the README says
        assert proc.returncode == 0, proc.stderr[-4000:]
        proc = snakemake(workdir, "--report", "report.html", env=env)
        assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


def test_the_default_target_draws_every_plot_into_the_report(run):
    for name in PLOTS:
        svg = run / f"data/generated/report/{name}.svg"
        assert svg.read_text().startswith("<?xml") and svg.stat().st_size > 5000, name
    html = (run / "report.html").read_text()
    results = json.loads(re.search(r"var results = (\{.*?\});\n", html, re.S).group(1))
    assert {Path(p).stem for p in results} == set(PLOTS)
    captions = {Path(p).stem: r["caption"] for p, r in results.items()}
    assert "95% interval" in captions["ab_test"] and "scoring.enabled" in captions["perplexity"]


def test_without_scoring_there_is_no_perplexity_plot(run):
    (run / "configs/noscore.yaml").write_text("scoring: {enabled: false}\n")
    proc = snakemake(run, "-n", "--forceall", configs=("configs/test.yaml", "configs/noscore.yaml"),
                     env={"EVO_REPORT_KEY": KEY})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "rule plot_metrics" in text and "ab_test.svg" in text
    assert "perplexity.svg" not in text and "rule score_code" not in text


def with_viewer(page: Path, plots) -> str:
    """The report with VIEWER before its last </body> (the bundled scripts hold that string too)."""
    head, _, tail = page.read_text().rpartition("</body>")
    return head + VIEWER % json.dumps(list(plots)) + "</body>" + tail


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--virtual-time-budget=20000", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/install-chromium.sh)")
def test_the_report_renders_in_a_browser_and_shows_every_plot(run, tmp_path):
    page = run / "report.html"
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p1").stdout
    text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)).split())
    assert "Results" in text and "1. Names (stage A)" in text and "2. Code (stage B)" in text  # the app's menu
    assert "Loading Snakemake Report" not in text.replace("Loading Snakemake Report... Please enable", "")
    viewer = run / "view.html"
    viewer.write_text(with_viewer(page, PLOTS))
    dom = chromium("--dump-dom", viewer.as_uri(), profile=tmp_path / "p2").stdout
    loaded = json.loads(re.search(r'<pre id="evo-check">(.*?)</pre>', dom, re.S).group(1))
    assert all(isinstance(w, int) and w > 300 for w in loaded.values()), loaded  # each plot decoded, full width
    assert set(loaded) == set(PLOTS)
    shot = run / "report.png"
    first = run / "first.html"
    first.write_text(with_viewer(page, PLOTS[:1]))
    chromium(f"--screenshot={shot}", "--window-size=1400,900", first.as_uri(), profile=tmp_path / "p3")
    assert shot.stat().st_size > 20000  # a picture with the plot in it (look at it: report.png in the workdir)


def test_every_job_log_starts_with_version_config_digest_and_server_without_secrets(run):
    logs = sorted((run / "logs").glob("*/*.log"))
    rules = {p.parent.name for p in logs}
    assert {"generate_names", "merge_names", "merge_code_parts", "plot_metrics", "score_code"} <= rules
    digests = set()
    for log in logs:
        first = log.read_text().split("\n", 1)[0]
        m = re.search(r"evoselfcode \S+, config (\w{12}), server http://\*\*\*@127\.0\.0\.1:\d+, step ", first)
        assert m, (log, first)
        digests.add(m.group(1))
    (digest,) = digests  # one run, one config: the file the jobs read
    assert (run / f".evoselfcode/config-{digest}.json").exists()
    for path in [*logs, *(run / ".snakemake/log").glob("*.log")]:
        text = path.read_text()
        assert SECRET not in text and KEY not in text, path


def test_the_answer_store_holds_every_answer_and_no_secret(run):
    files = [p for p in (run / "data/store").rglob("*") if p.is_file()]
    assert files and not [p for p in files if SECRET.encode() in p.read_bytes() or KEY.encode() in p.read_bytes()]
    scored = read_jsonl(run / "data/generated/code/score_timing.jsonl")  # scoring's answers are stored too
    assert scored and all((run / "data/store/answers" / t["key"][:2] / t["key"][2:4] / f"{t['key']}.json").exists()
                          for t in scored)  # fmt: skip


def test_generation_logs_show_progress(run):
    for log in (run / "logs/generate_names").glob("*.log"):
        lines = [line for line in log.read_text().splitlines() if "evoselfcode.runner" in line]
        assert re.search(r"(\d+)/\1 requests, failed=0 \[", lines[-1]), lines
