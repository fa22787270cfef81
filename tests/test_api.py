"""Blink's REST API as data: request bodies, RQL queries, paths, and how answers are read."""

from __future__ import annotations

import datetime
import json
import types

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_blink import api, endpoints
from airflow_provider_blink.compat import AirflowFailException
from airflow_provider_blink.exceptions import (
    BlinkApiError,
    BlinkAuthenticationError,
    BlinkBadRequestError,
    BlinkClientError,
    BlinkConfigurationError,
    BlinkError,
    BlinkNotFoundError,
    BlinkPermissionError,
    BlinkRateLimitError,
    BlinkResponseError,
    BlinkServerError,
)

CALLBACK = {"url": "https://hooks.example.com/blink", "method": "POST", "headers": {"X-Token": "t"}}


def error_body(status: int, message: str = "nope", details: str = "why", identifier: str = "id-1") -> str:
    """Blink's ``ErrorWrapper``."""
    return json.dumps(
        {
            "status": status,
            "message": message,
            "details": details,
            "identifier": identifier,
            "data": {"execution_id": "e-1"},
            "user_error": {},
        }
    )


class TestExecuteBody:
    def test_sends_every_field_given(self):
        body = api.execute_body(
            input_values={"ip": "1.2.3.4"},
            event={"alert": {"id": 7}},
            runner="runner-group-eu",
            trigger_type="airflow",
            callback=CALLBACK,
            past_exec_ref="exec-0",
        )

        assert body == {
            "input_values": {"ip": "1.2.3.4"},
            "event": {"alert": {"id": 7}},
            "runner": "runner-group-eu",
            "trigger_type": "airflow",
            "callback": CALLBACK,
            "past_exec_ref": "exec-0",
        }

    def test_fields_left_none_are_not_sent(self):
        assert api.execute_body() == {}
        assert api.execute_body(input_values={}, runner=None) == {"input_values": {}}

    def test_mappings_become_plain_dicts(self):
        body = api.execute_body(input_values=types.MappingProxyType({"a": 1}))

        assert type(body["input_values"]) is dict
        assert json.dumps(body) == '{"input_values": {"a": 1}}'

    @pytest.mark.parametrize(
        ("field", "value", "expected"),
        [
            ("input_values", ["ip", "1.2.3.4"], "a dict"),
            ("input_values", "ip=1.2.3.4", "a dict"),
            ("event", 42, "a dict"),
            ("callback", "https://hooks.example.com", "a dict"),
            ("runner", 5, "a string"),
            ("runner", {"group": "eu"}, "a string"),
            ("trigger_type", True, "a string"),
            ("past_exec_ref", 123, "a string"),
        ],
        ids=[
            "input-values-list",
            "input-values-str",
            "event-int",
            "callback-str",
            "runner-int",
            "runner-dict",
            "trigger-type-bool",
            "past-exec-ref-int",
        ],
    )
    def test_rejects_wrong_types_naming_the_field(self, field, value, expected):
        with pytest.raises(BlinkConfigurationError, match=rf"^{field} must be {expected}") as info:
            api.execute_body(**{field: value})

        assert type(value).__name__ in str(info.value)
        assert isinstance(info.value, AirflowFailException)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("input_values", {"hosts": {"a", "b"}}),
            ("input_values", {"since": datetime.datetime(2024, 1, 1)}),
            ("event", {"obj": object()}),
            ("callback", {"url": "https://x", "body": {"n": float("nan")}}),
            ("input_values", {"n": float("inf")}),
        ],
        ids=["set", "datetime", "object", "nan", "infinity"],
    )
    def test_rejects_values_that_are_not_json(self, field, value):
        with pytest.raises(BlinkConfigurationError, match=rf"^{field} must be JSON-serialisable") as info:
            api.execute_body(**{field: value})

        assert "Convert dates, sets and objects" in str(info.value)


class TestRqlQuery:
    def test_keeps_given_keys_only(self):
        query = api.rql_query(filter={"playbook_id": "pb"}, sort=["-started_at"], limit=1)

        assert query == {"filter": {"playbook_id": "pb"}, "sort": ["-started_at"], "limit": 1}
        assert api.rql_query() == {}

    @pytest.mark.parametrize(
        ("limit", "offset"), [(1, 0), (1000, 0), (None, 5000)], ids=["smallest", "largest", "offset-only"]
    )
    def test_accepts_blinks_bounds(self, limit, offset):
        query = api.rql_query(limit=limit, offset=offset)

        assert query.get("limit") == limit
        assert query["offset"] == offset

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": 1001}, "limit"),
            ({"limit": -1}, "limit"),
            ({"offset": -1}, "offset"),
        ],
        ids=["limit-0", "limit-1001", "limit-negative", "offset-negative"],
    )
    def test_rejects_out_of_bounds_naming_the_field(self, kwargs, field):
        with pytest.raises(BlinkConfigurationError, match=rf"^{field} must be") as info:
            api.rql_query(**kwargs)

        assert str(kwargs[field]) in str(info.value)

    def test_list_sends_q_as_compact_json(self):
        call = api.list_executions("ws", {"filter": {"state": {"$eq": "failed"}}, "limit": 5})

        assert call.method == "GET"
        assert call.params == {"q": '{"filter":{"state":{"$eq":"failed"}},"limit":5}'}


class TestPaths:
    @pytest.mark.parametrize(
        ("call", "path"),
        [
            (
                api.get_execution("team/a", "exec 1/2"),
                "/workspace/team%2Fa/executions/exec%201%2F2",
            ),
            (
                api.execute("ws", "pb?x=1#y", {}),
                "/workspace/ws/playbooks/pb%3Fx%3D1%23y/execute",
            ),
            (
                api.cancel_execution("ws", "../other"),
                "/workspace/ws/executions/..%2Fother/cancel",
            ),
            (api.list_executions(" ws ", {}), "/workspace/ws/executions"),
        ],
        ids=["slash-and-space", "query-chars", "dot-dot", "stripped"],
    )
    def test_ids_are_quoted_into_one_segment(self, call, path):
        assert call.path == path

    @pytest.mark.parametrize(
        ("make", "field"),
        [
            (lambda: api.get_execution("", "e"), "workspace_id"),
            (lambda: api.get_execution("ws", "   "), "execution_id"),
            (lambda: api.execute("ws", None, {}), "playbook_id"),  # type: ignore[arg-type]
            (lambda: api.cancel_execution("ws", 7), "execution_id"),  # type: ignore[arg-type]
        ],
        ids=["empty-workspace", "blank-execution", "none-playbook", "int-execution"],
    )
    def test_empty_ids_are_refused_naming_the_field(self, make, field):
        with pytest.raises(BlinkConfigurationError, match=rf"^{field} must be a non-empty string"):
            make()

    def test_execute_is_not_idempotent_and_reads_are(self):
        assert not api.execute("ws", "pb", {}).idempotent
        assert not api.execute_sync("ws", "pb", {}, 10, 40).idempotent
        assert api.get_execution("ws", "e").idempotent
        assert api.list_executions("ws", {}).idempotent

    def test_what_names_method_and_full_path(self):
        assert api.get_execution("ws", "e").what == "GET /api/v1/workspace/ws/executions/e"

    def test_execute_sync_sends_run_sync_and_timeout(self):
        call = api.execute_sync("ws", "pb", {"event": {}}, 60, 90.0)

        assert call.params == {"run_sync": "true", "timeout": "60"}
        assert call.timeout == 90.0
        assert api.execute_sync("ws", "pb", {}, None, 30.0).params == {"run_sync": "true"}


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ({"ip": "203.0.113.7", endpoints.OPENLINEAGE_INPUT: "try 2"}, True),
        ({"ip": "203.0.113.7"}, True),
        ({"ip": "198.51.100.1", endpoints.OPENLINEAGE_INPUT: "try 1"}, False),
    ],
    ids=["other-try-same-inputs", "no-context", "other-inputs-same-context"],
)
def test_a_record_shows_a_request_whatever_openlineage_context_each_try_sent(sent, shown):
    """The context names the try: a retry still recognises the run its earlier try started."""
    record = {"inputs": {"ip": "203.0.113.7", endpoints.OPENLINEAGE_INPUT: "try 1"}}

    assert endpoints.shows_request(record, {"input_values": sent}) is shown


def results(first: int, count: int) -> list[dict[str, str]]:
    return [{"id": f"e{n}"} for n in range(first, first + count)]


@pytest.mark.parametrize(
    ("page", "offset", "expected"),
    [
        ({"total": 2500, "results": results(0, 1000)}, 0, 1000),
        ({"total": 2500, "results": results(2000, 500)}, 2000, None),
        ({"total": 2000, "results": results(1000, 1000)}, 1000, None),
        ({"results": results(0, 10)}, 0, 10),
        ({"results": []}, 30, None),
        ({"total": 99, "results": []}, 0, None),
    ],
    ids=["first-of-three", "last-short", "last-exact", "no-total", "empty-page", "empty-despite-total"],
)
def test_next_offset(page, offset, expected):
    pages = api.Pages("GET /api/v1/workspace/ws/executions")
    pages.offset = offset

    assert pages.next_offset(page) == expected


class TestParseAnswer:
    GET = api.get_execution("ws", "e-1")

    @pytest.mark.parametrize(
        ("status", "error_class"),
        [
            (400, BlinkBadRequestError),
            (401, BlinkAuthenticationError),
            (403, BlinkPermissionError),
            (404, BlinkNotFoundError),
            (409, BlinkClientError),
            (429, BlinkRateLimitError),
            (500, BlinkServerError),
            (502, BlinkServerError),
            (503, BlinkServerError),
        ],
        ids=["400", "401", "403", "404", "409", "429", "500", "502", "503"],
    )
    def test_errors_carry_blinks_error_wrapper(self, status, error_class):
        with pytest.raises(error_class) as info:
            api.parse_answer(self.GET, status, error_body(status, "Bad thing", "the details", "id-9"), {})

        error = info.value
        assert type(error) is error_class
        assert (error.status, error.message, error.details, error.identifier) == (
            status,
            "Bad thing",
            "the details",
            "id-9",
        )
        assert error.data == {"execution_id": "e-1"}
        assert str(error).startswith(f"Blink refused GET /api/v1/workspace/ws/executions/e-1: HTTP {status}")
        assert "message='Bad thing'" in str(error)
        assert "identifier='id-9'" in str(error)

    @pytest.mark.parametrize(
        ("header", "seconds"),
        [("2", 2.0), ("1.5", 1.5), ("-3", 0.0), ("", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
        ids=["seconds", "fraction", "negative", "empty", "http-date"],
    )
    def test_retry_after_header(self, header, seconds):
        with pytest.raises(BlinkRateLimitError) as info:
            api.parse_answer(self.GET, 429, error_body(429), {"Retry-After": header})

        assert info.value.retry_after == seconds

    def test_html_error_page_is_quoted_cut(self):
        page = "<html><body>" + "Bad Gateway " * 100 + "</body></html>"

        with pytest.raises(BlinkServerError) as info:
            api.parse_answer(self.GET, 502, page, {})

        assert info.value.message.startswith("<html><body>Bad Gateway")
        assert info.value.message.endswith(f"... ({len(page)} chars)")
        assert len(info.value.message) < 600

    @pytest.mark.parametrize(
        ("call", "status", "text", "fragment"),
        [
            (GET, 200, "", "an empty body"),
            (GET, 200, "  \n", "an empty body"),
            (GET, 200, '{"id": ', 'not JSON: {"id": '),
            (GET, 200, "<html>ok</html>", "not JSON: <html>ok</html>"),
            (GET, 200, '{"state": "Completed"}', "id must be a non-empty string"),
            (GET, 200, "[1, 2]", "the execution must be an object, got a list"),
            (api.execute("ws", "pb", {}), 200, '{"id": "x"}', "execution_id must be a non-empty string"),
            (api.list_executions("ws", {}), 200, '{"total": 0}', "results must be a list"),
        ],
        ids=[
            "empty",
            "blank",
            "truncated-json",
            "html",
            "execution-without-id",
            "execution-not-object",
            "execute-without-id",
            "list-without-results",
        ],
    )
    def test_unreadable_answers(self, call, status, text, fragment):
        with pytest.raises(BlinkResponseError) as info:
            api.parse_answer(call, status, text, {})

        assert fragment in str(info.value)

    def test_reads_results(self):
        assert api.parse_answer(api.execute("ws", "pb", {}), 200, '{"execution_id": "e-9"}', {}) == "e-9"
        assert api.parse_answer(self.GET, 200, '{"id": "e-1", "state": "running"}', {})["id"] == "e-1"
        assert api.parse_answer(api.execute_sync("ws", "pb", {}, None, 1), 200, "[1]", {}) == [1]

    @pytest.mark.parametrize(
        "body", ['"OK"', "OK", "", "<html>ok</html>"], ids=["json", "text", "empty", "html"]
    )
    def test_a_cancel_reads_the_status_not_the_body(self, body):
        cancel = api.cancel_execution("ws", "e-1")

        assert api.parse_answer(cancel, 200, body, {}) is True
        assert api.parse_answer(cancel, 204, body, {}) is True
        with pytest.raises(BlinkBadRequestError):  # procedures.cancel reads it with a GET
            api.parse_answer(cancel, 400, error_body(400, "Cannot cancel execution"), {})
        with pytest.raises(BlinkNotFoundError):
            api.parse_answer(cancel, 404, error_body(404), {})

    @settings(deadline=None)  # the deep-nesting examples are slow to build on a busy runner
    @given(
        status=st.integers(min_value=100, max_value=599),
        text=st.one_of(
            st.text(),
            st.from_regex(r"\A[\[\]{}\":,0-9a-z ]*\Z"),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                max_leaves=10,
            ).map(json.dumps),
            st.fixed_dictionaries(
                {},
                optional={
                    "id": st.none() | st.text() | st.integers(),
                    "execution_id": st.none() | st.text() | st.integers(),
                    "results": st.none() | st.lists(st.integers(), max_size=2) | st.text(),
                    "message": st.none() | st.text() | st.integers() | st.lists(st.text(), max_size=2),
                    "details": st.none() | st.text() | st.dictionaries(st.text(), st.text(), max_size=2),
                    "identifier": st.none() | st.text() | st.floats(),
                    "data": st.none() | st.text() | st.dictionaries(st.text(), st.integers(), max_size=2),
                },
            ).map(json.dumps),
        ),
        retry_after=st.none() | st.text(max_size=10),
        call=st.sampled_from(
            [
                api.get_execution("ws", "e"),
                api.execute("ws", "pb", {}),
                api.execute_sync("ws", "pb", {}, 5, 35),
                api.list_executions("ws", {}),
                api.cancel_execution("ws", "e"),
            ]
        ),
    )
    @example(status=200, text="[" * 100_000 + "]" * 100_000, retry_after=None, call=GET)
    @example(status=502, text="{" * 100_000, retry_after="1e999", call=GET)
    def test_any_answer_gives_a_value_or_a_provider_error(self, status, text, retry_after, call):
        error: BlinkError | None = None
        try:
            api.parse_answer(call, status, text, {} if retry_after is None else {"Retry-After": retry_after})
        except BlinkError as exc:  # anything else propagates and fails the test
            error = exc

        if error is not None:
            assert str(error)
        if isinstance(error, BlinkApiError):
            assert error.status == status
            assert all(isinstance(v, str) for v in (error.message, error.details, error.identifier))


def test_every_kind_of_answer_in_the_registry_has_its_reader():
    """A new endpoint whose answer is of a known kind needs no code in api.py: the request reads it."""
    for endpoint in endpoints.ENDPOINTS.values():
        call = api.request(endpoint, dict.fromkeys(endpoint.ids, "x"))
        assert call.read is api.READERS[endpoint.answer], endpoint.name
        assert call.reads_body is (endpoint.answer != "nothing"), endpoint.name
