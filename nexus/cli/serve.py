"""`nexus serve`: load the configuration and run one replica until a signal stops it."""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from nexus.cli.event_loop import new_event_loop
from nexus.cli.gc_tuning import tune_for_serving
from nexus.cli.workers import Workers
from nexus.config.loader import load_config
from nexus.core.masking import mask_url
from nexus.http.app import create_app
from nexus.replica import default_replica_id

log = logging.getLogger("nexus")


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
    web.run_app(app, host=config.server.host, port=config.server.port, print=None,
                access_log=log if config.server.access_log else None, loop=loop,
                reuse_port=os.environ.get("NEXUS_REUSE_PORT") == "1")  # --workers
    return 0


def serve_workers(config_path: str | None, count: int) -> int:
    """The parent of `count` worker replicas (nexus.cli.workers)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = load_config(config_path)
    replica_id = config.fleet.replica_id or default_replica_id()
    workers = Workers(config, config_path, count, replica_id)
    log.info("nexus: %d workers on http://%s:%d", count, config.server.host,
             config.server.port)
    return workers.run()
