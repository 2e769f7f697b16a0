"""The stream side's commands: the embedded broker. Mounted by the ``cact`` command (cact/cli.py); the worker
command is the composition root's, because a worker also runs the sinks it is configured with.
"""

from __future__ import annotations

from typing import Annotated

import typer

from schemas import errors
from schemas.settings import get_settings


def broker(
    port: Annotated[int | None, typer.Option(help="Port to listen on (default CACT_BROKER_PORT)")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    create_topics: Annotated[bool, typer.Option(help="Create the pipeline's topics once it is up")] = True,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory storage) until Ctrl-C."""
    from streams.broker import run_broker_forever

    s = get_settings()
    errors.check_port_free(host or s.broker_host, port or s.broker_port, "--port" if port else "CACT_BROKER_PORT",
                           "--host" if host else "CACT_BROKER_HOST")
    run_broker_forever(host or s.broker_host, port or s.broker_port, create_topics=create_topics)
