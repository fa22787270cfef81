"""
What differs between the Airflow lines the provider supports (2.11 and every 3.x), in one place.

Airflow 3 moved what DAG and provider authors use into ``airflow.sdk``; Airflow 2.11 keeps it in
``airflow.models``, ``airflow.hooks`` and friends. Each name below comes from the first module that
has it, newest first, when it is first used. ``apache-airflow-providers-common-compat`` offers the
same look-ups, but the release each line's users have differs too much to build on (Airflow 3.0.6's
era has 1.7, without its ``sdk`` module; ``ResumableJobMixin`` came in 1.23): so the provider
carries the few names it needs here, and ``make test-all`` imports them on every line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)
AIRFLOW_V_3_0_PLUS = Version("3.0") <= AIRFLOW_VERSION
AIRFLOW_V_3_1_PLUS = Version("3.1") <= AIRFLOW_VERSION
AIRFLOW_V_3_2_PLUS = Version("3.2") <= AIRFLOW_VERSION
AIRFLOW_V_3_3_PLUS = Version("3.3") <= AIRFLOW_VERSION

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseEventTrigger",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "Connection",
    "Context",
    "PokeReturnValue",
    "ResumableJobMixin",
    "ResumableJobStandIn",
    "TaskDeferred",
    "TaskInstanceKey",
    "Variable",
    "XCom",
    "conf",
    "dag",
    "mask_secret",
    "redact",
    "task",
]

_EXCEPTIONS = ("airflow.sdk.exceptions", "airflow.exceptions")

#: Where each name lives, newest line first.
_LOCATIONS: dict[str, tuple[str, ...]] = {
    "BaseHook": ("airflow.sdk", "airflow.hooks.base"),
    "BaseOperator": ("airflow.sdk", "airflow.models.baseoperator"),
    "BaseOperatorLink": ("airflow.sdk", "airflow.models.baseoperatorlink"),
    "BaseSensorOperator": ("airflow.sdk", "airflow.sensors.base"),
    "BaseNotifier": ("airflow.sdk", "airflow.sdk.bases.notifier", "airflow.notifications.basenotifier"),
    "PokeReturnValue": ("airflow.sdk", "airflow.sensors.base"),
    "Connection": ("airflow.sdk", "airflow.models.connection"),
    "Variable": ("airflow.sdk", "airflow.models.variable"),
    "XCom": ("airflow.sdk.execution_time.xcom", "airflow.models.xcom"),
    "TaskInstanceKey": ("airflow.sdk.types", "airflow.models.taskinstancekey"),
    "Context": ("airflow.sdk", "airflow.utils.context"),
    "DAG": ("airflow.sdk", "airflow.models.dag"),
    "dag": ("airflow.sdk", "airflow.decorators"),
    "task": ("airflow.sdk", "airflow.decorators"),
    "conf": ("airflow.sdk.configuration", "airflow.configuration"),
    "redact": (
        "airflow.sdk.log",
        "airflow.sdk._shared.secrets_masker",
        "airflow.sdk.execution_time.secrets_masker",
        "airflow.utils.log.secrets_masker",
    ),
    "mask_secret": (
        "airflow.sdk.log",
        "airflow.sdk.execution_time.secrets_masker",
        "airflow.utils.log.secrets_masker",
    ),
    "AirflowException": _EXCEPTIONS,
    "AirflowFailException": _EXCEPTIONS,
    "AirflowSkipException": _EXCEPTIONS,
    "AirflowSensorTimeout": _EXCEPTIONS,
    "TaskDeferred": _EXCEPTIONS,
    # Airflow 3.0 marks the triggers an AssetWatcher may run; 2.11 has no event-driven scheduling.
    "BaseEventTrigger": ("airflow.triggers.base",),
    # Airflow 3.3: a retry after a worker crash resumes the job the crashed try submitted.
    "ResumableJobMixin": ("airflow.sdk",),
}

#: What a name stands for on a line that has it nowhere.
_FALLBACKS: dict[str, tuple[str, str]] = {
    "BaseEventTrigger": ("airflow.triggers.base", "BaseTrigger"),
    "ResumableJobMixin": (__name__, "ResumableJobStandIn"),
}


class ResumableJobStandIn:
    """
    In place of ``ResumableJobMixin`` before Airflow 3.3: no ``task_state_store`` to resume from.

    The operator submits and waits on every try itself there (and follows an earlier try's execution
    from its own record).
    """

    #: The mixin's ``task_state_store`` key for the job's id (the operator's own records use it too).
    external_id_key: str = "remote_job_id"


def _find(name: str) -> Any:
    for module in _LOCATIONS[name]:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    module, attribute = _FALLBACKS[name]
    return getattr(importlib.import_module(module), attribute)


if TYPE_CHECKING:  # the newest line's names; at run time, module __getattr__ finds each
    from airflow.sdk import (
        DAG,
        BaseHook,
        BaseNotifier,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Connection,
        Context,
        PokeReturnValue,
        ResumableJobMixin,
        Variable,
        dag,
        task,
    )
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.sdk.log import mask_secret, redact
    from airflow.sdk.types import TaskInstanceKey
    from airflow.triggers.base import BaseEventTrigger
else:

    def __getattr__(name: str) -> Any:
        if name not in _LOCATIONS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = globals()[name] = _find(name)
        return value
