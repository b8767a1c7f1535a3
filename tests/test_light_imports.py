"""The serving and inference path never imports torch or monai (small image, fast start)."""

import subprocess
import sys


def test_serving_models_and_datasets_do_not_import_torch_or_monai():
    code = (
        "import sys\n"
        "import odontoscan.datasets, odontoscan.models, odontoscan.models.preprocess\n"
        "import odontoscan.serving, odontoscan.serving.cli, odontoscan.planning\n"
        "from odontoscan.datasets import load_scan\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'mlflow'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
