"""Task suites: the YAML file (``config``), where its rows come from (``data``),
the suite's ``judge:`` block (``judge_block``) and the requests a run sends
(``requests``). docs/tasks.md documents the file format.

Kept import-light: import the module you need (``harness.suites.config``), so
that any module here can be imported first, alone.
"""
