"""The emulator answers as Blink documents, field for field; where the documents are silent, as observed (docs/blink-api-contract.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from airflow_provider_blink.testing import Outcome, Phase, ScriptedPlaybook
from airflow_provider_blink.testing.records import GET_FIELDS, LIST_FIELDS, STEP_FIELDS

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "blink-api"
#: Blink's documented example bodies (docs/blink-api-contract.md#documented-get, #documented-list).
GET_EXAMPLE = json.loads((EXAMPLES / "get-execution.json").read_text())
LIST_EXAMPLE = json.loads((EXAMPLES / "list-executions.json").read_text())


def test_the_field_lists_are_the_documented_examples():
    assert tuple(GET_EXAMPLE) == GET_FIELDS
    assert tuple(LIST_EXAMPLE["results"][0]) == LIST_FIELDS
    assert set(LIST_EXAMPLE) == {"limit", "offset", "total", "results"}


def test_the_single_get_answers_exactly_the_documented_fields(api):
    record = api.get(api.start("pb-fast", {"input_values": {"ioc": "x"}, "event": {"alert": 1}}))

    assert list(record) == list(GET_EXAMPLE)
    for name, example in GET_EXAMPLE.items():
        assert isinstance(record[name], type(example)), name


def test_list_items_carry_exactly_the_documented_fields(api):
    api.start("pb-fast", {"input_values": {"ioc": "x"}, "event": {"alert": 1}})

    body = api.list().json()

    assert set(body) == set(LIST_EXAMPLE)
    (item,) = body["results"]
    assert list(item) == list(LIST_EXAMPLE["results"][0])
    assert not {"inputs", "event", "duration", "display_name", "playbook_name"} & set(item)


def test_a_list_filter_on_a_field_list_items_lack_matches_nothing(api):
    api.start("pb-fast", {"input_values": {"ioc": "x"}})

    assert api.list({"filter": {"inputs": {"ioc": "x"}}}).json()["results"] == []


@pytest.mark.parametrize("null_results", [False, True], ids=["empty-list", "null"])
def test_an_empty_page_says_results_empty_or_null(emu, api, null_results):
    emu.null_results = null_results

    body = api.list().json()

    assert body["total"] == 0
    assert body["results"] == (None if null_results else [])


class TestSteps:
    def test_steps_are_paged_with_total(self, emu, api, wait_for):
        emu.add_playbook(ScriptedPlaybook(id="long", workspace_id="ws-1", steps=60, output={"done": 1}))
        execution_id = api.wait_finished(api.start("long"))["id"]

        first = api.request("GET", f"/executions/{execution_id}/steps").json()
        rest = api.request(
            "GET", f"/executions/{execution_id}/steps", params={"q": json.dumps({"offset": 50})}
        ).json()

        assert (first["limit"], first["offset"], first["total"], len(first["results"])) == (50, 0, 60, 50)
        assert (rest["offset"], rest["total"], len(rest["results"])) == (50, 60, 10)
        steps = first["results"] + rest["results"]
        assert [s["step_id"] for s in steps] == [f"step_{k}" for k in range(1, 61)]
        assert all(list(step) == list(STEP_FIELDS) for step in steps)
        assert json.loads(steps[-1]["output_data"]) == {"done": 1}
        assert json.loads(steps[0]["output_data"]) == {"step": 1}

    def test_a_running_run_lists_the_steps_it_reached(self, emu, api):
        emu.add_playbook(ScriptedPlaybook(id="four", workspace_id="ws-1", steps=4, duration=0.8))
        execution_id = api.start("four")
        time.sleep(0.45)

        steps = api.request("GET", f"/executions/{execution_id}/steps").json()["results"]

        assert 2 <= len(steps) <= 4
        assert [s["state"] for s in steps[:-1]] == ["completed"] * (len(steps) - 1)
        assert (steps[-1]["state"], steps[-1]["output_data"], steps[-1]["finished_at"]) == ("running", "", 0)

    def test_steps_are_listed_as_the_run_reaches_them(self, emu, api, wait_for):
        emu.add_playbook(
            ScriptedPlaybook(
                id="three",
                workspace_id="ws-1",
                duration=0.3,
                steps=3,
                phases=(
                    Phase(0.05, "Pending", until_released=True),
                    Phase(0.15, "Paused", until_released=True),
                ),
                output={"done": 1},
            )
        )
        execution_id = api.start("three")

        def steps_once(state: str) -> list[tuple[str, str, bool]]:
            wait_for(lambda: api.get(execution_id)["state"] == state)
            steps = api.request("GET", f"/executions/{execution_id}/steps").json()["results"]
            assert [s["started_at"] for s in steps[1:]] == [s["finished_at"] for s in steps[:-1]]
            return [(s["step_id"], s["state"], s["finished_at"] > 0) for s in steps]

        first = steps_once("pending")
        emu.release(execution_id)
        second = steps_once("paused")
        emu.release(execution_id)
        third = steps_once("completed")

        assert first == [("step_1", "pending", False)]
        assert second == [("step_1", "completed", True), ("step_2", "paused", False)]
        assert third == [(f"step_{k}", "completed", True) for k in (1, 2, 3)]

    def test_a_failed_step_ends_the_list_with_its_error(self, emu, api):
        emu.add_playbook(
            ScriptedPlaybook(
                id="fails-at-2",
                workspace_id="ws-1",
                duration=0.2,
                steps=3,
                final_state="Failed",
                failed_step=2,
                error_details={"message": "step 2: boom", "error_code": "STEP_FAILED"},
            )
        )
        record = api.wait_finished(api.start("fails-at-2"))

        body = api.request("GET", f"/executions/{record['id']}/steps").json()

        assert body["total"] == 2
        first, failed = body["results"]
        assert (first["state"], first["error_data"], json.loads(first["output_data"])) == (
            "completed",
            "",
            {"step": 1},
        )
        assert (failed["step_id"], failed["state"], failed["error_data"]) == (
            "step_2",
            "failed",
            "step 2: boom",
        )
        assert failed["output_data"] == ""
        assert (first["started_at"], first["finished_at"]) == (
            record["started_at"],
            record["started_at"] + 100,
        )
        assert (failed["started_at"], failed["finished_at"]) == (first["finished_at"], record["finished_at"])

    def test_a_cancelled_run_ends_in_the_step_it_reached(self, emu, api):
        emu.add_playbook(ScriptedPlaybook(id="ten", workspace_id="ws-1", steps=10, duration=60))
        execution_id = api.start("ten")
        api.request("POST", f"/executions/{execution_id}/cancel")

        (step,) = api.request("GET", f"/executions/{execution_id}/steps").json()["results"]

        assert (step["step_id"], step["state"], step["output_data"]) == ("step_1", "cancelled", "")


@pytest.mark.parametrize(
    ("style", "content_type", "body"),
    [("json", "application/json", '"OK"'), ("text", "text/plain", "OK"), ("empty", None, "")],
    ids=["json-string", "plain-text", "empty-body"],
)
def test_a_successful_cancel_answers_in_the_chosen_style(emu, api, style, content_type, body):
    emu.cancel_answer = style
    execution_id = api.start("pb-slow")

    response = api.request("POST", f"/executions/{execution_id}/cancel")

    assert response.status_code == 200
    assert response.text == body
    if content_type:
        assert response.headers["Content-Type"].startswith(content_type)
    assert api.get(execution_id)["state_ui"] == "Cancelled"


def test_an_unknown_cancel_style_is_refused(emu):
    with pytest.raises(ValueError, match="cancel answer"):
        emu.cancel_answer = "xml"


class TestStates:
    def test_a_run_passes_through_its_phases(self, emu, api, wait_for):
        emu.add_playbook(
            ScriptedPlaybook(
                id="approval",
                workspace_id="ws-1",
                duration=0.9,
                phases=(
                    Phase(0.0, "Pending"),
                    Phase(0.3, "Paused", "waiting_for_input"),
                    Phase(0.6, "Running"),
                ),
            )
        )
        execution_id = api.start("approval")
        seen: list[tuple[str, str]] = []

        def finished() -> bool:
            record = api.get(execution_id)
            if not seen or seen[-1] != (record["state_ui"], record["state"]):
                seen.append((record["state_ui"], record["state"]))
            return bool(record["finished_at"])

        wait_for(finished, timeout=5, interval=0.02)

        assert seen[0] == ("Pending", "pending")
        assert ("Paused", "waiting_for_input") in seen
        assert seen[-1] == ("Completed", "completed")

    def test_state_and_state_ui_may_disagree(self, emu, api):
        emu.add_playbook(
            ScriptedPlaybook(id="odd", workspace_id="ws-1", final_state="Errored", final_raw_state="failed")
        )

        record = api.wait_finished(api.start("odd"))

        assert (record["state_ui"], record["state"]) == ("Errored", "failed")

    def test_phases_come_in_order(self):
        with pytest.raises(ValueError, match="order"):
            Outcome(1.0, phases=(Phase(0.5, "Paused"), Phase(0.1, "Pending")))

    def test_a_hold_starts_by_the_run_s_end(self):
        Outcome(1.0, phases=(Phase(1.0, "Pending", until_released=True),))
        with pytest.raises(ValueError, match="duration"):
            Outcome(1.0, phases=(Phase(1.5, "Pending", until_released=True),))

    @pytest.mark.parametrize(
        ("failed_step", "final_state", "message"),
        [
            (0, "Failed", "from 1 to steps"),
            (4, "Failed", "from 1 to steps"),
            (1, "Completed", "unsuccessful"),
        ],
        ids=["zero", "past-the-last", "completed"],
    )
    def test_failed_step_is_one_of_the_steps_of_an_unsuccessful_run(self, failed_step, final_state, message):
        with pytest.raises(ValueError, match=message):
            Outcome(final_state=final_state, steps=3, failed_step=failed_step)


def test_pages_after_the_first_list_ties_in_reverse(emu, api):
    ids = emu.seed_executions("pb-fast", 4, finished_at=1_700_000_000_000)

    def page(offset: int) -> list[str]:
        query = {"sort": ["finished_at"], "limit": 2, "offset": offset}
        return [r["id"] for r in api.list(query).json()["results"]]

    assert page(0) == ids[:2]
    assert page(2) == [ids[1], ids[0]], "ties are not in a promised order: a tiebreaker is needed"
    tiebroken = [r["id"] for r in api.list({"sort": ["finished_at", "id"], "limit": 4}).json()["results"]]
    assert [
        r["id"]
        for o in (0, 2)
        for r in api.list({"sort": ["finished_at", "id"], "limit": 2, "offset": o}).json()["results"]
    ] == tiebroken
