"""``celery [celery options] monitor [monitor options]``, as ``celery flower`` is used."""

from __future__ import annotations

import click
from celery.bin.base import CeleryCommand

from celery_monitor.cli import main as cli_main


@click.command(cls=CeleryCommand, context_settings={"ignore_unknown_options": True,
                                                    "allow_extra_args": True})
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def monitor(ctx: click.Context, options: tuple[str, ...]) -> None:
    """Run Celery Monitor for this app (monitor options follow the command)."""
    app = ctx.obj.app
    argv = list(options)
    # Celery's own -b/--broker and --result-backend were applied to the app already.
    cli_main.main(argv, app=app)
