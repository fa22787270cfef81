"""
What the operator, the sensor and the notifier share, below all three.

- :mod:`.arguments`: checks of a task's arguments, at parse time and at run time.
- :mod:`.request`: :class:`.PlaybookRequest`, the playbook and execute fields a task starts with.
- :mod:`.events`: the trigger's event, and the task's result (or error) from it.
- :mod:`.waiting`: the trigger a task waits with, deferred or in process, and its deadline.
- :mod:`.budget`: how a wait rides out Blink's errors (``error_budget``, a long ``Retry-After``).
- :mod:`.kept`: where a task keeps a value for its task instance across runs and tries.
- :mod:`.streaks`: where a sensor keeps its error streak between pokes, across reschedules.
"""
