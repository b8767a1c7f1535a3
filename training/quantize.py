"""Static int8 quantisation of an exported ONNX model (QDQ format, onnxruntime.quantization).

Calibration runs the fp32 model over preprocessed phantom patches to fix activation
ranges. Whether the int8 model is kept is decided by export (argmax agreement with
fp32); this module only produces it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def quantize_int8(fp32_onnx: bytes, input_name: str, calibration: Sequence[np.ndarray]) -> bytes:
    """int8 QDQ model (int8 weights per channel, uint8 activations) calibrated on ``calibration``
    (each ``[1, 1, *patch]`` float32, preprocessed as the model expects)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _Patches(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {input_name: np.ascontiguousarray(item, dtype=np.float32)}

    with tempfile.TemporaryDirectory(prefix="odontoscan-quant-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(fp32_onnx)
        quantize_static(
            str(source),
            str(target),
            _Patches(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
        return target.read_bytes()
