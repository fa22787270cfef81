"""BlinkExecutionSensor."""
