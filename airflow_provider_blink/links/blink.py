"""The "Blink" extra link on task instances that started or watched an execution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_blink.compat import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow_provider_blink.compat import TaskInstanceKey

#: XCom key holding the execution's Blink UI URL.
EXECUTION_URL_KEY = "execution_url"
#: XCom key holding the execution id.
EXECUTION_ID_KEY = "execution_id"


class BlinkExecutionLink(BaseOperatorLink):
    """Opens the execution's playbook in Blink's web UI (the URL the task pushed to XCom)."""

    name = "Blink"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=EXECUTION_URL_KEY, ti_key=ti_key) or ""


def push_execution(context: Any, execution_id: str, url: str) -> None:
    """Publish the execution id and its URL the moment it is known, so the link works while waiting."""
    ti = context["ti"]
    ti.xcom_push(key=EXECUTION_ID_KEY, value=execution_id)
    ti.xcom_push(key=EXECUTION_URL_KEY, value=url)
    ti.xcom_push(key=f"_link_{BlinkExecutionLink.__name__}", value=url)
