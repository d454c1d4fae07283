"""Small onnxruntime graphs for the runtime's image preparation, built with the ``onnx`` package.

The runtime has no ``onnx`` (it is in the train extra), so the built graphs are committed as package
data under ``mmdesk/perception/graphs`` and a test checks that they are exactly what this module builds.
Rebuild them with ``python -m mmdesk.training.image_graphs``.
"""

from __future__ import annotations

from pathlib import Path

GRAPHS_DIR = Path(__file__).resolve().parent.parent / "perception" / "graphs"
YUNET_INPUT = "yunet_input.onnx"


def yunet_input_graph() -> bytes:
    """uint8 BGR frame (H, W, 3) → YuNet's float32 input blob (1, 3, pad_h, pad_w).

    Inputs: ``image``; ``size`` int64 [height, width] to resize to (bilinear, pixel centres aligned and
    no antialiasing, like cv2.resize INTER_LINEAR); ``pads`` int64 [8] in ONNX Pad order (only the
    bottom/right of H and W are non-zero: YuNet wants multiples of 32). The resize stays uint8, as the
    OpenCV path that YuNet's behaviour was checked on rounds to whole grey levels before the blob.
    One onnxruntime call instead of numpy's resize + transpose, and it runs without the GIL
    (docs/benchmarks.md).
    """
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        # 4-D NHWC with the channel size kept: onnxruntime's integer NHWC bilinear kernel (1.5 ms for
        # 720p → 480×270, against 2.2 ms resizing the 3-D image on axes 0 and 1)
        helper.make_node("Unsqueeze", ["image", "batch_axis"], ["nhwc"]),
        helper.make_node("Concat", ["one", "size", "three"], ["nhwc_size"], axis=0),
        helper.make_node("Resize", ["nhwc", "", "", "nhwc_size"], ["small"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("Transpose", ["small"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["nchw"], ["nchw_float"], to=TensorProto.FLOAT),
        helper.make_node("Pad", ["nchw_float", "pads"], ["blob"]),  # constant mode: zeros, as YuNet was run
    ]
    graph = helper.make_graph(
        nodes,
        "yunet_input",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["height", "width", 3]),
         helper.make_tensor_value_info("size", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("pads", TensorProto.INT64, [8])],
        [helper.make_tensor_value_info("blob", TensorProto.FLOAT, [1, 3, "pad_height", "pad_width"])],
        [helper.make_tensor("batch_axis", TensorProto.INT64, [1], [0]),
         helper.make_tensor("one", TensorProto.INT64, [1], [1]),
         helper.make_tensor("three", TensorProto.INT64, [1], [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], producer_name="mmdesk",
                              ir_version=9)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def main() -> None:
    from mmdesk.training.export_common import atomic_write_bytes

    atomic_write_bytes(GRAPHS_DIR / YUNET_INPUT, yunet_input_graph())
    print(f"wrote {GRAPHS_DIR / YUNET_INPUT}")


if __name__ == "__main__":
    main()
