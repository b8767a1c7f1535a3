"""The serving and inference path never imports torch or monai (small image, fast start)."""

import subprocess
import sys


def test_serving_and_inference_do_not_import_torch_monai_or_mlflow():
    code = (
        "import sys\n"
        "import odontoscan.datasets, odontoscan.models, odontoscan.models.preprocess\n"
        "import odontoscan.serving, odontoscan.serving.cli, odontoscan.planning\n"
        "import odontoscan.models.metadata, odontoscan.models.runtime, odontoscan.models.registry\n"
        "import odontoscan.models.sliding_window, odontoscan.training.evaluate\n"
        "from odontoscan.datasets import load_scan\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'mlflow'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
