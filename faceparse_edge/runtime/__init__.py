"""On-device inference without torch: ONNX Runtime and OpenVINO backends."""
