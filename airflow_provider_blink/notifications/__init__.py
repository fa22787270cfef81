"""BlinkNotifier: Airflow callbacks that start a Blink playbook."""
