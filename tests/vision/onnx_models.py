"""Tiny hand-built ONNX models for testing the ONNX Runtime path without a trained model."""

from __future__ import annotations

import numpy as np


def const_model(path, boxes_cxcywh_scores: np.ndarray, size=(640, 640), names=None):
    """An ONNX model whose output is a fixed [1, 4+nc, N] tensor (input read but unused)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = boxes_cxcywh_scores[None].astype(np.float32)
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(out, "cv"))
    # tie the input in (x * 0 summed) so the graph is a function of it
    red = helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0)
    mul = helper.make_node("Mul", ["s", "zero"], ["z"])
    add = helper.make_node("Add", ["c", "z"], ["output0"])
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    g = helper.make_graph([const, red, mul, add], "g",
                          [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *size])],
                          [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out.shape))], [zero])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    if names is not None:
        helper.set_model_props(m, {"names": repr(dict(enumerate(names))), "imgsz": repr(list(size))})
    onnx.save(m, str(path))
    return path
