"""CLI of the fleet service: ``meterhub central [--config central.yaml]``, ``meterhub central provision
SITE`` and ``meterhub simulate-fleet`` (docs/fleet.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from meterhub.central.config import CentralConfig, load_central_config, protocol_problem
from meterhub.central.provision import provision_site, publish_settings
from meterhub.cli._app import app
from meterhub.config.publish import parse_broker
from meterhub.errors import InputError

__all__ = ["central_app"]

central_app = typer.Typer(
    help="The fleet service: many gateways' meterhub-json over MQTT into PostgreSQL, with a fleet API.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(central_app, name="central")

_Config = Annotated[Path | None, typer.Option("--config", help="central.yaml (every setting has a default).")]


def _config(
    config: Path | None,
    *,
    mqtt: str | None = None,
    dsn: str | None = None,
    port: int | None = None,
    data: Path | None = None,
    worker_id: str | None = None,
    no_share: bool = False,
    mqtt_version: str | None = None,
) -> CentralConfig:
    if mqtt_version is not None and mqtt_version not in ("5", "3.1.1"):
        raise InputError(f"--mqtt-version: 5 or 3.1.1, not {mqtt_version!r}")
    cfg = load_central_config(config)
    update: dict[str, object] = {}
    if mqtt is not None:
        try:
            parse_broker(mqtt)
        except ValueError as exc:
            raise InputError(f"--mqtt: {exc}") from None
        update["mqtt"] = mqtt
    for key, value in (
        ("dsn", dsn),
        ("port", port),
        ("data", data),
        ("worker_id", worker_id),
        ("mqtt_version", mqtt_version),
    ):
        if value is not None:
            update[key] = value
    if no_share:
        update["share_group"] = None
    if not update:
        return cfg
    try:
        cfg = CentralConfig.model_validate({**cfg.model_dump(), **update})
    except ValueError as exc:
        raise InputError(f"command-line options: {exc}") from None
    problem = protocol_problem(cfg)
    if problem:
        raise InputError(f"--mqtt-version {cfg.mqtt_version}: {problem} (--no-share)")
    return cfg


@central_app.callback()
def central(
    ctx: typer.Context,
    config: _Config = None,
    mqtt: Annotated[str | None, typer.Option("--mqtt", help="Broker URL, mqtt://HOST[:PORT].")] = None,
    dsn: Annotated[str | None, typer.Option("--dsn", help="PostgreSQL DSN of the central database.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Fleet API port (0: none).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Folder for central's log.")] = None,
    worker_id: Annotated[
        str | None, typer.Option("--worker-id", help="MQTT client id of this worker (one per process).")
    ] = None,
    no_share: Annotated[
        bool,
        typer.Option("--no-share", help="Plain subscription instead of $share/GROUP/… (a single worker)."),
    ] = False,
    mqtt_version: Annotated[
        str | None,
        typer.Option(
            "--mqtt-version",
            help="MQTT protocol: 5 (default) or 3.1.1 (no shared subscriptions: with --no-share).",
        ),
    ] = None,
) -> None:
    """Run one central worker (and the fleet API on --port) until Ctrl-C / SIGTERM."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (config, mqtt, dsn)
        return
    cfg = _config(
        config,
        mqtt=mqtt,
        dsn=dsn,
        port=port,
        data=data,
        worker_id=worker_id,
        no_share=no_share,
        mqtt_version=mqtt_version,
    )
    from meterhub.central.serve import run_central  # lazy: uvicorn and the web app, 2x CLI start

    raise typer.Exit(run_central(cfg))


@central_app.command("provision")
def provision(
    ctx: typer.Context,
    site: Annotated[
        str, typer.Argument(help="Site id: the gateway's broker user and topic meterhub/SITE/#.")
    ],
    config: _Config = None,
    rotate: Annotated[bool, typer.Option("--rotate", help="Give an existing site a new password.")] = False,
    secret_out: Annotated[
        Path | None,
        typer.Option(
            "--secret-out", help="Write the password to this file (mode 600) instead of printing it."
        ),
    ] = None,
) -> None:
    """Create a gateway's broker user and ACL entry; print its publish settings."""
    outer = ctx.obj or (None, None, None)
    cfg = _config(config or outer[0], mqtt=outer[1], dsn=outer[2])
    p = provision_site(cfg, site, rotate=rotate)
    if secret_out is not None:
        secret_out.parent.mkdir(parents=True, exist_ok=True)
        secret_out.touch(mode=0o600)
        secret_out.write_text(p.password + "\n", encoding="utf-8")
        where = str(secret_out)
    else:
        where = f"/etc/meterhub/{site}.mqtt-secret"
    assert cfg.broker_files is not None  # provision_site refuses a config without them
    typer.echo(
        f"# site {site}: broker user added to {cfg.broker_files.password_file}, ACL in {cfg.broker_files.acl_file}"
    )
    typer.echo("# reload the broker to apply: kill -HUP <mosquitto pid> (or systemctl reload mosquitto)")
    if secret_out is None:
        typer.echo(f"# password (shown once; put it alone in {where}): {p.password}")
    typer.echo(publish_settings(cfg, p, where), nl=False)


@app.command("simulate-fleet")
def simulate_fleet(
    sites: Annotated[int, typer.Option("--sites", min=1, max=100_000, help="Simulated gateways.")] = 10,
    mqtt: Annotated[
        str, typer.Option("--mqtt", help="Broker URL, mqtt://HOST[:PORT].")
    ] = "mqtt://127.0.0.1:1883",
    series: Annotated[
        int, typer.Option("--series", min=1, help="Series per site (split over the circuits).")
    ] = 50,
    circuits: Annotated[int, typer.Option("--circuits", min=1, max=100, help="Circuits per site.")] = 5,
    interval: Annotated[
        int, typer.Option("--interval", min=1, help="Seconds between messages of a site.")
    ] = 10,
    processes: Annotated[int, typer.Option("--processes", min=1, max=64, help="Publishing processes.")] = 2,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Intervals to send, then stop.")] = None,
    backfill: Annotated[
        int, typer.Option("--backfill", min=0, help="Seconds of past intervals to replay first [s].")
    ] = 0,
    prefix: Annotated[str, typer.Option("--prefix", help="Site ids are PREFIX00000, PREFIX00001 …")] = "sim-",
    mqtt_version: Annotated[
        str, typer.Option("--mqtt-version", help="MQTT protocol of the gateways: 5 or 3.1.1.")
    ] = "5",
    netns: Annotated[
        bool,
        typer.Option(
            "--netns",
            help="Each process in its own network namespace (root): gateways 198.18.0.10…, the broker "
            "reached at 198.18.0.1:1883 in a namespace of its own; all deleted at the end.",
        ),
    ] = False,
) -> None:
    """Run N lightweight simulated gateways publishing meterhub-json (no web); prints what was sent."""
    try:
        parse_broker(mqtt)
    except ValueError as exc:
        raise InputError(f"--mqtt: {exc}") from None
    if mqtt_version not in ("5", "3.1.1"):
        raise InputError(f"--mqtt-version: 5 or 3.1.1, not {mqtt_version!r}")
    from meterhub.central.simulate import FleetSpec, run_fleet  # lazy: paho, only for this command

    spec = FleetSpec(
        broker=mqtt,
        sites=sites,
        series=series,
        circuits=circuits,
        interval=interval,
        processes=processes,
        count=count,
        backfill=backfill,
        prefix=prefix,
        mqtt_version=mqtt_version,
        netns=netns,
    )
    try:
        result = run_fleet(spec)
    except RuntimeError as exc:
        raise InputError(f"simulate-fleet: nothing was sent: {exc}") from None
    typer.echo(json.dumps(result))
