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
        "import odontoscan.models.pipeline, odontoscan.models.findings, odontoscan.models.teeth\n"
        "import odontoscan.serving.outputs.write, odontoscan.serving.outputs.overlays\n"
        "import odontoscan.serving.outputs.report, odontoscan.serving.outputs.dicom\n"
        "import odontoscan.serving.commands.analyze, odontoscan.training.evaluate_findings\n"
        "import odontoscan.serving.service, odontoscan.serving.jobs, odontoscan.serving.commands.serve\n"
        "import odontoscan.serving.screen, odontoscan.planning.draft\n"
        "from odontoscan.datasets import load_scan\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'mlflow'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
