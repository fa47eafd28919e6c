"""Detection stage: synthetic data, YOLO training/export, ONNX inference, tiling,
geolocation and multi-frame incident tracking. torch/ultralytics are imported only by
the training module."""
