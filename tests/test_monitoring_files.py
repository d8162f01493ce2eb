"""The monitoring files in deploy/: Prometheus's alerts, their unit tests and an example scrape
config (deploy/prometheus/), and Grafana's dashboard (deploy/grafana/mailroom.json).

They are only text to Mailroom, so nothing else would notice when one stops parsing or names a
metric that GET /metrics no longer has: an alert on a renamed metric never fires, and says
nothing. Here promtool (Debian's `prometheus` package) checks and runs them, and every metric
they name is looked up in a real /metrics answer. Without promtool those tests skip with the
reason; under CI=true they fail (tests/helpers.py, require_program).
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import load_payload, require_program

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
SCRAPE_CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "mailroom.json"

METRICS_TOKEN = "monitoring-test-token"
# A metric name as the files use it: the one rule the check relies on is that Mailroom's own
# metrics start with mailroom_ (and `up` is Prometheus's own, per target).
MAILROOM_NAME = re.compile(r"\bmailroom_[a-z_]+")
# Families a histogram or summary is queried by (the family name itself is no series).
SAMPLE_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}
# Grafana's own variables, given a value a query could be run with.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
# Metrics labelled by usage type: the dashboard's $usage_type applies to each of their queries.
BY_USAGE_TYPE = (
    "mailroom_messages_total",
    "mailroom_delivery_seconds",
    "mailroom_template_fallback",
)


def promtool(*args: str) -> subprocess.CompletedProcess:
    require_program("promtool")
    return subprocess.run(
        ["promtool", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def assert_success(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"{' '.join(result.args)}:\n{result.stdout}{result.stderr}"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def every_panel(panels: list[dict]):
    """Every panel, those inside a collapsed row (its "panels") included."""
    for panel in panels:
        yield panel
        yield from every_panel(panel.get("panels", []))


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in every_panel(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


# --- promtool: the rules, their unit tests, the scrape config ------------------------------


def test_alert_rules_are_valid():
    assert_success(promtool("check", "rules", str(ALERTS)))


def test_alert_unit_tests_pass():
    # Each alert fires on made-up series with the labels and annotations expected, and stays
    # quiet in the healthy cases (no traffic, a sweeper on time, a short blip).
    assert_success(promtool("test", "rules", str(ALERT_TESTS)))


def test_every_alert_is_unit_tested_and_tells_what_to_do():
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text()))
    for rule in alert_rules():
        assert rule["alert"] in tested, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_example_scrape_config_is_valid(tmp_path):
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "mailroom"  # MailroomDown looks for up{job="mailroom"}
    assert job["scrape_interval"] == "15s"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert job["authorization"]["type"] == "Bearer"
    assert config["rule_files"] == ["alerts.yml"]

    # promtool 2.42 fails on a credentials_file that does not exist, and resolves rule_files
    # next to the config: check a copy with a token file of its own and the rules' full path.
    token = tmp_path / "mailroom-metrics-token"
    token.write_text(METRICS_TOKEN + "\n")
    job["authorization"]["credentials_file"] = str(token)
    config["rule_files"] = [str(ALERTS)]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(json.dumps(config))  # JSON is YAML
    assert_success(promtool("check", "config", str(copy)))


# --- Grafana's dashboard ------------------------------------------------------------------


def test_dashboard_is_complete():
    board = dashboard()
    assert (board["uid"], board["title"]) == ("mailroom", "Mailroom")
    panels = list(every_panel(board["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "two panels share an id"
    for panel in panels:
        assert panel.get("title"), panel
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        # The Prometheus to query is chosen on the dashboard, never one Grafana's uid.
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["expr"], panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]

    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    usage_type = variables["usage_type"]
    assert usage_type["query"]["query"] == "label_values(mailroom_messages_total, usage_type)"
    assert usage_type["multi"] is True and usage_type["includeAll"] is True


def test_dashboard_filters_by_usage_type_wherever_the_metric_has_it():
    selector = re.compile(rf"\b({'|'.join(BY_USAGE_TYPE)})[a-z_]*(\{{[^}}]*\}})?")
    for title, expr in dashboard_queries():
        for match in selector.finditer(expr):
            assert 'usage_type=~"$usage_type"' in (match.group(2) or ""), (title, expr)


def concrete_queries() -> list[tuple[str, str]]:
    """dashboard_queries() with Grafana's variables replaced by values a real query could
    have (also run against a real Prometheus: tests/test_operations_stack.py)."""
    values = dict(GRAFANA_BUILTINS)
    for variable in dashboard()["templating"]["list"]:
        values[variable["name"]] = variable.get("allValue") or "SignIn"

    def concrete(expr: str) -> str:
        for name, value in values.items():
            expr = re.sub(rf"\$\{{{name}(:\w+)?\}}|\${name}\b|\[\[{name}\]\]", value, expr)
        return expr

    return [(title, concrete(expr)) for title, expr in dashboard_queries()]


def test_dashboard_queries_are_valid_promql(tmp_path):
    # promtool has no "check this query": each query becomes a recording rule instead.
    rules = []
    for number, (title, query) in enumerate(concrete_queries()):
        assert "$" not in query, f"{title}: a variable the test does not know: {query}"
        rules.append({"record": f"grafana:query_{number}", "expr": query})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    # promtool names a failing rule by its place in the group: say which panel that is.
    listing = "\n".join(f"{n}: {title}" for n, (title, _expr) in enumerate(dashboard_queries()))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\nrules:\n{listing}"


# --- every metric named is one GET /metrics has ---------------------------------------------


def exposed_names(text: str) -> set[str]:
    """The series names one can query, from Prometheus's text format: every sample's name,
    and, for families without a sample yet, their `# TYPE` line's (prometheus-client writes
    a counter's with its _total; a histogram is queried by _bucket, _sum and _count)."""
    names = {"up"}  # Prometheus's own, for every target
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _hash, _type, name, kind = line.split(" ", 3)
            if kind == "counter" and not name.endswith("_total"):
                name += "_total"
            names.update(name + suffix for suffix in SAMPLE_SUFFIXES.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group())
    return names


@pytest.fixture
def metrics_text(client, settings, send, monkeypatch):
    """GET /metrics after an email of each kind of sample: sent, sent with a template
    fallback, a sweeper run, and two providers (the circuit gauge needs failover)."""
    from emails.delivery.sweeper import messages_sweep
    from emails.operations import metrics

    settings.EMAILS_METRICS_TOKEN = METRICS_TOKEN
    monkeypatch.setattr(metrics, "_cache", {})  # the database state read now, not remembered
    assert send(load_payload("sign-in-fr.json")).status_code == 200
    fallback = load_payload("sign-in-fr.json")
    fallback["to"] = "fallback@example.com"
    fallback["payload"].update(locale="nl", uiLocales="nl-BE")  # no Dutch template: English
    assert send(fallback).status_code == 200
    messages_sweep()
    settings.EMAIL_PROVIDERS = {**settings.EMAIL_PROVIDERS, "backup": settings.EMAIL_BACKEND}

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200, response.content
    return response.content.decode()


@pytest.mark.django_db
def test_alerts_and_dashboard_name_only_exposed_metrics(metrics_text):
    exposed = exposed_names(metrics_text)
    # The families emails/metrics.py and emails/operations/metrics.py define, each with a
    # sample after the fixture's emails (so the check below is not only against # TYPE lines).
    for name in (
        "mailroom_messages_total",
        "mailroom_delivery_seconds_bucket",
        "mailroom_accept_seconds_bucket",
        "mailroom_provider_attempts_total",
        "mailroom_template_fallback_total",
        "mailroom_queue_depth",
        "mailroom_oldest_queued_seconds",
        "mailroom_provider_circuit_open",
        "mailroom_sweeper_last_run_timestamp_seconds",
        "mailroom_sweeper_interval_seconds",
        "mailroom_database_up",
        "mailroom_build_info",
    ):
        assert re.search(rf"^{name}[{{ ]", metrics_text, re.M), f"no sample of {name}"

    named: dict[str, set[str]] = {}
    for rule in alert_rules():
        named.setdefault(f"alert {rule['alert']}", set()).update(
            MAILROOM_NAME.findall(rule["expr"])
        )
    named["alert unit tests"] = set(MAILROOM_NAME.findall(ALERT_TESTS.read_text()))
    for title, expr in dashboard_queries():
        named.setdefault(f"panel {title!r}", set()).update(MAILROOM_NAME.findall(expr))
    for variable in dashboard()["templating"]["list"]:
        definition = variable.get("definition", "")
        named[f"variable {variable['name']}"] = set(MAILROOM_NAME.findall(definition))

    unknown = {where: sorted(names - exposed) for where, names in named.items() if names - exposed}
    assert not unknown, f"metrics GET /metrics does not have: {unknown}"
    assert set().union(*named.values()), "no metric name found at all: is the pattern right?"
