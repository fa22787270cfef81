"""BlinkAsyncClient: asynchronous Blink calls over one aiohttp session (for triggers)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_blink import api
from airflow_provider_blink.exceptions import BlinkTransportError
from airflow_provider_blink.hooks import calls
from airflow_provider_blink.hooks.attempts import CallAttempts
from airflow_provider_blink.procedures import adrive, all_steps, cancel

if TYPE_CHECKING:
    import aiohttp

    from airflow_provider_blink.hooks.connection import BlinkConnectionConfig


class BlinkAsyncClient:
    """
    Asynchronous Blink calls over one aiohttp session, with the same methods as :class:`BlinkHook`.

    Get one from :meth:`BlinkHook.async_client`.
    """

    def __init__(self, config: BlinkConnectionConfig, session: aiohttp.ClientSession, log: Any) -> None:
        import aiohttp

        self.config = config
        self._session = session
        self._log = log
        # Worked out once per client, not per request: a trigger polls through the same client.
        self._ssl = _aiohttp_ssl(config.verify)
        self._proxy = _proxy_for(config)
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.timeout, sock_read=config.timeout
        )

    async def _send(self, call: api.ApiCall[Any]) -> Any:
        import aiohttp

        timeout = self._timeout
        if call.timeout:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self.config.timeout, sock_read=call.timeout
            )
        try:
            async with self._session.request(
                call.method,
                f"{self.config.api_url}{call.path}",
                params=call.params,
                json=call.body,
                ssl=self._ssl,
                proxy=self._proxy,
                timeout=timeout,
            ) as response:
                status, retry_after = response.status, response.headers.get("Retry-After")
                content_type = response.headers.get("Content-Type")
                if response.content_length is not None and response.content_length <= api.MAX_ANSWER_BYTES:
                    body = await response.read()
                else:  # unknown or too large a length: read no more than the cap
                    body = await response.content.read(api.MAX_ANSWER_BYTES + 1)
                    while len(body) <= api.MAX_ANSWER_BYTES and (more := await response.content.read(65536)):
                        body += more
                    if len(body) > api.MAX_ANSWER_BYTES:
                        raise api.answer_too_large(call, status)
                text = api.decode(body, response.charset)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise BlinkTransportError(
                f"Blink did not answer {call.what}: {type(exc).__name__}: {exc}", request_sent=False
            ) from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise BlinkTransportError(
                f"Blink did not answer {call.what}: {type(exc).__name__}: {exc or 'timed out'}"
            ) from None
        return api.parse_answer(call, status, text, retry_after, content_type)

    async def call(self, call: api.ApiCall[Any], recover: Callable[[], Awaitable[Any]] | None = None) -> Any:
        """Make one API call with retries (same policy and ``recover`` as :meth:`BlinkHook.call`)."""
        attempts = CallAttempts(call, self.config, self._log, self._send, asyncio.sleep, recover)
        for step in attempts:
            with step:
                step.result = await step.action()
        return attempts.result

    async def execute_playbook(
        self, playbook_id: str, *, workspace_id: str | None = None, **body: Any
    ) -> str:
        """Async :meth:`BlinkHook.execute_playbook` (with the same protection against a second run)."""
        start = calls.StartPlaybook(self.config, playbook_id, workspace_id, body)

        async def recover() -> str | None:
            return start.found(await adrive(start.lookup(), self.call), self._log)

        return await self.call(start.call, recover)

    async def run_playbook_sync(
        self, playbook_id: str, *, workspace_id: str | None = None, timeout: int | None = None, **body: Any
    ) -> Any:
        """Async :meth:`BlinkHook.run_playbook_sync`."""
        return await self.call(calls.run_playbook_sync(self.config, playbook_id, workspace_id, timeout, body))

    async def get_execution(self, execution_id: str, *, workspace_id: str | None = None) -> dict[str, Any]:
        """Async :meth:`BlinkHook.get_execution`."""
        return await self.call(api.get_execution(self.config.workspace(workspace_id), execution_id))

    async def get_execution_steps(
        self, execution_id: str, *, workspace_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Async :meth:`BlinkHook.get_execution_steps`."""
        return await adrive(all_steps(self.config.workspace(workspace_id), execution_id), self.call)

    async def list_executions(self, *, workspace_id: str | None = None, **query: Any) -> dict[str, Any]:
        """Async :meth:`BlinkHook.list_executions`."""
        return await self.call(
            api.list_executions(self.config.workspace(workspace_id), api.rql_query(**query))
        )

    async def iter_executions(
        self, *, workspace_id: str | None = None, page_size: int = api.MAX_PAGE_SIZE, **query: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`BlinkHook.iter_executions`."""
        pages = calls.ExecutionPages(self.config.workspace(workspace_id), page_size, query)
        for page_query in pages:
            for execution in pages.read(await self.list_executions(workspace_id=workspace_id, **page_query)):
                yield execution

    async def cancel_execution(self, execution_id: str, *, workspace_id: str | None = None) -> bool:
        """Async :meth:`BlinkHook.cancel_execution`."""
        return await adrive(cancel(self.config.workspace(workspace_id), execution_id), self.call)


def _aiohttp_ssl(verify: bool | str) -> Any:
    if verify is True:
        return True
    if verify is False:
        return False
    import ssl

    return _ssl_context(verify, ssl)


@functools.lru_cache(maxsize=8)
def _ssl_context(cafile: str, ssl: Any) -> Any:
    return ssl.create_default_context(cafile=cafile)


def _proxy_for(config: BlinkConnectionConfig) -> str | None:
    if not config.proxies:
        return None
    scheme = urlsplit(config.url).scheme
    return config.proxies.get(scheme) or config.proxies.get("all")
