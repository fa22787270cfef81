"""BlinkHook, synchronous: each API call against the emulator over loopback HTTP, as Blink sees it.

Failures, retries and the error classes are in ``tests/test_retries.py`` (one table for both clients);
connection reading is in ``tests/test_connection.py``.
"""

from __future__ import annotations

import json

import pytest
from requests.adapters import HTTPAdapter

from airflow_provider_blink.exceptions import (
    BlinkBadRequestError,
    BlinkConfigurationError,
    BlinkNotFoundError,
)
from airflow_provider_blink.hooks.blink import USER_AGENT, BlinkHook
from airflow_provider_blink.testing import ScriptedPlaybook

from support.connections import connection_json
from support.emulator import EXECUTE_BODY, WORKSPACE, requests_to


class TestExecutePlaybook:
    def test_sends_every_body_field_and_returns_the_execution_id(self, emulator):
        execution_id = BlinkHook().execute_playbook("quick-ok", **EXECUTE_BODY)

        [request] = emulator.requests
        assert request.method == "POST"
        assert request.path == f"/api/v1/workspace/{WORKSPACE}/playbooks/quick-ok/execute"
        assert request.query == {}
        assert request.body == EXECUTE_BODY
        assert request.headers["Content-Type"] == "application/json"
        record = emulator.execution(execution_id)
        assert record["playbook_id"] == "quick-ok"
        assert record["inputs"] == EXECUTE_BODY["input_values"]
        assert record["event"] == EXECUTE_BODY["event"]
        assert record["runner_group_id"] == "runner-group-eu"
        assert record["trigger_type"] == "airflow"
        assert record["past_exec_ref"] == "exec-0"

    def test_fields_left_none_are_not_sent(self, emulator):
        BlinkHook().execute_playbook("quick-ok", input_values={"ip": "x"}, event=None, runner=None)

        assert emulator.requests[0].body == {"input_values": {"ip": "x"}}

    def test_workspace_override(self, emulator):
        emulator.add_playbook(ScriptedPlaybook(id="pb-elsewhere", workspace_id="ws-other", duration=0.1))

        execution_id = BlinkHook().execute_playbook("pb-elsewhere", workspace_id="ws-other")

        assert emulator.requests[0].path == "/api/v1/workspace/ws-other/playbooks/pb-elsewhere/execute"
        assert emulator.execution(execution_id)["workspace_id"] == "ws-other"

    def test_invalid_body_is_refused_before_sending(self, emulator):
        with pytest.raises(BlinkConfigurationError, match="input_values must be a dict"):
            BlinkHook().execute_playbook("quick-ok", input_values=["not", "a", "dict"])

        assert emulator.requests == []


class TestRunPlaybookSync:
    def test_returns_the_output_and_sends_run_sync_and_timeout(self, emulator):
        output = BlinkHook().run_playbook_sync("quick-ok", timeout=10, input_values={"ip": "x"})

        assert output == {"answer": 42}
        [request] = emulator.requests
        assert request.query == {"run_sync": "true", "timeout": "10"}
        assert request.body == {"input_values": {"ip": "x"}}
        assert emulator.executions[0]["state_ui"] == "Completed"

    def test_without_timeout_sends_only_run_sync(self, emulator):
        assert BlinkHook().run_playbook_sync("quick-ok") == {"answer": 42}

        assert emulator.requests[0].query == {"run_sync": "true"}

    def test_a_failed_run_is_an_error_carrying_blinks_details(self, emulator):
        with pytest.raises(BlinkBadRequestError) as info:
            BlinkHook().run_playbook_sync("quick-fail", timeout=10)

        [execution] = emulator.executions
        assert info.value.details == "step 'lookup' failed: upstream returned 500"
        assert info.value.data["execution_id"] == execution["id"]
        assert len(emulator.requests) == 1


def test_get_execution(emulator):
    hook = BlinkHook()
    execution_id = hook.execute_playbook("quick-ok")

    execution = hook.get_execution(execution_id)

    assert execution["id"] == execution_id
    assert execution["playbook_id"] == "quick-ok"
    assert execution["state_ui"] in ("In Progress", "Completed")
    assert emulator.requests[-1].path == f"/api/v1/workspace/{WORKSPACE}/executions/{execution_id}"


def test_list_executions_sends_the_rql_query(emulator):
    emulator.seed_executions("quick-ok", 4)
    failed = emulator.seed_executions("quick-fail", 3, state="Failed")

    page = BlinkHook().list_executions(
        filter={"playbook_id": "quick-fail"},
        sort=["-execution_number"],
        limit=2,
        offset=1,
        select=["id", "state_ui"],
    )

    [request] = emulator.requests
    assert json.loads(request.query["q"]) == {
        "filter": {"playbook_id": "quick-fail"},
        "sort": ["-execution_number"],
        "limit": 2,
        "offset": 1,
        "select": ["id", "state_ui"],
    }
    assert page["total"] == 3
    assert page["results"] == [
        {"id": failed[1], "state_ui": "Failed"},
        {"id": failed[0], "state_ui": "Failed"},
    ]


def test_iter_executions_walks_every_page_once(emulator):
    seeded = emulator.seed_executions("quick-ok", 2500)

    ids = [execution["id"] for execution in BlinkHook().iter_executions(page_size=1000)]

    assert ids == seeded
    lists = requests_to(emulator, "GET", "/executions")
    assert [json.loads(r.query["q"]) for r in lists] == [
        {"sort": ["created_at", "id"], "limit": 1000, "offset": offset} for offset in (0, 1000, 2000)
    ]


def test_iter_executions_passes_the_filter_on(emulator):
    emulator.seed_executions("quick-ok", 3)
    failed = emulator.seed_executions("quick-fail", 5, state="Failed")

    ids = [e["id"] for e in BlinkHook().iter_executions(filter={"playbook_id": "quick-fail"}, page_size=2)]

    assert ids == failed
    queries = [json.loads(r.query["q"]) for r in emulator.requests]
    assert [q["offset"] for q in queries] == [0, 2, 4]
    assert all(q["filter"] == {"playbook_id": "quick-fail"} for q in queries)


def test_iter_executions_with_nothing_to_list(emulator):
    assert list(BlinkHook().iter_executions()) == []
    assert len(emulator.requests) == 1


class TestCancelExecution:
    def test_cancels_a_running_execution(self, emulator):
        hook = BlinkHook()
        execution_id = hook.execute_playbook("slow")

        assert hook.cancel_execution(execution_id) is True

        assert emulator.execution(execution_id)["state_ui"] == "Cancelled"
        assert emulator.requests[-1].path == f"/api/v1/workspace/{WORKSPACE}/executions/{execution_id}/cancel"
        assert emulator.requests[-1].method == "POST"

    def test_a_finished_execution_is_quietly_false(self, emulator):
        [execution_id] = emulator.seed_executions("quick-ok", 1)

        assert BlinkHook().cancel_execution(execution_id) is False

        assert emulator.execution(execution_id)["state_ui"] == "Completed"
        refused, checked = emulator.requests[-2:]
        assert (refused.method, refused.status) == ("POST", 400)
        assert (checked.method, checked.path) == (
            "GET",
            f"/api/v1/workspace/{WORKSPACE}/executions/{execution_id}",
        )

    def test_cancelling_twice(self, emulator):
        hook = BlinkHook()
        execution_id = hook.execute_playbook("slow")

        assert [hook.cancel_execution(execution_id), hook.cancel_execution(execution_id)] == [True, False]

    def test_an_unknown_execution_is_an_error(self, emulator):
        with pytest.raises(BlinkNotFoundError):
            BlinkHook().cancel_execution("no-such-execution")


def test_every_request_carries_the_key_and_names_the_provider(emulator):
    hook = BlinkHook()
    execution_id = hook.execute_playbook("quick-ok")
    hook.get_execution(execution_id)
    hook.list_executions(limit=1)
    hook.cancel_execution(execution_id)

    assert len(emulator.requests) == 4
    for request in emulator.requests:
        assert request.headers["BLINK-API-KEY"] == "***"  # sent (the emulator redacts it in its log)
        assert request.headers["User-Agent"] == USER_AGENT
        assert request.headers["Accept"] == "application/json"
        assert request.status == 200  # the emulator accepted the key


class TestKeepAlive:
    def test_many_calls_share_one_tcp_connection(self, emulator):
        hook = BlinkHook()
        session = hook.session
        execution_id = hook.execute_playbook("quick-ok")
        for _ in range(8):
            hook.get_execution(execution_id)
        hook.list_executions(limit=5)

        assert hook.session is session
        adapter = session.get_adapter(emulator.url)
        assert isinstance(adapter, HTTPAdapter)
        pools = adapter.poolmanager.pools
        keys = pools.keys()  # urllib3 refuses plain iteration
        [pool] = [pools[key] for key in keys]  # one host, one urllib3 pool
        assert pool.num_requests == 10
        assert pool.num_connections == 1
        assert len(emulator.requests) == 10

    def test_close_releases_the_session_and_a_new_one_opens_on_demand(self, emulator):
        hook = BlinkHook()
        hook.list_executions(limit=1)
        first = hook.session

        hook.close()
        hook.list_executions(limit=1)

        assert hook.session is not first
        assert len(emulator.requests) == 2

    def test_each_hook_has_its_own_session(self, emulator):
        assert BlinkHook().session is not BlinkHook().session

    def test_session_follows_the_connection(self, emulator, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_BLINK_DEFAULT",
            connection_json(emulator, verify="false", proxies={"https": "http://proxy.example:3128"}),
        )

        session = BlinkHook().session

        assert session.verify is False
        assert session.proxies["https"] == "http://proxy.example:3128"
        assert session.headers["User-Agent"] == USER_AGENT
