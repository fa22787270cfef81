"""Support code for the end-to-end suites (not tests): a real Airflow deployment on loopback.

- :mod:`~e2e.harness.waiting`: deadlines for every wait.
- :mod:`~e2e.harness.processes`: one OS process per component, one-shot commands.
- :mod:`~e2e.harness.postgres`: the metadata database.
- :mod:`~e2e.harness.blink`: the Blink emulator process and Blink's REST API.
- :mod:`~e2e.harness.airflow_api`: Airflow's REST API.
- :mod:`~e2e.harness.deployment`: all of them brought up and torn down together.
- :mod:`~e2e.harness.runs`: following DAG runs and what the tests learn from them.
"""
