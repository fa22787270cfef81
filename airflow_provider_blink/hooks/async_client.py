"""BlinkAsyncClient: asynchronous Blink calls over one aiohttp session (for triggers)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from requests.utils import select_proxy

from airflow_provider_blink import api
from airflow_provider_blink.exceptions import BlinkTransportError
from airflow_provider_blink.hooks import calls
from airflow_provider_blink.hooks.answers import CHUNK_BYTES, AnswerBody
from airflow_provider_blink.hooks.attempts import CallAttempts
from airflow_provider_blink.hooks.connection import proxies_for, warn_if_unverified
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
        self._proxy = select_proxy(config.api_url, proxies_for(config))
        # total: connect, headers and body together (a server trickling its answer cannot hold a call).
        self._timeout = aiohttp.ClientTimeout(total=config.timeout, sock_connect=config.timeout)
        warn_if_unverified(config, log)

    @property
    def log(self) -> Any:
        """The logger the client reports retries and warnings to."""
        return self._log

    async def _send(self, call: api.ApiCall[Any]) -> Any:
        import aiohttp

        timeout = self._timeout
        if call.timeout:
            timeout = aiohttp.ClientTimeout(total=call.timeout, sock_connect=self.config.timeout)
        try:
            async with self._session.request(
                call.method,
                f"{self.config.api_url}{call.path}",
                params=call.params,
                json=call.body,
                ssl=self._ssl,
                proxy=self._proxy,
                timeout=timeout,
                allow_redirects=False,  # the key goes to the configured Blink only
            ) as response:
                status, headers = response.status, response.headers
                body = AnswerBody(call, status, headers.get("Content-Encoding"))
                if body.plain and response.content_length is not None:
                    if response.content_length > call.answer_limit:  # refused unread
                        raise api.answer_too_large(call, status)
                    body.feed(await response.read())
                else:
                    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                        body.feed(chunk)
                text = api.decode(body.done(), response.charset)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise BlinkTransportError(
                f"Blink did not answer {call.what}: {type(exc).__name__}: {exc}", request_sent=False
            ) from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise BlinkTransportError(
                f"Blink did not answer {call.what}: {type(exc).__name__}: {exc or 'timed out'}"
            ) from None
        return api.parse_answer(call, status, text, headers)

    async def call(
        self,
        call: api.ApiCall[Any],
        recover: Callable[[], Awaitable[Any]] | None = None,
        *,
        retry_when: Callable[[BaseException], bool] | None = None,
    ) -> Any:
        """
        Make one API call with retries (same policy and ``recover`` as :meth:`BlinkHook.call`).

        :param retry_when: retry only the failures this accepts too (see :class:`.CallAttempts`).
        """
        attempts = CallAttempts(call, self.config, self._log, self._send, asyncio.sleep, recover, retry_when)
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

    async def list_executions(
        self,
        *,
        workspace_id: str | None = None,
        retry_when: Callable[[BaseException], bool] | None = None,
        **query: Any,
    ) -> dict[str, Any]:
        """Async :meth:`BlinkHook.list_executions` (``retry_when``: see :meth:`call`)."""
        return await self.call(
            api.list_executions(self.config.workspace(workspace_id), api.rql_query(**query)),
            retry_when=retry_when,
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
