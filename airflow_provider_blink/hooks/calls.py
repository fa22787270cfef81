"""The calls behind the clients' composite methods, built once for the sync hook and the async client."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_provider_blink import api, procedures
from airflow_provider_blink.hooks.connection import BlinkConnectionConfig

#: Extra seconds given to a ``run_sync`` request beyond the playbook's own ``timeout``.
RUN_SYNC_GRACE = 30.0


class StartPlaybook:
    """
    Starting a playbook, and finding the run that an ambiguous failure to start it may have started.

    A client sends :attr:`call` with a ``recover`` that drives :meth:`lookup` (see
    :mod:`airflow_provider_blink.procedures`) and passes what it found to :meth:`found`, so one
    start never becomes two runs.

    :param config: the connection.
    :param playbook_id: the playbook's id.
    :param workspace_id: overrides the connection's workspace.
    :param body: the execute fields (see :func:`.api.execute_body`).
    """

    def __init__(
        self,
        config: BlinkConnectionConfig,
        playbook_id: str,
        workspace_id: str | None,
        body: Mapping[str, Any],
    ) -> None:
        self._workspace = config.workspace(workspace_id)
        self.playbook_id = playbook_id
        #: The execute call.
        self.call = api.execute(self._workspace, playbook_id, api.execute_body(**body))
        self._first_attempt_ms = int(time.time() * 1000)

    def lookup(self) -> procedures.Lookup[str | None]:
        """The lookup of the run this start made (:func:`.procedures.started_run`)."""
        return procedures.started_run(
            self._workspace, self.playbook_id, self.call.body, self._first_attempt_ms
        )

    def found(self, execution_id: str | None, log: logging.Logger | Any) -> str | None:
        """Say in the log when the lookup found the run this start had started; return its id."""
        if execution_id:
            log.warning(
                "Starting playbook %s failed ambiguously; it had started %s", self.playbook_id, execution_id
            )
        return execution_id


def run_playbook_sync(
    config: BlinkConnectionConfig,
    playbook_id: str,
    workspace_id: str | None,
    timeout: int | None,
    body: Mapping[str, Any],
) -> api.ApiCall[Any]:
    """The call running a playbook in Blink's synchronous mode, read for as long as Blink may take."""
    read_timeout = (timeout or config.timeout) + RUN_SYNC_GRACE
    workspace = config.workspace(workspace_id)
    return api.execute_sync(workspace, playbook_id, api.execute_body(**body), timeout, read_timeout)


class ExecutionPages:
    """
    Paging through every execution matching a query: the query of each page, and reading each page.

    A client lists one page per query it yields and hands the page to :meth:`read`; iteration ends
    after the last page, or with a clear error when Blink's pages would never end (see
    :class:`.api.Pages`).

    :param workspace_id: the workspace listed.
    :param page_size: executions per page.
    :param query: RQL ``filter``, ``sort`` (default ``created_at``, then ``id``), ``select``.
    """

    def __init__(self, workspace_id: str, page_size: int, query: Mapping[str, Any]) -> None:
        self._page_size = page_size
        self._query = {"sort": ["created_at", "id"], **query}  # id: Blink promises no order among ties
        self._pages = api.execution_pages(workspace_id)
        self._offset: int | None = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self._offset is not None:
            yield dict(limit=self._page_size, offset=self._offset, **self._query)

    def read(self, page: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The page's executions; the next query (if any) starts after them."""
        if self._offset is not None:
            self._offset = self._pages.next_offset(page)
        results: list[dict[str, Any]] = page["results"]
        return results
