"""Call the hook the sync way or the async way with one interface, so one test covers both clients."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_provider_blink.hooks.blink import BlinkHook


class Client:
    """
    Call one hook method the sync way (``BlinkHook``) or the async way (``async_client()``).

    :param mode: ``"sync"`` or ``"async"``.
    :param conn_id: the Airflow connection to call Blink with.
    """

    def __init__(self, mode: str, conn_id: str = "blink_default") -> None:
        self.mode = mode
        self.conn_id = conn_id

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        hook = BlinkHook(self.conn_id)
        if self.mode == "sync":
            return getattr(hook, method)(*args, **kwargs)

        async def run() -> Any:
            async with hook.async_client() as client:
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(run())
