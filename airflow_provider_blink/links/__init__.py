"""The "Blink" extra link from a task to its execution in Blink's UI."""
