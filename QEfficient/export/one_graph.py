"""The one-graph vision-language layout (QEfficient's ``kv_offload=False``), built from the two graphs.

The vision graph becomes the ``then`` branch of an ONNX ``If`` inside the language graph:

* ``pixel_values`` with images: the branch runs the vision encoder, and its output feeds the
  image-token merge of this step;
* ``pixel_values`` with zero images (later prefill chunks, decode): the ``else`` branch passes the
  ``vision_embeds`` input through, so the runtime feeds back the embeddings of the first chunk and
  the encoder runs once per batch of prompts, not once per chunk.

Either way the embeddings used are also an output, ``vision_embeds_RetainedState``. Composing the
exported graphs (instead of tracing ``torch.cond``) keeps one exporter for every layout, and both
layouts run the very same vision and language nodes: they give the same tokens by construction.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from QEfficient.export.graph_names import RETAINED_EMBEDS, VISION_EMBEDS
from QEfficient.utils.onnx_files import load_graph_and_weights, save_with_external_weights

VISION_PREFIX = "vision/"


def _prefixed_vision_branch(vision: onnx.GraphProto, outer_inputs: set[str]) -> tuple[onnx.GraphProto, list[TensorProto]]:
    """The vision graph as a branch body: no inputs of its own (it reads the outer graph's vision
    inputs by name), every other value renamed so nothing clashes with the language graph. Its
    weights are returned apart, to live in the outer graph: ONNX Runtime reads a subgraph's own
    initializers through onnx's checker, which refuses the artifact's hard-linked weight file."""

    def rename(name: str) -> str:
        return name if (not name or name in outer_inputs) else VISION_PREFIX + name

    for node in vision.node:  # renamed in place: the vision model was loaded for this only
        node.name = rename(node.name)
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for init in vision.initializer:
        init.name = rename(init.name)
    (out,) = vision.output
    output = helper.make_tensor_value_info(rename(out.name), out.type.tensor_type.elem_type, None)
    return helper.make_graph(vision.node, "vision_encoder", [], [output]), list(vision.initializer)


def combine_vision_language(vision_onnx: Path, language_onnx: Path, out_path: Path) -> Path:
    """Write the one-graph model to ``out_path`` (+ external data); returns it."""
    vision = load_graph_and_weights(vision_onnx)
    lang = load_graph_and_weights(language_onnx)
    vision_inputs = [i for i in vision.graph.input]
    then_branch, vision_weights = _prefixed_vision_branch(vision.graph, {i.name for i in vision_inputs})

    embeds_type = next(i for i in lang.graph.input if i.name == VISION_EMBEDS).type.tensor_type.elem_type
    passthrough = helper.make_graph(
        [helper.make_node("Identity", [VISION_EMBEDS], ["vision/fed_back"])],
        "fed_back_embeddings",
        [],
        [helper.make_tensor_value_info("vision/fed_back", embeds_type, None)],
    )
    first = vision_inputs[0].name
    gate = [
        helper.make_node("Size", [first], ["vision/num_pixels"]),
        helper.make_node("Constant", [], ["vision/zero"], value=helper.make_tensor("zero", TensorProto.INT64, [], [0])),
        helper.make_node("Greater", ["vision/num_pixels", "vision/zero"], ["vision/has_images"]),
        helper.make_node("If", ["vision/has_images"], [RETAINED_EMBEDS], then_branch=then_branch, else_branch=passthrough),
    ]
    graph = lang.graph
    for node in graph.node:
        node.input[:] = [RETAINED_EMBEDS if n == VISION_EMBEDS else n for n in node.input]
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend(gate + body)
    # inputs: the language inputs, then the vision ones (pixel_values, ...)
    graph.input.extend(vision_inputs)
    graph.initializer.extend(vision_weights)
    rank = len(vision.graph.output[0].type.tensor_type.shape.dim)
    graph.output.insert(2, helper.make_tensor_value_info(RETAINED_EMBEDS, embeds_type, [f"vision_dim{i}" for i in range(rank)]))
    model = helper.make_model(graph, opset_imports=lang.opset_import, ir_version=lang.ir_version)
    # both parts were shape-folded when exported; only the weights' layout is left to do
    return save_with_external_weights(model, out_path)
