"""`tms agent`: the model agent container's entry point."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from tms_stack.models.common import DNS1123

READINESS = ("all-models", "first-pass")
KEY_BYTES = 32


def write_key(path: Path) -> bool:
    """Write a random model-control key to `path` unless one is there; True when written.

    Created exclusively with mode 0440 (group: the pod's fsGroup, so a non-root Triton can read it)
    and written in one call; an existing key is kept, so a pod whose init container runs again
    keeps the key its running Triton was started with."""
    import secrets

    if path.exists():
        if path.read_text().strip():
            return False
        path.unlink()  # an empty file left by a killed init container
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(KEY_BYTES) + "\n")
    return True


def register(app: typer.Typer) -> None:
    # Hidden from `tms --help`: they run inside the pods, not at a user's prompt (docs/agent.md).
    @app.command("agent-key", hidden=True)
    def agent_key(
        path: Annotated[Path, typer.Argument(help="file to create, in a memory emptyDir only this pod mounts")],
    ) -> None:
        """Init container: make this pod's model-control key (docs/security.md)."""
        written = write_key(path)
        typer.echo(f"tms agent-key: {'wrote a new key to' if written else 'kept the key in'} {path}")

    @app.command(hidden=True)
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
        load_timeout: Annotated[float, typer.Option(envvar="TMS_LOAD_TIMEOUT",
                                                    help="seconds one model load may take (startupTimeout)")] = 3600,
        readiness: Annotated[str, typer.Option(envvar="TMS_READINESS",
                                               help="all-models (bespoke lease) or first-pass (pool instance)")]
        = "all-models",
        configmap: Annotated[str | None, typer.Option(envvar="TMS_DESIRED_CONFIGMAP",
                                                      help="this pod's desired-models ConfigMap, watched through "
                                                           "the API server (the file is the fallback)")] = None,
        kube_api_dir: Annotated[Path | None, typer.Option(envvar="TMS_KUBE_API_DIR",
                                                          help="projected token, ca.crt and namespace")] = None,
        fetch_workers: Annotated[int, typer.Option(envvar="TMS_FETCH_WORKERS", min=1, max=64,
                                                   help="downloads at once")] = 4,
        fetch_deadline: Annotated[float | None, typer.Option(envvar="TMS_FETCH_DEADLINE",
                                                             help="seconds one download may take "
                                                                  "(default: the load timeout)")] = None,
        read_timeout: Annotated[float, typer.Option(envvar="TMS_READ_TIMEOUT",
                                                    help="seconds one read from a source may wait")] = 30.0,
    ) -> None:
        """Run beside Triton: fetch, load, unload and recover the desired models; serve /ready and /metrics."""
        # lazy: the agent's runtime (model sources, requests, boto3) only runs in the pod, not in `tms`
        from tms_stack.agent.runner import Agent, AgentConfig
        from tms_stack.agent.server import serve
        from tms_stack.agent.watch import ConfigMapWatch, access_from_env

        logging.basicConfig(level=os.environ.get("TMS_LOG_LEVEL", "INFO"),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if readiness not in READINESS:
            raise typer.BadParameter(f"{readiness!r}: use one of {', '.join(READINESS)}", param_hint="TMS_READINESS")
        # The key is read from the pod's own file only (an environment is readable by child processes).
        key = repo_key_file.read_text().strip() if repo_key_file else None
        cfg = AgentConfig(desired, model_dir, triton_url, key, port, interval, repository_size,
                          load_timeout=load_timeout, first_pass_readiness=readiness == "first-pass",
                          fetch_workers=fetch_workers, fetch_deadline=fetch_deadline, read_timeout=read_timeout)
        if configmap is not None and not DNS1123.fullmatch(configmap):
            raise typer.BadParameter(f"{configmap!r}: not a Kubernetes object name", param_hint="TMS_DESIRED_CONFIGMAP")
        access = access_from_env(configmap, kube_api_dir)
        if configmap and access is None:
            logging.getLogger("tms.agent").warning(
                "no API access (token directory %s, KUBERNETES_SERVICE_HOST): reading the mounted file only",
                kube_api_dir)
        runner = Agent(cfg, watch=ConfigMapWatch(access) if access else None)
        server = serve(port, runner.ready, runner.metrics.render)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        try:
            runner.run(stop)  # returns after SIGTERM, downloads aborted and their files removed
        finally:
            server.shutdown()
