"""
The performance benchmark of airflow-provider-blink: ``python -m bench`` (or ``make bench``).

Each scenario runs in its own fresh process against one Blink emulator process served over TLS;
see :mod:`bench.run` for what is measured and how.
"""
