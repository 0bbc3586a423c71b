"""Export to ONNX and OpenVINO IR, and INT8 quantisation with ONNX Runtime and NNCF."""
