"""Concurrent starts share one connection read in flight; nothing is cached after it."""

from __future__ import annotations

import asyncio

from airflow_provider_blink.hooks import connection
from airflow_provider_blink.hooks.blink import BlinkHook


async def test_concurrent_readers_share_the_read_in_flight_and_nothing_is_kept(emulator, monkeypatch):
    reads = []
    real = connection.get_async_connection

    async def counting(conn_id):
        reads.append(conn_id)
        await asyncio.sleep(0.05)  # a look-up that takes a while, as through sync_to_async
        return await real(conn_id)

    monkeypatch.setattr(connection, "get_async_connection", counting)

    configs = await asyncio.gather(*(BlinkHook().aget_config() for _ in range(50)))
    again = await BlinkHook().aget_config()

    assert reads == ["blink_default", "blink_default"], "one read for the 50 at once, a fresh one after"
    assert {c.url for c in configs} == {emulator.url}
    assert again.url == emulator.url


async def test_a_cancelled_reader_does_not_cancel_the_others(emulator):
    first = asyncio.ensure_future(BlinkHook().aget_config())
    second = asyncio.ensure_future(BlinkHook().aget_config())
    await asyncio.sleep(0)
    first.cancel()

    config = await second

    assert config.url == emulator.url


async def test_the_key_is_masked_off_the_event_loop(emulator, monkeypatch):
    # In Airflow 3.0's triggerer, mask_secret is a synchronous call to the supervisor (asgiref's
    # AsyncToSync), which raises on the triggerer's event loop: every deferred task failed there.
    masked = []

    def mask_secret_as_airflow_3_0_does(secret):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            masked.append(secret)
            return
        raise RuntimeError("You cannot use AsyncToSync in the same thread as an async event loop")

    monkeypatch.setattr(connection, "mask_secret", mask_secret_as_airflow_3_0_does)

    config = await BlinkHook().aget_config()

    assert config.url == emulator.url
    assert masked == [emulator.api_key]
