"""``python -m airflow_provider_blink.testing``: run the Blink emulator in the foreground."""

from __future__ import annotations

import sys

from airflow_provider_blink.testing.cli import main

if __name__ == "__main__":
    sys.exit(main())
