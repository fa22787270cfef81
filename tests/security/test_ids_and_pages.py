"""
Ids are ids, and pagination always ends.

An id or workspace of ``.``/``..`` would be normalised onto another endpoint; an empty one or one
with control characters is not an id: each is refused before any request. A list answer that repeats
its page with a huge ``total``, claims results past ``total``, or keeps giving pages beyond what
``total`` allows ends the iteration with a clear error instead of looping forever.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_blink.exceptions import BlinkConfigurationError, BlinkResponseError
from airflow_provider_blink.hooks.blink import BlinkHook

from support.hostile import Answer, HostileServer, Request, blink_answers, call_hook, json_answer

BAD_IDS = {
    "dot": ".",
    "dot-dot": "..",
    "empty": "",
    "blank": "   ",
    "newline": "exec\n1",
    "nul": "exec\x001",
    "escape": "\x1b[31mexec",
    "delete": "exec\x7f",
    "tab": "exec\t1",
}
#: (method, arguments with ``{id}`` where the bad id goes)
ID_CALLS = {
    "get": ("get_execution", ("{id}",), {}),
    "steps": ("get_execution_steps", ("{id}",), {}),
    "cancel": ("cancel_execution", ("{id}",), {}),
    "execute": ("execute_playbook", ("{id}",), {}),
    "workspace": ("get_execution", ("exec-1",), {"workspace_id": "{id}"}),
}


def fill(value: Any, bad: str) -> Any:
    return bad if value == "{id}" else value


def call(client: str, name: str, bad: str) -> Any:
    method, args, kwargs = ID_CALLS[name]
    args = tuple(fill(arg, bad) for arg in args)
    return call_hook(client, method, *args, **{key: fill(value, bad) for key, value in kwargs.items()})


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("name", ID_CALLS)
@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_a_bad_id_is_refused_before_any_request(use_blink, client, name, bad):
    with HostileServer(blink_answers) as blink:
        use_blink(blink.url)

        with pytest.raises(BlinkConfigurationError) as info:
            call(client, name, bad)

    assert blink.requests == []
    assert "_id" in str(info.value), "the message names the argument"


def test_ordinary_ids_still_work(use_blink):
    with HostileServer(blink_answers) as blink:
        use_blink(blink.url)
        BlinkHook().get_execution("a.b..c-1_2~3")
        BlinkHook().get_execution("ex/ec 1")

    assert [request.target.split("/executions/")[1] for request in blink.requests] == [
        "a.b..c-1_2~3",
        "ex%2Fec%201",
    ]


# -- pagination ---------------------------------------------------------------------------------


def page_server(pages: Any) -> Any:
    """Answers a list call from ``pages(offset, limit)`` (a page body)."""

    def respond(request: Request) -> Answer:
        query = json.loads(parse_qs(urlsplit(request.target).query)["q"][0])
        return json_answer(pages(query.get("offset", 0), query["limit"]))

    return respond


def execution(number: int) -> dict[str, Any]:
    return {"id": f"exec-{number}", "state_ui": "Completed", "created_at": number}


def repeated_page(offset: int, limit: int) -> dict[str, Any]:
    return {"limit": limit, "offset": 0, "total": 10**9, "results": [execution(n) for n in range(limit)]}


def past_total(offset: int, limit: int) -> dict[str, Any]:
    results = [execution(offset + n) for n in range(limit)]
    return {"limit": limit, "offset": offset, "total": 5, "results": results}


def more_than_total(offset: int, limit: int) -> dict[str, Any]:
    """Full pages of new executions forever, while ``total`` stays at 25."""
    return {
        "limit": limit,
        "offset": offset,
        "total": 25,
        "results": [execution(offset + n) for n in range(2)],
    }


def honest(offset: int, limit: int) -> dict[str, Any]:
    results = [execution(n) for n in range(offset, min(offset + limit, 23))]
    return {"limit": limit, "offset": offset, "total": 23, "results": results}


ENDLESS = {"repeated-page": repeated_page, "past-total": past_total, "more-than-total": more_than_total}


def iterate(client: str, most: int) -> list[dict[str, Any]]:
    """At most ``most`` executions of ``iter_executions`` (pages of 10)."""
    hook = BlinkHook()
    if client == "sync":
        return list(itertools.islice(hook.iter_executions(page_size=10), most))

    async def iterate_async() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async with hook.async_client() as blink:
            async for item in blink.iter_executions(page_size=10):
                found.append(item)
                if len(found) == most:
                    break
        return found

    return asyncio.run(iterate_async())


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("pages", ENDLESS.values(), ids=ENDLESS.keys())
def test_endless_pages_end_in_a_clear_error(use_blink, client, pages):
    with HostileServer(page_server(pages)) as blink:
        use_blink(blink.url)

        with pytest.raises(BlinkResponseError, match="pag") as info:
            iterate(client, most=1000)

    assert "GET /api/v1/workspace/" in str(info.value)
    assert len(blink.requests) <= 20


@pytest.mark.parametrize("client", ["sync", "async"])
def test_honest_pages_are_read_to_the_end(use_blink, client):
    with HostileServer(page_server(honest)) as blink:
        use_blink(blink.url)

        found = iterate(client, most=1000)

    assert [item["id"] for item in found] == [f"exec-{n}" for n in range(23)]
    assert len(blink.requests) == 3
