"""Listing executions with RQL: filter, sort, page and select, like Blink's ``q`` parameter."""

from __future__ import annotations

import pytest

from airflow_provider_blink.testing import ScriptedPlaybook

# (playbook, runner, trigger_type) of the executions created, in order; numbered 1..5 in the tables.
RUNS = [
    ("alpha", "r1", "api"),
    ("alpha", "r2", "airflow"),
    ("beta", "r1", "airflow"),
    ("alpha", "r3", "api"),
    ("beta", "r2", "schedule"),
]


@pytest.fixture
def ids(emu, api):
    """Create the five finished executions of RUNS; return their ids in creation order."""
    emu.add_playbook(ScriptedPlaybook(id="alpha", workspace_id="ws-1"))
    emu.add_playbook(ScriptedPlaybook(id="beta", workspace_id="ws-1", final_state="Failed"))
    return [api.start(pb, {"runner": runner, "trigger_type": trigger}) for pb, runner, trigger in RUNS]


def numbers(response, ids):
    """The 1-based RUNS positions of a list response's results."""
    assert response.status_code == 200, response.text
    return [ids.index(r["id"]) + 1 for r in response.json()["results"]]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"playbook_id": "beta"}, [3, 5]),
        ({"runner_group_id": {"$eq": "r1"}}, [1, 3]),
        ({"playbook_id": {"$neq": "alpha"}}, [3, 5]),
        ({"execution_number": {"$gt": 1}}, [2, 4, 5]),
        ({"execution_number": {"$gte": 2}}, [2, 4, 5]),
        ({"execution_number": {"$lt": 2}}, [1, 3]),
        ({"execution_number": {"$lte": 2}}, [1, 2, 3, 5]),
        ({"execution_number": {"$gt": 1, "$lt": 3}}, [2, 5]),
        ({"playbook_id": {"$like": "alph%"}}, [1, 2, 4]),
        ({"trigger_type": {"$like": "ap_"}}, [1, 4]),
        ({"trigger_type": {"$like": "%i%"}}, [1, 2, 3, 4]),
        ({"playbook_id": "alpha", "trigger_type": "api"}, [1, 4]),
        ({"$or": [{"runner_group_id": "r3"}, {"playbook_id": "beta"}]}, [3, 4, 5]),
        ({"state_ui": "Completed", "$or": [{"runner_group_id": "r1"}, {"runner_group_id": "r2"}]}, [1, 2]),
        ({"state": "failed"}, [3, 5]),
        ({"execution_number": {"$gt": "1"}}, []),
        ({"playbook_id": "gamma"}, []),
        ({"no_such_field": {"$eq": None}}, [1, 2, 3, 4, 5]),
    ],
    ids=[
        "bare-eq",
        "eq",
        "neq",
        "gt",
        "gte",
        "lt",
        "lte",
        "range",
        "like-percent",
        "like-underscore",
        "like-both-ends",
        "and",
        "or",
        "and-or",
        "raw-state",
        "type-mismatch",
        "no-match",
        "missing-field-is-null",
    ],
)
def test_filter(api, ids, wait_for, flt, expected):
    wait_for(lambda: all(api.get(i)["finished_at"] for i in ids))
    assert numbers(api.list({"filter": flt}), ids) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (["execution_number"], [1, 3, 2, 5, 4]),
        (["-execution_number"], [4, 2, 5, 1, 3]),
        (["playbook_id", "-execution_number"], [4, 2, 1, 5, 3]),
        (["+runner_group_id", "trigger_type"], [3, 1, 2, 5, 4]),
        ([], [1, 2, 3, 4, 5]),
    ],
    ids=["asc-stable", "desc-stable", "two-keys", "plus-prefix", "none-is-creation-order"],
)
def test_sort(api, ids, sort, expected):
    assert numbers(api.list({"sort": sort}), ids) == expected


def test_limit_offset_total(api, ids):
    response = api.list({"sort": ["execution_number", "playbook_id"], "limit": 2, "offset": 1})

    body = response.json()
    assert (body["limit"], body["offset"], body["total"]) == (2, 1, 5)
    assert numbers(response, ids) == [3, 2]


def test_defaults_without_q(api, ids):
    body = api.list().json()
    assert (body["limit"], body["offset"], body["total"], len(body["results"])) == (50, 0, 5, 5)


def test_total_counts_matches_before_paging(api, ids):
    body = api.list({"filter": {"playbook_id": "alpha"}, "limit": 1, "offset": 10}).json()
    assert (body["total"], body["results"]) == (3, [])


def test_select_projects_fields(api, ids):
    results = api.list({"select": ["id", "state", "nope"], "limit": 2}).json()["results"]
    assert [set(r) for r in results] == [{"id", "state"}, {"id", "state"}]


@pytest.mark.parametrize(
    "alternative",
    [lambda i: {"id": i}, lambda i: {"id": {"$eq": i}}],
    ids=["bare-eq", "eq"],
)
def test_or_of_ids_answers_those_executions_like_a_scan(api, ids, alternative):
    """blink-api-contract.md#documented-rql: ``{"$or": [{...}, {...}]}`` for OR; ``{"field": v}`` or ``{"$eq": v}``: what a batched read sends."""
    wanted = [ids[3], ids[0], "no-such-id", ids[4]]
    query = {"filter": {"$or": [alternative(i) for i in wanted]}, "limit": 4}

    body = api.list(query).json()

    assert numbers(api.list(query), ids) == [1, 4, 5], "creation order, as without the filter"
    assert body["total"] == 3
    also_by_playbook = {"filter": {"$or": [{"id": ids[0]}, {"playbook_id": "beta"}]}}
    assert numbers(api.list(also_by_playbook), ids) == [1, 3, 5], "ids or-ed with another field still scan"


def test_or_of_ids_is_scoped_to_the_workspace(api, api_for, ids):
    other = api_for(workspace="ws-2")
    query = {"filter": {"$or": [{"id": i} for i in ids]}}

    assert other.list(query).json()["results"] == []


def test_requests_are_counted_per_endpoint(emu, api, ids):
    before = emu.request_counts()
    api.list({"filter": {"$or": [{"id": ids[0]}, {"id": ids[1]}]}})
    api.get(ids[0])
    api.request("GET", "/nowhere")

    after = emu.request_counts()
    changed = {
        name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)
    }
    assert changed == {"list": 1, "get": 1, "": 1}


def test_latest_execution_like_blinks_own_client(api, ids):
    query = {"filter": {"playbook_id": "alpha"}, "sort": ["-execution_number"], "limit": 1}
    assert numbers(api.list(query), ids) == [4]


def test_list_is_scoped_to_the_workspace(api, api_for, ids):
    other = api_for(workspace="ws-2")
    other.start("pb-other")
    assert api.list().json()["total"] == 5
    assert other.list().json()["total"] == 1


@pytest.mark.parametrize(
    "q",
    [
        "not json",
        "[1]",
        {"limit": 0},
        {"limit": 1001},
        {"limit": "10"},
        {"offset": -1},
        {"filter": {"state": {"$regex": "a"}}},
        {"filter": {"$nor": [{"state": "x"}]}},
        {"filter": {"$or": {"state": "x"}}},
        {"filter": ["state"]},
        {"filter": {"state": {"$like": 1}}},
        {"sort": [1]},
        {"sort": ["-"]},
        {"select": [""]},
        {"filters": {}},
    ],
    ids=[
        "not-json",
        "not-object",
        "limit-0",
        "limit-1001",
        "limit-string",
        "offset-negative",
        "unknown-predicate",
        "unknown-operator",
        "or-not-list",
        "filter-not-object",
        "like-not-string",
        "sort-not-strings",
        "sort-empty-field",
        "select-empty-field",
        "unknown-key",
    ],
)
def test_malformed_q_is_400(api, q):
    response = api.list(q)
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "invalid query"


def test_paging_through_20000_executions_sees_each_once(emu, api):
    emu.seed_executions("pb-fast", 20_000)
    seen: list[str] = []

    offset = 0
    while True:
        body = api.list({"sort": ["-started_at"], "limit": 1000, "offset": offset}).json()
        seen += [r["id"] for r in body["results"]]
        offset += 1000
        if offset >= body["total"]:
            break

    assert len(seen) == len(set(seen)) == 20_000
