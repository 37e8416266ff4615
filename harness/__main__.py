"""``python -m harness`` runs the `evalarena` command (the tests call it this way).

A separate entry module keeps ``harness.cli`` imported exactly once, so the
command modules can simply import its ``app``.
"""

from harness.cli import app

app(prog_name="evalarena")
