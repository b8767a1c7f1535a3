"""``odontoscan serve``: run the inference API (the BentoML service) on this machine.

The command checks its options (models resolved and verified, API keys present),
turns them into the service's environment variables (see
:mod:`odontoscan.serving.service`) and replaces itself with ``bentoml serve``, so
the process id it started with is the server's: stopping it stops the server.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from odontoscan.datasets.errors import ConfigError

console = Console(stderr=True)

SERVICE = "odontoscan.serving.service:OdontoscanService"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def service_environment(
    *,
    cbct_model: str,
    radiograph_model: str,
    workers: int,
    data_dir: Path,
    max_upload_mb: float,
    api_keys: str | None,
    batching: bool,
    tracking_uri: str | None,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment for the service's processes: ``base`` (default: this process's)
    plus the settings. ONNX Runtime threads per worker are cores // workers unless
    ODONTOSCAN_ORT_THREADS is already set; BentoML's usage tracking is off unless asked for."""
    from odontoscan.models.runtime import THREADS_ENV, ort_threads

    env = dict(os.environ if base is None else base)
    env.update(
        ODONTOSCAN_CBCT_MODEL=cbct_model,
        ODONTOSCAN_RADIOGRAPH_MODEL=radiograph_model,
        ODONTOSCAN_WORKERS=str(workers),
        ODONTOSCAN_DATA_DIR=str(data_dir),
        ODONTOSCAN_MAX_UPLOAD_MB=f"{max_upload_mb:g}",
        ODONTOSCAN_BATCHING="1" if batching else "0",
    )
    if api_keys is not None:
        env["ODONTOSCAN_API_KEYS"] = api_keys
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    if not env.get(THREADS_ENV):
        env[THREADS_ENV] = str(max(1, ort_threads() // workers))
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return env


def serve(
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 opens the API to the network (configure API keys)."),
    cbct_model: str = typer.Option("cbct-phantom", "--cbct-model", help="CBCT model: directory, shipped name or models:/NAME@alias."),
    radiograph_model: str = typer.Option("pano-phantom", "--radiograph-model", help="Radiograph model: directory, shipped name or models:/NAME@alias."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes; each loads both models and gets cores // workers ONNX threads."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder for results and jobs (default: ~/.local/share/odontoscan/service)."),
    max_upload_mb: float = typer.Option(1024, "--max-upload-mb", min=0.001, help="Largest accepted upload, in MB; larger ones get 413."),
    api_key_env: Optional[str] = typer.Option(
        None, "--api-key-env", metavar="VAR",
        help="Environment variable holding the API keys (comma-separated); clients then send 'Authorization: Bearer KEY'.",
    ),
    batching: bool = typer.Option(True, "--batching/--no-batching", help="Batch concurrent radiograph requests adaptively."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI, for models:/ names."),
) -> None:
    """Serve the inference API: analyse, jobs, results, plan, models (OpenAPI at /docs.json)."""
    from odontoscan.models.metadata import read_model_dir
    from odontoscan.models.registry import resolve
    from odontoscan.serving.service import default_data_dir

    api_keys = None
    if api_key_env is not None:
        api_keys = os.environ.get(api_key_env, "").strip()
        if not any(k.strip() for k in api_keys.split(",")):
            raise ConfigError(
                f"--api-key-env {api_key_env}: that environment variable is not set or empty; export the comma-separated keys in it."
            )
    elif not _is_loopback(host):
        console.print(
            f"[bold yellow]warning:[/bold yellow] serving on {escape(host)} without API keys: anyone who reaches it "
            "can upload scans and read results (use --api-key-env)."
        )
    models = {}
    for task, spec in (("cbct", cbct_model), ("radiograph", radiograph_model)):
        folder = resolve(spec, tracking_uri=tracking_uri)  # models:/ names are downloaded once, here
        metadata = read_model_dir(folder).metadata  # verifies model.json and the file hash now, not in every worker
        if metadata.task != task:
            raise ConfigError(f"--{task}-model {spec} is a {metadata.task} model; give a {task} model.")
        models[task] = str(Path(folder).resolve())
        console.print(f"{task} model: {escape(metadata.model_key)}")
    folder = (data_dir or default_data_dir()).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--data-dir {folder} cannot be created ({type(exc).__name__}); choose a writable folder.") from None
    env = service_environment(
        cbct_model=models["cbct"],
        radiograph_model=models["radiograph"],
        workers=workers,
        data_dir=folder,
        max_upload_mb=max_upload_mb,
        api_keys=api_keys,
        batching=batching,
        tracking_uri=tracking_uri,
    )
    console.print(f"data: {escape(str(folder))}; {workers} worker(s) x {env['ODONTOSCAN_ORT_THREADS']} ONNX threads")
    console.print(f"odontoscan API on http://{escape(host)}:{port}/v1 (OpenAPI: /docs.json)")
    sys.stdout.flush()
    sys.stderr.flush()
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]
    os.execve(sys.executable, command, env)


__all__ = ["serve", "service_environment", "SERVICE"]
