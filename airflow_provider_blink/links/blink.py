"""
The "Blink" extra link on task instances that started or watched an execution.

A task publishes the execution the moment it is known, so the link works while the task waits (in
process, rescheduled or deferred). Each Airflow line reads it its own way:

- Airflow 2.11's webserver calls :meth:`BlinkExecutionLink.get_link`, which reads XCom ``execution_url``.
- Airflow 3's UI reads the link's own XCom key (``BaseOperatorLink.xcom_key``), which the task pushes
  with the URL. As the task ends, the task runner calls :meth:`~BlinkExecutionLink.get_link` on the
  task and pushes the answer under that key: the task answers with what it published in its own
  process (:func:`no_execution_yet`), and reads XCom only after resuming from a deferral.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_blink.compat import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow_provider_blink.compat import TaskInstanceKey

#: XCom key holding the execution's Blink UI URL.
EXECUTION_URL_KEY = "execution_url"
#: XCom key holding the execution id.
EXECUTION_ID_KEY = "execution_id"
#: The task's attribute holding, while it runs, the URL it published ("" until it publishes one).
_PUBLISHED_URL = "_blink_published_url"


class BlinkExecutionLink(BaseOperatorLink):
    """Opens the execution's playbook in Blink's web UI (the URL the task pushed to XCom)."""

    name = "Blink"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        published = published_url(operator)
        if published is not None:  # the task itself, as it ends: no read of an XCom it never pushed
            return published
        return XCom.get_value(key=EXECUTION_URL_KEY, ti_key=ti_key) or ""


def published_url(task: Any) -> str | None:
    """The URL ``task`` published in this process ("" when none yet); ``None`` when it did not run here."""
    return getattr(task, _PUBLISHED_URL, None)


def no_execution_yet(task: Any) -> None:
    """
    Note, as ``task`` starts to run, that it has published no execution: its link is empty until it does.

    Without it, a task whose start failed would read an ``execution_url`` that was never pushed when
    Airflow 3 asks for its link at the end (Airflow logs "XCom not found" as an error).
    """
    setattr(task, _PUBLISHED_URL, "")


def push_execution(task: Any, context: Any, execution_id: str, url: str) -> None:
    """Publish the execution id and its URL the moment it is known, so the link works while waiting."""
    ti = context["ti"]
    ti.xcom_push(key=EXECUTION_ID_KEY, value=execution_id)
    ti.xcom_push(key=EXECUTION_URL_KEY, value=url)
    link = BlinkExecutionLink()
    if hasattr(link, "xcom_key"):  # Airflow 3's UI reads the link from there; 2.11's asks get_link
        ti.xcom_push(key=link.xcom_key, value=url)
    setattr(task, _PUBLISHED_URL, url)
