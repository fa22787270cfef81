"""BlinkExecutePlaybookOperator."""
