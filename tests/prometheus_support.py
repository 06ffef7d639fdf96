"""What the Prometheus tests share: the ops/ files, PromQL selector extraction, a real Prometheus on
loopback and its HTTP API (urllib only)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import REPO, free_port, wait_for

PROMETHEUS_DIR = REPO / "ops" / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
DASHBOARDS = sorted((REPO / "ops" / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
JOBS = ("hpcrl-broker", "hpcrl-archive", "hpcrl-trainer", "hpcrl-bencher")
"""The scrape jobs of prometheus.yml; the rules and the dashboard select by these names."""
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$problem": ".+"}
"""What Grafana would put in place of the dashboard's variables (the test Prometheus scrapes every second)."""

_MODIFIER_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?")
_NOT_METRICS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)


def metric_selectors(expr: str) -> list[str]:
    """Every vector selector of a PromQL expression (`name{matchers}` as written), in order. A PromQL
    identifier that is not a function or aggregation (followed by `(`), a keyword, a label name in a
    by/on/... list or part of a range `[...]` is a metric name; Grafana's label_values(selector, label)
    counts as its selector."""
    expr = re.sub(r"label_values\(([^,]*),[^)]*\)", r"(\1)", expr)
    expr = _MODIFIER_LISTS.sub(" ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    found = []
    for match in _SELECTOR.finditer(expr):
        name = match.group(1)
        following = expr[match.end() :].lstrip()
        if name.lower() in _NOT_METRICS or (following.startswith("(") and not match.group(2)):
            continue
        found.append(match.group(0).strip())
    return found


def metric_name(selector: str) -> str:
    return selector.split("{")[0].strip()


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(where, PromQL with Grafana's variables replaced, whether it must return data) for every query of
    a dashboard: panels and variables must show data on a running system; annotations need not."""

    def grafana(expr: str) -> str:
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"a Grafana variable this test does not know in {expr!r}"
        return expr

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", grafana(target["expr"]), True
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", grafana(annotation["expr"]), False
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(selector, label) is Grafana's, not PromQL
            query = re.sub(r"^label_values\((.*), *(\w+)\)$", r"count by (\2) (\1)", variable["query"]["query"])
            yield f"variable {variable['name']!r}", grafana(query), True


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=REPO)


class Prometheus:
    """A real Prometheus on 127.0.0.1 with the repository's prometheus.yml, its targets and paths moved to
    the test's (same jobs, labels and rule files), scraping every second."""

    def __init__(self, workdir: Path, static_targets: dict[str, str], sd_dir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        text = PROMETHEUS_YML.read_text()
        replacements = {
            "scrape_interval: 15s": "scrape_interval: 1s",
            "evaluation_interval: 15s": "evaluation_interval: 1s",
            "- rules/*.yml": f"- {PROMETHEUS_DIR / 'rules'}/*.yml",
            '"/var/lib/hpcrl/prometheus-targets/*.json"': f'"{sd_dir}/*.json"',
            **static_targets,
        }
        for old, new in replacements.items():
            assert text.count(old) == 1, f"prometheus.yml no longer has exactly one {old!r}: update this test"
            text = text.replace(old, new)
        self.config = workdir / "prometheus.yml"
        self.config.write_text(text)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert PROMETHEUS is not None
        self.log = open(self.workdir / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=self.log,
        )
        wait_for(self._ready, 20, "Prometheus to be ready", interval_s=0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None:
            self.log.close()

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises AssertionError with Prometheus's error otherwise."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) of a PromQL expression now."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]

    def targets_not_up(self) -> list[str]:
        """'job instance: last error' of every target not up, plus every job with no target yet."""
        active = self.api("targets", state="active")["activeTargets"]
        down = [f"{t['labels']['job']} {t['labels']['instance']}: {t['lastError'] or t['health']}" for t in active]
        down = [line for line, t in zip(down, active, strict=True) if t["health"] != "up"]
        missing = sorted(set(JOBS) - {t["labels"]["job"] for t in active})
        return down + [f"{job}: no target" for job in missing]

    def wait_until(self, expr: str, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.query(expr):
                return
            time.sleep(0.5)
        raise AssertionError(
            f"timed out after {timeout_s} s waiting for {what}; targets not up: {self.targets_not_up()}"
        )
