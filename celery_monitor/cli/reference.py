"""The option reference in Markdown, generated from the option table (docs/options.md)."""

from __future__ import annotations

import sys

from celery_monitor.settings import OPTIONS


def render() -> str:
    lines = [
        "# Options",
        "",
        "Generated from `celery_monitor/settings.py` by `celery-monitor-docs`; do not edit by hand.",
        "",
        "Every option is accepted as `--name=value` (underscores or hyphens), as the environment variable",
        "`CELERY_MONITOR_<NAME>` or, for migration, `FLOWER_<NAME>`, and as `name = value` in the Python",
        "config file (`--conf`, default `flowerconfig.py`). Precedence, highest first: command line >",
        "config file > environment (`CELERY_MONITOR_` before `FLOWER_`) > default. The broker and result",
        "backend also come from Celery's `CELERY_BROKER_URL` / `CELERY_RESULT_BACKEND`, from `-A/--app`,",
        "or from the options of `celery [-A app] [-b url] [--result-backend url] monitor`.",
        "",
        "| Option | Type | Default | Environment | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for option in OPTIONS:
        shown = ",".join(option.default) if isinstance(option.default, list) else option.default
        default = "" if option.default in ("", None, []) else f"`{shown}`"
        env = f"`CELERY_MONITOR_{option.name.upper()}`"
        note = " (secret: never logged)" if option.secret else ""
        lines.append(f"| `--{option.name}` | {option.kind} | {default} | {env} | {option.help}{note} |")
    lines += ["", "`format_task` (a function) can only be set in the config file; `notifications` (a dict, see",
              "[notifications.md](notifications.md)) there or, as JSON, in `CELERY_MONITOR_NOTIFICATIONS`.",
              ""]
    return "\n".join(lines)


def main() -> None:
    """``celery-monitor-docs`` prints the option reference; ``celery-monitor-docs api`` the API's."""
    if sys.argv[1:] == ["api"]:
        from celery_monitor.api import reference

        sys.stdout.write(reference.render())
    else:
        sys.stdout.write(render())
