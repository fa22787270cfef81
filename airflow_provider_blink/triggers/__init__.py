"""BlinkExecutionTrigger and BlinkExecutionEventTrigger."""
