"""`nexus serve`: load the configuration and run one replica until a signal stops it."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal

from aiohttp import web

from nexus.cli.event_loop import new_event_loop
from nexus.cli.gc_tuning import tune_for_serving
from nexus.cli.workers import Workers
from nexus.config.loader import load_config
from nexus.config.schema import ServerConfig
from nexus.core.masking import mask_url
from nexus.http.app import create_app
from nexus.http.connections import GatewayRunner
from nexus.http.context import EDGE
from nexus.replica import default_replica_id

log = logging.getLogger("nexus")
SHUTDOWN_SECONDS = 60.0  # how long a stopping replica lets requests in flight finish
UNLIMITED_FILES = 1 << 20  # the open-file limit to ask for when the hard one is unlimited


def serve(config_path: str | None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = load_config(config_path)
    loop, loop_name = new_event_loop()
    asyncio.set_event_loop(loop)  # the app and its client session are made on it
    app = create_app(config)
    store = f"redis at {mask_url(config.redis.url)}" if config.redis \
        else "in-process store"
    log.info("nexus: %d backend(s), %s, %s event loop, listening on http://%s:%d",
             len(config.backends), store, loop_name, config.server.host, config.server.port)
    tune_for_serving()
    app[EDGE].fit(raise_open_file_limit())
    try:
        loop.run_until_complete(_run(app, config.server))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return 0


async def _run(app: web.Application, server: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then drain: the runner waits for requests in
    flight (up to SHUTDOWN_SECONDS) and the app's cleanup stops its loops."""
    runner = GatewayRunner(app, app[EDGE], access_log=log if server.access_log else None,
                           keepalive_timeout=server.idle_timeout_seconds,
                           shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, server.host, server.port,
                           reuse_port=os.environ.get("NEXUS_REUSE_PORT") == "1")  # --workers
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def raise_open_file_limit() -> int:
    """Each client connection is a file: take the hard limit, not the soft one (often
    1,024, which a thousand idle sockets exhaust). Returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_FILES if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # a sandbox may refuse; serve with what is set
        log.warning("could not raise the open-file limit from %d: %s", soft, exc)
        return soft
    return target


def serve_workers(config_path: str | None, count: int) -> int:
    """The parent of `count` worker replicas (nexus.cli.workers)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = load_config(config_path)
    replica_id = config.fleet.replica_id or default_replica_id()
    workers = Workers(config, config_path, count, replica_id)
    log.info("nexus: %d workers on http://%s:%d", count, config.server.host,
             config.server.port)
    return workers.run()
