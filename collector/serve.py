"""Run the collector under uvicorn."""

from __future__ import annotations

import os

from collector.app import CollectorConfig, create_app
from collector.projects import ReloadingRegistry, default_path


def config_from_env() -> CollectorConfig:
    return CollectorConfig(
        bootstrap_servers=os.environ.get("RADIX_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        registry=ReloadingRegistry(default_path()),
        topic_prefix=os.environ.get("RADIX_TOPIC_PREFIX", "radix"),
    )


def serve(host: str = "127.0.0.1", port: int = 8080, cfg: CollectorConfig | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(cfg or config_from_env()), host=host, port=port,
                log_level="warning", access_log=False)
