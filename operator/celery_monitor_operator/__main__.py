"""``celery-monitor-operator``: kopf's ``run`` with this operator's handlers and sensible defaults.

Any ``kopf run`` option may be given. Without ``--namespace``/``--all-namespaces`` the operator
watches all namespaces; without ``--priority`` each replica draws a random one, because kopf
pauses every peer that shares the top priority, and we want exactly one of them active.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence

HANDLERS_MODULE = "celery_monitor_operator.handlers"
NAMESPACE_FLAGS = ("-n", "--namespace", "-A", "--all-namespaces")


def _given(args: Sequence[str], flags: Sequence[str]) -> bool:
    return any(arg in flags or arg.split("=", 1)[0] in flags for arg in args)


def kopf_args(args: Sequence[str]) -> list[str]:
    """The full ``kopf`` command line for the given operator options."""
    full = ["run", "--module", HANDLERS_MODULE, *args]
    if not _given(args, NAMESPACE_FLAGS):
        full.append("--all-namespaces")
    if not _given(args, ("-p", "--priority", "--standalone")):
        full.append(f"--priority={secrets.randbelow(1_000_000) + 1}")
    return full


def main(argv: Sequence[str] | None = None) -> None:
    from kopf import cli

    args = list(sys.argv[1:] if argv is None else argv)
    cli.main(args=kopf_args(args), prog_name="celery-monitor-operator")


if __name__ == "__main__":
    main()
