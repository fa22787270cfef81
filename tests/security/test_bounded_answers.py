"""
Every answer ends within a bound: in time (the connection's ``timeout`` bounds a whole attempt) and
in memory (the answer cap counts decompressed bytes), in both clients.

A server that trickles its answer one byte at a time never lets a per-read timeout fire; a small
gzip or deflate answer expands to far more than the cap; an answer without ``Content-Length`` is read
until the server closes. Each ends in a clear ``BlinkError`` — the trickle as a timeout, retried per
the connection's policy, within the README's bound on a failing call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_provider_blink import api
from airflow_provider_blink.exceptions import BlinkResponseError, BlinkTransportError
from airflow_provider_blink.hooks.transport import RetryPolicy

from support.emulator import API_KEY, WORKSPACE
from support.hostile import (
    Answer,
    HostileServer,
    call_blink,
    call_hook,
    compression_bomb,
    trickling,
    unbounded,
)

REPO = Path(__file__).resolve().parents[2]

EXECUTION = {"id": "exec-1", "state_ui": "Completed", "note": "x" * 200}
TIMEOUT = 1.0
RETRIES = 1
ENCODINGS = ["gzip", "deflate"]


def readme_bound(timeout: float, retries: int, retry_delay: float) -> float:
    """The README's bound on a failing call: ``(retry_limit + 1) * timeout`` plus the waits."""
    waits = sum(min(retry_delay * 2**attempt, RetryPolicy.max_delay) for attempt in range(retries))
    return (retries + 1) * timeout + waits


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("phase", ["body", "headers"])
def test_a_trickling_server_is_a_timeout_within_the_readme_bound(use_blink, client, phase):
    # 200+ bytes at one every 50 ms: about 12 s per answer, while no single read waits over 50 ms.
    answer = trickling(EXECUTION, interval=0.05, head=phase == "headers")
    with HostileServer(answer) as blink:
        use_blink(blink.url, timeout=TIMEOUT, retry_limit=RETRIES, retry_delay=0.01)
        started = time.monotonic()

        with pytest.raises(BlinkTransportError) as info:
            call_blink(client, "get")
        elapsed = time.monotonic() - started

    assert len(blink.requests) == RETRIES + 1, "a timeout is retried per the connection's policy"
    assert elapsed < readme_bound(TIMEOUT, RETRIES, 0.01) + 2.0, f"took {elapsed:.1f}s"
    assert "GET /api/v1/workspace/" in str(info.value)


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """The answer cap lowered to 1 MiB, so a test need not send 32 MiB."""
    monkeypatch.setattr(api, "MAX_ANSWER_BYTES", 2**20)
    return 2**20


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_compression_bomb_is_refused_after_decompression(use_blink, small_cap, client, encoding):
    bomb = compression_bomb(encoding, 8 * small_cap, EXECUTION)
    assert len(bomb.body) < small_cap // 10, "the compressed answer is far below the cap"
    with HostileServer(bomb) as blink:
        use_blink(blink.url)

        with pytest.raises(BlinkResponseError, match="larger than 1 MiB"):
            call_blink(client, "get")


@pytest.mark.parametrize("client", ["sync", "async"])
def test_an_answer_without_length_is_read_up_to_the_cap(use_blink, small_cap, client):
    prefix = json.dumps(EXECUTION)[:-1].encode() + b', "pad": "'
    with HostileServer(unbounded(prefix, 4 * small_cap)) as blink:
        use_blink(blink.url)

        with pytest.raises(BlinkResponseError, match="larger than 1 MiB"):
            call_blink(client, "get")


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_small_answer_without_length_is_read_whole(use_blink, client):
    with HostileServer(Answer(200, json.dumps(EXECUTION).encode(), content_length=False)) as blink:
        use_blink(blink.url)

        assert call_blink(client, "get") == EXECUTION


#: A call's answers as the server may send them: with ``Content-Length``, without, compressed.
BODIES = {
    "length": lambda size: Answer(200, json.dumps({**EXECUTION, "pad": "0" * size}).encode()),
    "no-length": lambda size: unbounded(json.dumps(EXECUTION)[:-1].encode() + b', "pad": "', size),
    "gzip": lambda size: compression_bomb("gzip", size, EXECUTION),
}


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_a_call_bounded_by_its_question_refuses_a_larger_answer(use_blink, client, body):
    bounded = replace(api.get_execution(WORKSPACE, "exec-1"), max_bytes=4096)
    with HostileServer(body(4 * 4096)) as blink:
        use_blink(blink.url)

        with pytest.raises(BlinkResponseError, match="larger than 4 KiB, more than what was asked for"):
            call_hook(client, "call", bounded)


#: Run in a fresh interpreter: the peak resident memory while one answer is refused, in MiB above the
#: memory resident before the call. A first, small answer warms the path up beforehand: what the first
#: call loads (on Airflow 2 reading the connection imports much of Airflow) is not the answer's memory.
PEAK_MEMORY_PROBE = textwrap.dedent(
    """
    import json, os, sys
    sys.path[:0] = [os.environ["REPO"], os.path.join(os.environ["REPO"], "tests")]
    from support.hostile import Answer, HostileServer, blink_connection, call_blink, compression_bomb, unbounded
    from airflow_provider_blink import api
    from airflow_provider_blink.exceptions import BlinkResponseError
    import airflow_provider_blink.hooks.blink, aiohttp, requests  # imported before the baseline

    def peak_kib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

    kind, client = sys.argv[1], sys.argv[2]
    cap = api.MAX_ANSWER_BYTES
    answer = (
        compression_bomb(kind, 8 * cap, {"id": "exec-1"})
        if kind in ("gzip", "deflate")
        else unbounded(b'{"id": "exec-1", "pad": "', 3 * cap)
    )
    warm_up = Answer(200, json.dumps({"id": "exec-1", "state_ui": "Running"}).encode())
    with HostileServer(lambda request: warm_up if len(blink.requests) == 1 else answer) as blink:
        os.environ["AIRFLOW_CONN_BLINK_DEFAULT"] = blink_connection(blink.url, os.environ["KEY"], "ws", timeout=60)
        assert call_blink(client, "get")["id"] == "exec-1"
        with open("/proc/self/clear_refs", "w") as clear:  # restart the peak (VmHWM) from resident now:
            clear.write("5")  # not the imports', nor the parent's that fork+exec leaves in ru_maxrss
        before = peak_kib()
        try:
            call_blink(client, "get")
        except BlinkResponseError as exc:
            assert "larger than" in str(exc), exc
        else:
            raise AssertionError("the answer was accepted")
        after = peak_kib()
    print(json.dumps({"peak_mib": (after - before) / 1024, "cap_mib": cap / 2**20}))
    """
)


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("kind", [*ENCODINGS, "no-length"])
def test_peak_memory_of_a_refused_answer_stays_near_the_cap(client, kind):
    """A real 32 MiB cap, in a child process so the peak is this answer's alone (the bomb: 256 MiB)."""
    # A clean environment: what earlier tests left in os.environ must not shape the child's memory.
    keep = ("PATH", "HOME", "AIRFLOW_HOME", "LANG")
    env = {
        **{name: os.environ[name] for name in keep if name in os.environ},
        "REPO": str(REPO),
        "KEY": API_KEY,
    }
    result = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_PROBE, kind, client],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    assert figures["peak_mib"] < 1.25 * figures["cap_mib"] + 8, figures
