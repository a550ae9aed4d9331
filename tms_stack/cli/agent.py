"""`tms agent`: the model agent container's entry point."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def agent(
        desired: Annotated[Path, typer.Option(envvar="TMS_DESIRED", help="desired-models JSON (mounted ConfigMap)")]
        = Path("/etc/tms/desired/desired.json"),
        model_dir: Annotated[Path, typer.Option(envvar="TMS_MODEL_DIR", help="Triton's --model-repository")]
        = Path("/models"),
        triton_url: Annotated[str, typer.Option(envvar="TMS_TRITON_URL")] = "localhost:8000",
        repo_key_file: Annotated[Path | None, typer.Option(envvar="TMS_REPO_KEY_FILE",
                                                              help="file holding the restricted API key")] = None,
        port: Annotated[int, typer.Option(envvar="TMS_AGENT_PORT")] = 8080,
        interval: Annotated[float, typer.Option(envvar="TMS_AGENT_INTERVAL", help="seconds between checks")] = 1.0,
        repository_size: Annotated[int | None, typer.Option(envvar="TMS_REPOSITORY_SIZE")] = None,
    ) -> None:
        """Run beside Triton: fetch, load, unload and recover the desired models; serve /ready and /metrics."""
        from tms_stack.agent.runner import Agent, AgentConfig
        from tms_stack.agent.server import serve

        logging.basicConfig(level=os.environ.get("TMS_LOG_LEVEL", "INFO"),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        key = repo_key_file.read_text().strip() if repo_key_file else os.environ.get("TMS_REPO_KEY")
        cfg = AgentConfig(desired, model_dir, triton_url, key, port, interval, repository_size)
        runner = Agent(cfg)
        server = serve(port, runner.ready, runner.metrics.render)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        try:
            runner.run(stop)
        finally:
            server.shutdown()
