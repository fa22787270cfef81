"""BlinkHook and its parts: connection reading, the sync hook, the async client, retries, sessions."""
