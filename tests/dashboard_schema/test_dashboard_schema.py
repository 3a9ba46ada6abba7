"""dashboards/cvm-migrate.json against Grafana's own dashboard schema, and our own rules.

dashboard.schema.json is generated from the TypeScript types of the npm package
@grafana/schema by generate.sh (pinned in package-lock.json) and committed, so these tests
need no npm; CI regenerates it and fails on a diff. Whether each query returns data is
tests/e2e/test_observability.py's job, against a real Prometheus.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = REPO_ROOT / "dashboards" / "cvm-migrate.json"
SCHEMA_PATH = Path(__file__).with_name("dashboard.schema.json")

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
INSTANCE_MATCHER = '{instance=~"$instance"}'
# Every series the dashboard reads is one of the receiver's (receiver/metrics.py) or one
# of the process collector's; group 2 is the selector's matchers, if any.
SELECTOR = re.compile(r"\b((?:cvm_migrate|process)_[a-z_]+)(\{[^}]*\})?")
GRID_COLUMNS = 24

Dashboard = dict[str, Any]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


@pytest.fixture
def dashboard() -> Dashboard:
    loaded: Dashboard = json.loads(DASHBOARD_PATH.read_text())
    return loaded


def _panels(dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", ())  # a collapsed row keeps its panels inside


def _targets(dashboard: Dashboard) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", ()):
            yield panel["title"], target


def _variables(dashboard: Dashboard) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def _errors(validator: jsonschema.protocols.Validator, dashboard: Dashboard) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(dashboard)
    ]


def test_the_dashboard_matches_grafanas_schema(
    validator: jsonschema.protocols.Validator, dashboard: Dashboard
) -> None:
    assert _errors(validator, dashboard) == []


def _string_grid_position(dashboard: Dashboard) -> None:
    dashboard["panels"][0]["gridPos"]["w"] = "12"


def _no_schema_version(dashboard: Dashboard) -> None:
    del dashboard["schemaVersion"]


def _exported_inputs(dashboard: Dashboard) -> None:
    dashboard["__inputs"] = [{"name": "DS_PROMETHEUS", "type": "datasource"}]


def _panel_without_type(dashboard: Dashboard) -> None:
    del dashboard["panels"][0]["type"]


def _unknown_variable_type(dashboard: Dashboard) -> None:
    dashboard["templating"]["list"][0]["type"] = "prometheus"


def _misspelt_threshold_key(dashboard: Dashboard) -> None:
    dashboard["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["step"] = []


@pytest.mark.parametrize(
    "breakage",
    [
        _string_grid_position,
        _no_schema_version,
        _exported_inputs,
        _panel_without_type,
        _unknown_variable_type,
        _misspelt_threshold_key,
    ],
)
def test_the_schema_rejects_a_broken_dashboard(
    validator: jsonschema.protocols.Validator,
    dashboard: Dashboard,
    breakage: Callable[[Dashboard], None],
) -> None:
    broken = copy.deepcopy(dashboard)
    breakage(broken)
    assert _errors(validator, broken), f"{breakage.__name__} passed the schema"


def test_the_dashboard_imports_without_inputs(dashboard: Dashboard) -> None:
    """No ${DS_...} placeholders: the data source is a variable, so it imports as it is."""
    assert "DS_" not in DASHBOARD_PATH.read_text()
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["id"] is None
    assert dashboard["uid"] == "cvm-migrate"


def test_the_variables_are_a_prometheus_data_source_and_an_instance(
    dashboard: Dashboard,
) -> None:
    variables = _variables(dashboard)
    assert list(variables) == ["datasource", "instance"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["type"] == "query"
    assert instance["datasource"] == DATASOURCE
    assert instance["query"] == "label_values(cvm_migrate_build_info, instance)"


def test_every_panel_and_query_reads_the_chosen_data_source(dashboard: Dashboard) -> None:
    for panel in _panels(dashboard):
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel.get("targets"), f"{panel['title']} has no query"
    for title, target in _targets(dashboard):
        assert target.get("datasource") == DATASOURCE, f"{title} {target['refId']}"


def _unfiltered(expr: str) -> list[str]:
    """The series `expr` reads without the instance matcher, or all series if it reads none."""
    selectors = SELECTOR.findall(expr)
    if not selectors:
        return ["(no receiver metric)"]
    return [name for name, matchers in selectors if matchers != INSTANCE_MATCHER]


def test_every_series_a_query_reads_is_of_the_chosen_instance(dashboard: Dashboard) -> None:
    for title, target in _targets(dashboard):
        assert _unfiltered(target["expr"]) == [], f"{title}: {target['expr']}"


@pytest.mark.parametrize(
    "expr",
    [
        "rate(cvm_migrate_frames_total[5m])",
        'cvm_migrate_sessions_open{instance="a"}',
        'process_resident_memory_bytes{instance=~"$instance",job="x"}',
        'cvm_migrate_session_done_bytes{instance=~"$instance"} / cvm_migrate_session_planned_bytes',
        "vector(1)",
    ],
)
def test_a_query_of_every_instance_is_caught(expr: str) -> None:
    assert _unfiltered(expr)


def test_reference_ids_are_unique_within_each_panel(dashboard: Dashboard) -> None:
    for panel in _panels(dashboard):
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_panels_have_unique_ids_and_do_not_overlap(dashboard: Dashboard) -> None:
    panels = list(_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[x, y]}"
                taken[x, y] = panel["title"]
