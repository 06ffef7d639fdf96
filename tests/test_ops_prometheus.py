"""ops/prometheus and ops/grafana: the configuration, the alert rules and their unit tests pass promtool;
the rules and the dashboard name only metrics the code declares; and on a real system on loopback
(broker, archive, a bencher on a port of its choosing that writes its own target file, the trainer
making steps) scraped by a real Prometheus, every query of the dashboard and of the rules finds the
series it selects.

Alert expressions compare against thresholds and rightly return nothing on a healthy system, so the
end-to-end check is made per selector: every vector selector of every expression (metric name and
label matchers as written, e.g. `hpcrl_bencher_candidates_total{job="hpcrl-bencher",
verdict="compile_error"}`) must match at least one series of the running system, and the whole
expression must evaluate without error. A panel's query must also return data. The joins and
thresholds themselves are covered by `promtool test rules`, whose input series must carry the same
label names as the live series (checked here too), so what fires there fires in production."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import BusSite, Processes, free_port, skip_unless_required
from tests.prometheus_support import (
    DASHBOARDS,
    JOBS,
    PROMETHEUS,
    PROMETHEUS_DIR,
    PROMETHEUS_YML,
    PROMTOOL,
    RULE_FILES,
    RULE_TEST_FILES,
    Prometheus,
    dashboard_queries,
    metric_name,
    metric_selectors,
    promtool,
)
from tests.test_archive_daemon import start_archive
from tests.test_bencher_daemon import bencher_env
from tests.test_trainer_loop import TRAIN_SETTINGS

needs_promtool = skip_unless_required("promtool is not installed (Debian: prometheus)" if PROMTOOL is None else "")
BUILTIN_METRICS = {"up"}
"""Series Prometheus makes itself for every target."""
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def rules() -> list[dict[str, Any]]:
    return [
        rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
    ]


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in DASHBOARDS]


def all_queries() -> list[tuple[str, str, bool]]:
    """(where, PromQL, must return data) of every dashboard query and every rule."""
    queries = [query for dashboard in dashboards() for query in dashboard_queries(dashboard)]
    for rule in rules():
        queries.append((f"rule {rule.get('alert') or rule.get('record')}", rule["expr"], False))
    return queries


def declared_metrics() -> set[str]:
    """Every sample name the hpcrl packages export, from prometheus_client's registry."""
    from prometheus_client import REGISTRY

    import archive.metrics  # noqa: F401
    import bencher.metrics  # noqa: F401
    import bus.metrics  # noqa: F401
    import trainer.metrics  # noqa: F401

    families = [family for family in REGISTRY.collect() if family.name.startswith("hpcrl_")]
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def test_selectors_are_found_in_promql_as_grafana_and_rules_write_it() -> None:
    expr = (
        'hpcrl_bencher_calibration_gflops{job="hpcrl-bencher"} < on (node_class) group_left () '
        '0.9 * quantile by (node_class) (0.5, hpcrl_bencher_calibration_gflops{job="hpcrl-bencher"} > 0) '
        "and increase(hpcrl_trainer_steps_total[1h] offset 1h) > 0 and on (instance) up == 1"
    )
    assert metric_selectors(expr) == [
        'hpcrl_bencher_calibration_gflops{job="hpcrl-bencher"}',
        'hpcrl_bencher_calibration_gflops{job="hpcrl-bencher"}',
        "hpcrl_trainer_steps_total",
        "up",
    ]
    assert metric_selectors('label_values(hpcrl_archive_stage{job="a"}, problem)') == ['hpcrl_archive_stage{job="a"}']


@needs_promtool
def test_the_prometheus_config_and_its_rule_files_pass_promtool() -> None:
    checked = promtool("check", "config", str(PROMETHEUS_YML))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in checked.stdout, checked.stdout  # rules/*.yml resolves
    checked = promtool("check", "rules", *map(str, RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    tested = promtool("test", "rules", *map(str, RULE_TEST_FILES))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"
    for rule in rules():
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]


def test_the_dashboard_and_the_rules_name_only_metrics_the_code_declares() -> None:
    declared = declared_metrics() | BUILTIN_METRICS
    used = {
        f"{where}: {metric_name(selector)}" for where, expr, _ in all_queries() for selector in metric_selectors(expr)
    }
    assert used, "no query found"
    assert sorted(u for u in used if u.rpartition(": ")[2] not in declared) == []
    # Names in the alerts' texts (a histogram by its name) and the rule unit tests' input series count too.
    declared |= {name.removesuffix("_bucket") for name in declared}
    texts = [json.dumps(rule["annotations"]) for rule in rules()] + [p.read_text() for p in RULE_TEST_FILES]
    mentioned = {name for text in texts for name in re.findall(r"\bhpcrl_[a-z0-9_]+\b", text)}
    assert sorted(mentioned - declared) == []


def test_the_dashboard_is_well_formed_and_uses_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load((PROMETHEUS_DIR.parent / "grafana/provisioning/datasources/hpcrl.yml").read_text())
    [uid] = [d["uid"] for d in datasource["datasources"]]
    provider = yaml.safe_load((PROMETHEUS_DIR.parent / "grafana/provisioning/dashboards/hpcrl.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
    for dashboard in dashboards():
        [variable] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        assert variable["query"] == "prometheus" and variable["current"]["value"] == uid
        panels = dashboard["panels"]
        assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            box = panel["gridPos"]
            assert box["x"] + box["w"] <= 24, panel["title"]
            mine = {(box["x"] + dx, box["y"] + dy) for dx in range(box["w"]) for dy in range(box["h"])}
            assert not mine & cells, f"panel {panel['title']!r} overlaps another"
            cells |= mine
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "${datasource}" and panel["description"], panel["title"]
                assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"]), panel["title"]


@skip_unless_required(
    "prometheus is not installed (Debian: prometheus)" if PROMETHEUS is None or PROMTOOL is None else ""
)
def test_every_dashboard_and_rule_query_finds_its_series_in_a_running_system(
    site: BusSite, processes: Processes, tiny_model: Path
) -> None:
    sd_dir = site.workdir / "prometheus-targets"
    sd_dir.mkdir()
    ports = {"broker": free_port(), "archive": free_port(), "trainer": free_port()}
    processes.broker("--metrics-port", str(ports["broker"]))
    start_archive(processes, confirm="false", metrics_port=str(ports["archive"]))
    bencher = bencher_env(
        site, metrics_port="-1", metrics_sd_dir=str(sd_dir), calibration_interval_s="600", calibration_size="128"
    )
    processes.start("bencher", "--name", "b1", env={**bencher, "SLURM_JOB_ID": "4242"})  # as a SLURM job
    train_env = {**site.env, **TRAIN_SETTINGS, "HPCRL_TRAINER__METRICS_PORT": str(ports["trainer"])}
    run_dir = str(site.workdir / "run")
    processes.start("train", "--model", str(tiny_model), "--run-dir", run_dir, "--steps", "1000", env=train_env)
    prometheus = Prometheus(
        site.workdir,
        {
            "head01:9101": f"127.0.0.1:{ports['broker']}",
            "head01:9104": f"127.0.0.1:{ports['archive']}",
            "gpu01:9103": f"127.0.0.1:{ports['trainer']}",
        },
        sd_dir,
    )
    try:
        prometheus.start()
        prometheus.wait_until(f"count(up == 1) == {len(JOBS)}", 30, "every target to be up")
        # rate() needs two samples in its window, a target's first ones come 5-6 s after it is discovered
        prometheus.wait_until(f"count(count_over_time(up[1m]) >= 3) == {len(JOBS)}", 10, "three scrapes of each")
        prometheus.wait_until('hpcrl_trainer_steps_total{job="hpcrl-trainer"} >= 1', 60, "a trainer step")
        problems = []
        for where, expr, must_return_data in all_queries():
            for selector in metric_selectors(expr):
                if not prometheus.query(f"count({selector})"):
                    problems.append(f"{where}: no series matches {selector}")
            try:
                if not prometheus.query(expr) and must_return_data:
                    problems.append(f"{where}: no data from {expr}")
            except AssertionError as error:
                problems.append(f"{where}: {error}")
        loaded = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        assert len(loaded) == len(rules())
        problems += [f"rule {r['name']}: {r['health']} {r.get('lastError', '')}" for r in loaded if r["health"] != "ok"]
        problems += unit_test_series_unlike_live_ones(prometheus)
        assert not problems, "\n".join(problems)
    finally:
        prometheus.stop()
        for process in reversed(processes.started):
            if process.poll() is None:
                # A slow stop must not hide the test's own failure; the fixture kills what is left.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    processes.stop(process, timeout_s=30)


def unit_test_series_unlike_live_ones(prometheus: Prometheus) -> list[str]:
    """Input series of the rule unit tests whose label names differ from the live series' of the same
    metric and job: the unit tests must exercise the joins on the labels production has."""
    problems = []
    for path in RULE_TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test["input_series"]:
                name, _, matchers = series["series"].partition("{")
                labels = dict(re.findall(r'(\w+)="([^"]*)"', matchers))
                live = prometheus.query(f'{name}{{job="{labels["job"]}"}}')
                names = {frozenset(sample["metric"]) - {"__name__"} for sample in live}
                if frozenset(labels) not in names:
                    problems.append(f"{path.name}: {series['series']} has labels {sorted(labels)}; live: {names}")
    return problems
