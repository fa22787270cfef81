"""BlinkHook: the Airflow hook for Blink, its synchronous calls, and the door to :class:`.BlinkAsyncClient`."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import requests
import urllib3.exceptions

from airflow_provider_blink import api
from airflow_provider_blink.compat import BaseHook
from airflow_provider_blink.connection_form import (
    CONN_FIELDS,
    CONN_TYPE,
    DEFAULT_CONN_ID,
    UI_FIELD_BEHAVIOUR,
)
from airflow_provider_blink.exceptions import BlinkError, BlinkTransportError
from airflow_provider_blink.hooks import calls, sessions
from airflow_provider_blink.hooks.answers import CHUNK_BYTES, AnswerBody
from airflow_provider_blink.hooks.async_client import BlinkAsyncClient
from airflow_provider_blink.hooks.attempts import CallAttempts
from airflow_provider_blink.hooks.connection import (
    DEFAULT_TIMEOUT,
    USER_AGENT,
    BlinkConnectionConfig,
    aread_connection,
    proxies_for,
    read_connection,
    warn_if_unverified,
)
from airflow_provider_blink.hooks.deadline import DeadlineAdapter, attempt_deadline
from airflow_provider_blink.procedures import all_steps, cancel, drive

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "BlinkAsyncClient",
    "BlinkConnectionConfig",
    "BlinkHook",
    "read_connection",
]


class BlinkHook(BaseHook):
    """
    Talk to Blink's REST API through an Airflow ``blink`` connection.

    Synchronous calls share one keep-alive ``requests.Session``; for asynchronous calls open
    :meth:`async_client` once and make every call through it. Failed calls are retried per
    :mod:`airflow_provider_blink.retries`; errors are :mod:`airflow_provider_blink.exceptions`.

    :param blink_conn_id: the Airflow connection: Host = Blink URL, Password = API key, extra
        ``workspace_id`` (default workspace), ``timeout``, ``verify``, ``proxies``,
        ``retry_limit``, ``retry_delay``.
    """

    conn_name_attr = "blink_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Blink"

    def __init__(self, blink_conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__()
        self.blink_conn_id = blink_conn_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(blink_conn_id={self.blink_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide connection-form boxes (Airflow 2; Airflow 3 reads provider info)."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden_fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Add the Workspace ID box to the connection form (Airflow 2; Airflow 3 reads provider info)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField

        return {
            name: StringField(
                lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(), description=spec["description"]
            )
            for name, spec in CONN_FIELDS.items()
        }

    @functools.cached_property
    def config(self) -> BlinkConnectionConfig:
        """The connection, read once per hook."""
        return read_connection(self.get_connection(self.blink_conn_id))

    async def aget_config(self) -> BlinkConnectionConfig:
        """The connection, read without blocking the event loop (see :func:`.aread_connection`)."""
        return await aread_connection(self.blink_conn_id)

    @functools.cached_property
    def session(self) -> requests.Session:
        """
        One keep-alive session per hook: repeated calls reuse its TCP/TLS connection.

        Its settings are worked out here, once: no environment look-up per call (``trust_env``
        off; the proxies come from :func:`.proxies_for`), and every attempt bounded as a whole.
        """
        session = requests.Session()
        session.trust_env = False
        session.headers.update(self.config.headers)
        session.verify = self.config.verify
        session.proxies = proxies_for(self.config)
        adapter = DeadlineAdapter()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        warn_if_unverified(self.config, self.log)
        return session

    def close(self) -> None:
        """Release the session's connections (a new one opens on the next call)."""
        if "session" in self.__dict__:
            self.__dict__.pop("session").close()

    def _send(self, call: api.ApiCall[Any]) -> Any:
        timeout = call.timeout or self.config.timeout
        try:
            # The deadline bounds connect, headers and body together: requests' own timeouts bound
            # each read, so a server trickling its answer could hold the call for ever.
            with (
                attempt_deadline(timeout),
                self.session.request(
                    call.method,
                    f"{self.config.api_url}{call.path}",
                    params=call.params,
                    json=call.body,
                    timeout=(min(timeout, self.config.timeout), timeout),
                    stream=True,
                    allow_redirects=False,  # the key goes to the configured Blink only
                ) as response,
            ):
                body = AnswerBody(call, response.status_code, response.headers.get("Content-Encoding"))
                for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                    body.feed(chunk)
        except (requests.ConnectionError, requests.Timeout, urllib3.exceptions.ReadTimeoutError) as exc:
            never_connected = isinstance(exc, requests.ConnectTimeout) or _is_refused(exc)
            raise BlinkTransportError(
                f"Blink did not answer {call.what}: {type(exc).__name__}: {exc}",
                request_sent=not never_connected,
            ) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:  # e.g. broke off mid-body
            raise BlinkTransportError(
                f"Blink's answer to {call.what} broke off: {type(exc).__name__}: {exc}"
            ) from None
        text = api.decode(body.done(), response.encoding)
        return api.parse_answer(call, response.status_code, text, response.headers)

    def call(self, call: api.ApiCall[Any], recover: Callable[[], Any] | None = None) -> Any:
        """
        Make one API call with retries; the building block of the methods below.

        :param recover: for a call that is not idempotent: after an ambiguous failure, finds what
            the failed attempt did (or ``None``) before the call is sent again.
        """
        attempts = CallAttempts(call, self.config, self.log, self._send, time.sleep, recover)
        for step in attempts:
            with step:
                step.result = step.action()
        return attempts.result

    def execute_playbook(self, playbook_id: str, *, workspace_id: str | None = None, **body: Any) -> str:
        """
        Start a playbook and return the new execution's id.

        Starting is not idempotent: when an attempt fails without showing whether Blink started
        the run (timeout, dropped answer, 502/504), the hook looks for that run before sending
        again, so one call never starts two executions.

        :param playbook_id: the playbook's id.
        :param workspace_id: overrides the connection's workspace.
        :param body: ``input_values``, ``event``, ``runner``, ``trigger_type``, ``callback``, ``past_exec_ref``.
        """
        start = calls.StartPlaybook(self.config, playbook_id, workspace_id, body)
        return self.call(start.call, lambda: start.found(drive(start.lookup(), self.call), self.log))

    def run_playbook_sync(
        self, playbook_id: str, *, workspace_id: str | None = None, timeout: int | None = None, **body: Any
    ) -> Any:
        """
        Run a playbook in Blink's synchronous mode and return its output (Blink answers when it ends).

        :param timeout: seconds Blink waits for the playbook (Blink's ``timeout`` query parameter).
        """
        return self.call(calls.run_playbook_sync(self.config, playbook_id, workspace_id, timeout, body))

    def get_execution(self, execution_id: str, *, workspace_id: str | None = None) -> dict[str, Any]:
        """Return the execution record."""
        return self.call(api.get_execution(self.config.workspace(workspace_id), execution_id))

    def get_execution_steps(
        self, execution_id: str, *, workspace_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Return every step of the execution (all pages), each with ``input_data``, ``output_data``, ``error_data``."""
        return drive(all_steps(self.config.workspace(workspace_id), execution_id), self.call)

    def list_executions(self, *, workspace_id: str | None = None, **query: Any) -> dict[str, Any]:
        """
        Return one page of executions matching an RQL query.

        :param query: ``filter``, ``sort``, ``limit`` (1..1000), ``offset``, ``select``.
        """
        return self.call(api.list_executions(self.config.workspace(workspace_id), api.rql_query(**query)))

    def iter_executions(
        self, *, workspace_id: str | None = None, page_size: int = api.MAX_PAGE_SIZE, **query: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield every execution matching ``filter``, page by page (memory stays at one page)."""
        pages = calls.ExecutionPages(self.config.workspace(workspace_id), page_size, query)
        for page_query in pages:
            yield from pages.read(self.list_executions(workspace_id=workspace_id, **page_query))

    def cancel_execution(self, execution_id: str, *, workspace_id: str | None = None) -> bool:
        """
        Cancel an execution: ``True`` on any 2xx; ``False`` when it had already finished.

        :raises BlinkCancelRefusedError: Blink refused although the execution still runs.
        """
        return drive(cancel(self.config.workspace(workspace_id), execution_id), self.call)

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the URL, key and workspace with one cheap call (list one execution).

        Shows Blink's own error text; of an answer that is not Blink's only its status and content
        type, so pointing the URL at an internal service reveals nothing of it.
        """
        try:
            workspace = self.config.workspace()
            self.list_executions(limit=1)
        except BlinkError as exc:
            if exc.foreign_answer:
                return False, (
                    f"{self.config.url} answered with {exc.foreign_answer}, which is not Blink's API: "
                    "check the connection's Blink URL."
                )
            return False, str(exc)
        return True, f"Connected to Blink at {self.config.url}, workspace {workspace!r}."

    def async_client(self, *, shared: bool = False) -> AsyncClientScope:
        """
        Make a series of async calls over one aiohttp session (``async with``); the connection is read once.

        :param shared: use the event loop's shared session for this connection instead of a
            private one, so many concurrent users (triggers) pool their TCP connections.
        """
        return AsyncClientScope(self, shared=shared)


class AsyncClientScope:
    """
    ``async with hook.async_client() as client``: a :class:`BlinkAsyncClient` over a session for the block.

    A class rather than a generator: thousands of triggers each hold one for as long as they wait.
    """

    __slots__ = ("_hook", "_session", "_shared")

    def __init__(self, hook: BlinkHook, *, shared: bool) -> None:
        self._hook, self._shared = hook, shared

    async def __aenter__(self) -> BlinkAsyncClient:
        config = await self._hook.aget_config()
        self._session: sessions.SharedSession | aiohttp.ClientSession = (
            sessions.SharedSession(config) if self._shared else sessions.new_session(config)
        )
        return BlinkAsyncClient(config, await self._session.__aenter__(), self._hook.log)

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._session.__aexit__(*exc_info)


def _is_refused(exc: Exception) -> bool:
    """Whether requests failed while connecting (refused, DNS), i.e. before anything was sent."""
    import urllib3.exceptions

    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError)
