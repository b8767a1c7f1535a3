"""ONNX Runtime vs PyTorch eager inference time on a phantom CBCT, and fp32 vs int8.

Usage:
    python benchmarks/bench_inference.py [--model DIR] [--config configs/cbct_phantom.yaml]
        [--threads N] [--seed 1000] [--repeats 3]

Without ``--model`` an untrained network of the shipped architecture (from
``--config``) is exported first (timing does not depend on the weights). Both
runtimes get the same thread count (ONNX Runtime intra-op threads,
``torch.set_num_threads``) and the same work: one batch of windows, and the whole
sliding-window segmentation of phantom ``--seed`` with the same numpy blending (only
the per-window predictor differs). int8 is timed when the model directory holds
``model.int8.onnx``; otherwise a quantised copy is made just for timing (its accuracy
is what export checks before keeping it).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    from odontoscan.training.data import generate_phantom
    from odontoscan.models.metadata import read_model_dir
    from odontoscan.models.runtime import OnnxModel, ort_threads
    from odontoscan.models.sliding_window import blend_slabs
    from odontoscan.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from odontoscan.training.config import load_config
    from odontoscan.training.export import export_model, network_from_checkpoint, phantom_patches
    from odontoscan.training.quantize import quantize_int8

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="Exported model directory (default: export an untrained one).")
    parser.add_argument("--checkpoint", type=Path, help="Checkpoint matching --model (for the PyTorch side).")
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "configs" / "cbct_phantom.yaml")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    threads = ort_threads(args.threads)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        tmp = Path(tmp)
        if args.model is None:
            config = load_config(args.config)
            torch.manual_seed(0)
            from odontoscan.models.networks import build_network

            net = build_network(
                config.network.name, config.network.kwargs, spatial_dims=config.spatial_dims,
                in_channels=1, out_channels=len(config.labels.classes),
            )
            checkpoint = save_checkpoint(
                Checkpoint(config=config, model_state=net.state_dict(), epoch=0, best_metric=-1, best_epoch=0), tmp / "untrained.pt"
            )
            result = export_model(checkpoint, tmp / "model", name=config.name, version="0.0.0-bench", register=False)
            model_dir = tmp / "model"
            print(f"exported untrained {config.name}: parity max |diff| {result.parity.max_abs_diff:.2e}, "
                  f"argmax Dice agreement {result.parity.dice_agreement:.4f}")
        else:
            if args.checkpoint is None:
                parser.error("--model needs --checkpoint for the PyTorch side")
            model_dir, checkpoint = args.model, args.checkpoint
        ckpt = load_checkpoint(checkpoint)
        net = network_from_checkpoint(ckpt)
        meta = read_model_dir(model_dir).metadata
        fp32 = OnnxModel(model_dir, threads=threads)
        int8_dir = model_dir
        if meta.int8 is None:
            int8_dir = tmp / "int8"
            int8_dir.mkdir()
            (int8_dir / "model.onnx").write_bytes(
                quantize_int8((model_dir / "model.onnx").read_bytes(), "image", phantom_patches(ckpt.config, args.seed + 1, 4))
            )
            if meta.refiner is not None:  # the copy's metadata names the refiner: it must sit beside it
                (int8_dir / meta.refiner.file).write_bytes((model_dir / meta.refiner.file).read_bytes())
        int8 = OnnxModel(int8_dir / "model.onnx" if meta.int8 is None else model_dir, threads=threads,
                         precision="fp32" if meta.int8 is None else "int8")

        batch = np.concatenate(phantom_patches(ckpt.config, args.seed, 2))

        def torch_predict(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return net(torch.from_numpy(x)).numpy()

        scan, _, scan_spacing = generate_phantom(ckpt.config.task, args.seed, "small")  # CBCT volume or panoramic
        print(f"threads {threads}; batch {list(batch.shape)}; phantom {scan.shape} at {scan_spacing} mm; "
              f"{len(meta.classes)} classes, patch {meta.patch_size}")
        rows = {
            "window batch: torch eager": _best(lambda: torch_predict(batch), args.repeats),
            "window batch: onnxruntime fp32": _best(lambda: fp32.predict_logits_patch(batch), args.repeats),
            "window batch: onnxruntime int8": _best(lambda: int8.predict_logits_patch(batch), args.repeats),
        }
        from odontoscan.models.preprocess import preprocess

        image = preprocess(scan, scan_spacing, meta.preprocess)
        image = np.pad(image, [(0, max(p - n, 0)) for n, p in zip(image.shape, meta.patch_size)])

        def whole(predict) -> None:
            for _ in blend_slabs(image, predict, meta.patch_size, num_classes=len(meta.classes)):
                pass

        rows["whole scan: torch eager"] = _best(lambda: whole(torch_predict), 1)
        rows["whole scan: onnxruntime fp32"] = _best(lambda: whole(fp32.predict_logits_patch), 1)
        rows["whole scan: onnxruntime int8"] = _best(lambda: whole(int8.predict_logits_patch), 1)
        rows["segment() end to end, fp32"] = _best(lambda: fp32.segment(scan, scan_spacing), 1)
        for name, seconds in rows.items():
            print(f"{name:34s} {seconds * 1000:9.1f} ms")
        for scope in ("window batch", "whole scan"):
            eager, ort32, ort8 = (rows[f"{scope}: {k}"] for k in ("torch eager", "onnxruntime fp32", "onnxruntime int8"))
            print(f"{scope}: torch/ORT fp32 = {eager / ort32:.2f}x, ORT fp32/int8 = {ort32 / ort8:.2f}x")


if __name__ == "__main__":
    main()
