"""Convert MediaPipe's selfie segmenter (landscape, 144x256) from TFLite to the ONNX graph the runtime ships.

    pip download --no-deps mediapipe==0.10.14 -d /tmp/mp    # the last wheels that hold the model file
    unzip -j /tmp/mp/mediapipe-*.whl mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite -d /tmp/mp
    pip install tflite==2.18.0                             # the flatbuffer schema, for this tool only
    python tools/selfie_segmenter_onnx.py /tmp/mp/selfie_segmentation_landscape.tflite

Writes faceparse_edge/runtime/selfie_segmenter/selfie-segmenter-landscape.onnx: NCHW float input "image" (1, 3, 144,
256), RGB in 0..1; output "person" (1, 1, 144, 256), the probability that a pixel shows a person. The graph is
the TFLite one op for op (its float16 weights widened to float32), written in NCHW; the converter handles
exactly the ops this model uses and refuses any other. It then checks the ONNX graph against OpenCV's own
TFLite reader on random and on smooth inputs (the largest difference is printed; it must stay under 1e-4).
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parents[1] / "faceparse_edge" / "runtime" / "selfie_segmenter" / "selfie-segmenter-landscape.onnx"
NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32}  # TFLite TensorType codes


def convert(path: Path) -> onnx.ModelProto:
    import tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    builtin = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}

    def tensor_name(i):
        return graph.Tensors(i).Name().decode()

    def constant(i):
        t = graph.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int):  # no data: produced by an op (DEQUANTIZE)
            return None
        return np.frombuffer(data.tobytes(), NUMPY_TYPES[t.Type()]).reshape(t.ShapeAsNumpy()).astype(
            np.float32 if t.Type() in (0, 1) else np.int64)

    def options(op, cls):
        table = op.BuiltinOptions()
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def same_pads(size, kernel, stride):
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    consts, nodes, inits = {}, [], []
    activation = {0: None, 1: "Relu"}  # fused activations this model uses

    def weight(name, array):
        inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def emit(kind, inputs, output, fused=0, **attrs):
        if activation.get(fused, "?") == "?":
            raise SystemExit(f"unsupported fused activation {fused}")
        raw = output + "_raw" if activation[fused] else output
        nodes.append(helper.make_node(kind, inputs, [raw], **attrs))
        if activation[fused]:
            nodes.append(helper.make_node(activation[fused], [raw], [output]))

    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = code.CustomCode().decode() if code.CustomCode() else builtin[max(code.BuiltinCode(),
                                                                                 code.DeprecatedBuiltinCode())]
        ins, outs = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
        out = tensor_name(outs[0])
        if kind == "DEQUANTIZE":
            consts[out] = constant(ins[0])
            continue
        x = tensor_name(ins[0])
        value = [consts.get(tensor_name(i)) if i >= 0 else None for i in ins]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = kind == "DEPTHWISE_CONV_2D"
            o = options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
            kernel = value[1].transpose(3, 0, 1, 2) if depthwise else value[1].transpose(0, 3, 1, 2)
            h, w = graph.Tensors(ins[0]).ShapeAsNumpy()[1:3]
            kh, kw = kernel.shape[2:]
            if o.Padding() == tflite.Padding.SAME:
                (t, b), (l, r) = same_pads(h, kh, o.StrideH()), same_pads(w, kw, o.StrideW())
            else:
                t = b = l = r = 0
            emit("Conv", [x, weight(out + "_w", kernel), weight(out + "_b", value[2])], out,
                 o.FusedActivationFunction(), strides=[o.StrideH(), o.StrideW()], pads=[t, l, b, r],
                 group=kernel.shape[0] if depthwise else 1)
        elif kind == "Convolution2DTransposeBias":  # MediaPipe's op: stride 2, kernel 2, SAME, no padding needed
            params = np.frombuffer(op.CustomOptionsAsNumpy().tobytes(), np.int32)  # padding, stride_w, stride_h
            kernel = value[1].transpose(3, 0, 1, 2)  # (O, H, W, I) -> (I, O, H, W)
            if list(params) != [1, 2, 2] or kernel.shape[2:] != (2, 2):
                raise SystemExit(f"unsupported transposed convolution {list(params)} {kernel.shape}")
            emit("ConvTranspose", [x, weight(out + "_w", kernel), weight(out + "_b", value[2])], out,
                 strides=[2, 2], kernel_shape=[2, 2])
        elif kind in ("ADD", "MUL"):
            o = options(op, tflite.AddOptions if kind == "ADD" else tflite.MulOptions)
            emit(kind.title(), [x, tensor_name(ins[1])], out, o.FusedActivationFunction())
        elif kind == "MEAN":
            axes = constant(ins[1])
            if sorted(axes.tolist()) != [1, 2]:
                raise SystemExit(f"unsupported mean over axes {axes}")
            emit("GlobalAveragePool", [x], out)
        elif kind == "RESIZE_BILINEAR":
            o = options(op, tflite.ResizeBilinearOptions)
            size = constant(ins[1])
            mode = "align_corners" if o.AlignCorners() else "half_pixel" if o.HalfPixelCenters() else "asymmetric"
            sizes = np.array([1, graph.Tensors(ins[0]).ShapeAsNumpy()[3], *size], np.int64)
            inits.append(numpy_helper.from_array(sizes, out + "_size"))
            emit("Resize", [x, "", "", out + "_size"], out, mode="linear", coordinate_transformation_mode=mode)
        elif kind in ("RELU", "HARD_SWISH", "LOGISTIC"):
            emit({"RELU": "Relu", "HARD_SWISH": "HardSwish", "LOGISTIC": "Sigmoid"}[kind], [x], out)
        else:
            raise SystemExit(f"unsupported TFLite op {kind}")

    source, result = tensor_name(graph.Inputs(0)), tensor_name(graph.Outputs(0))
    _, h, w, _ = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy()
    nodes.insert(0, helper.make_node("Identity", ["image"], [source]))
    nodes.append(helper.make_node("Identity", [result], ["person"]))
    onnx_graph = helper.make_graph(nodes, "selfie_segmenter_landscape",
                                   [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, int(h), int(w)])],
                                   [helper.make_tensor_value_info("person", TensorProto.FLOAT, [1, 1, int(h), int(w)])],
                                   inits)
    onnx_model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", 14)],
                                   producer_name="faceparse-edge tools/selfie_segmenter_onnx.py",
                                   ir_version=8)  # what ONNX Runtime (Python and Web) of any recent release reads
    onnx_model.doc_string = (f"MediaPipe selfie segmentation (landscape), converted from {path.name} "
                             "(mediapipe 0.10.14, Apache-2.0); input RGB 0..1, NCHW; output person probability")
    onnx.checker.check_model(onnx_model)
    return onnx_model


def largest_difference(tflite_path: Path, onnx_model: onnx.ModelProto) -> float:
    """The largest difference between the ONNX graph (ONNX Runtime) and OpenCV's reading of the TFLite file."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    net = cv2.dnn.readNetFromTFLite(str(tflite_path))
    rng = np.random.default_rng(0)
    smooth = cv2.resize(rng.random((9, 16, 3), np.float32), (256, 144), interpolation=cv2.INTER_CUBIC)
    worst = 0.0
    for image in (rng.random((144, 256, 3), np.float32), np.clip(smooth, 0, 1)):
        blob = image.transpose(2, 0, 1)[None].copy()
        net.setInput(blob)
        expected = net.forward().reshape(144, 256)
        got = session.run(["person"], {"image": blob})[0].reshape(144, 256)
        worst = max(worst, float(np.abs(expected - got).max()))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tflite", type=Path, help="selfie_segmentation_landscape.tflite from mediapipe 0.10.14")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    onnx_model = convert(args.tflite)
    worst = largest_difference(args.tflite, onnx_model)
    print(f"largest difference from OpenCV's TFLite reader: {worst:.2e}")
    if worst > 1e-4:
        sys.exit("the converted graph does not match the TFLite model")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    onnx.save(onnx_model, tmp)
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
