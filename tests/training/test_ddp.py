"""Two CPU processes under torchrun (gloo): both ranks train, only rank 0 logs and saves."""

import os
import subprocess
import sys

import pytest
import yaml


@pytest.mark.slow
def test_two_process_cpu_run(tiny_document, tmp_path):
    tiny_document["epochs"] = 1
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_document))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "odontoscan.serving.commands.train",
        "--config", str(config), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run id:") == 1  # rank 0 only
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "config.yaml", "last.pt", "manifest.json"]
    assert not (tmp_path / "run" / "last.pt.tmp").exists()
