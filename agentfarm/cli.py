"""The ``agentfarm`` command: dev | api | worker | scheduler | migrate | admin | scripted-llm."""

from __future__ import annotations

import os
import sys
import tempfile

import typer

from agentfarm.settings import get_settings

app = typer.Typer(help="agentfarm: coding-agent chats on a farm of workers.", no_args_is_help=True)
admin_app = typer.Typer(help="User and token administration.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")


def _logging(process: str) -> None:
    from agentfarm.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json, process=process)


@app.command()
def dev() -> None:
    """Run the whole farm locally (embedded Postgres/Redis when no URL is configured)."""
    _logging("dev")
    from agentfarm.dev import run_dev

    raise typer.Exit(run_dev())


@app.command()
def api(
    host: str = typer.Option(None, help="Bind address (default AGENTFARM_HTTP_HOST)."),
    port: int = typer.Option(None, help="Port (default AGENTFARM_HTTP_PORT, 3000)."),
) -> None:
    """Serve the HTTP API (Coder Chats API compatible)."""
    _logging("api")
    import uvicorn

    from api_shim.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.http_host,
        port=port or settings.http_port,
        log_config=None,
        access_log=False,
        ws_ping_interval=None,
        timeout_graceful_shutdown=5,
    )


@app.command()
def worker(
    processes: int = typer.Option(None, help="Worker processes (default 1)."),
    threads: int = typer.Option(None, help="Threads per process (default 8)."),
    queues: list[str] = typer.Option(
        None,
        "--queues",
        "-Q",
        help="Queues (default: all declared). workspace.<host> makes this a workspace host.",
    ),
) -> None:
    """Run Dramatiq worker processes for the given queues."""
    settings = get_settings()
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.main",
        "--processes",
        str(processes or settings.worker_processes),
        "--threads",
        str(threads or settings.worker_threads),
        "--worker-shutdown-timeout",
        "30000",
    ]
    if queues:
        argv += ["--queues", *queues]
        hosts = [q.removeprefix("workspace.") for q in queues if q.startswith("workspace.")]
        if hosts:
            os.environ["AGENTFARM_WORKSPACE_HOSTS"] = ",".join(hosts)
    # Every worker process writes its metrics here and one of them serves them all on the
    # host's exposition port; a fresh directory per start, so no stale process files.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="agentfarm-metrics-")
    # Long model steps: don't let one process hoard queued steps while others idle.
    os.environ.setdefault("dramatiq_queue_prefetch", str(threads or settings.worker_threads))
    os.execv(sys.executable, argv)


@app.command()
def scheduler() -> None:
    """Run the leader-locked scheduler (only enqueues periodic jobs)."""
    _logging("scheduler")
    from scheduler.main import main

    main()


@app.command()
def migrate() -> None:
    """Apply database migrations."""
    _logging("migrate")
    from agentfarm.admin import run_migrations

    run_migrations(get_settings())
    typer.echo("database is up to date")


@admin_app.command("create-user")
def create_user(
    username: str,
    email: str = typer.Option(None),
    admin: bool = typer.Option(False, "--admin", help="Give the owner role."),
) -> None:
    """Create a user and print a session token for them (shown once)."""
    from agentfarm.admin import add_user

    typer.echo(add_user(get_settings(), username, email, admin))


@admin_app.command("create-token")
def create_token(username: str) -> None:
    """Print a new session token for an existing user (shown once)."""
    from agentfarm.admin import add_token

    typer.echo(add_token(get_settings(), username))


@app.command("scripted-llm")
def scripted_llm(port: int = typer.Option(8089), host: str = typer.Option("127.0.0.1")) -> None:
    """Serve the scripted OpenAI-compatible model used by dev and the tests."""
    from agentfarm.scripted_llm import main as serve

    serve(["--host", host, "--port", str(port)])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
