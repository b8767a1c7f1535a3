"""odontoscan.training: MONAI training, evaluation, ONNX export, MLflow tracking."""
