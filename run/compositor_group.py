"""The insides of the compositor node group run/compositor.py puts beside Render Layers: the generated frames (an image
sequence the group's "Generated Frames" node reads, scaled to the render size) mixed over the render where the chosen
mix says, times Factor, Invert, the frame's alpha and the strip's range. Rebuilt whole for each mix; the group's
sockets are only ever added to, so links into the group node and keys on its inputs stay."""

from __future__ import annotations

from ..settings import compat

MARK = "keyframe_diffusion_compositor"  # ID property on our node group: the mix it was built for
FRAMES_NODE = "Generated Frames"

# The group's inputs: (name, socket type, default, min, max). The first four come from Render Layers; the rest are
# the settings a user sets and keys on the group node.
INPUTS = (("Render", "NodeSocketColor", None, None, None),
          ("Object Index", "NodeSocketFloat", 0.0, None, None),
          ("Material Index", "NodeSocketFloat", 0.0, None, None),
          ("Depth", "NodeSocketFloat", 0.0, None, None),
          ("Factor", "NodeSocketFloat", 1.0, 0.0, 1.0),
          ("Index", "NodeSocketFloat", 1.0, 0.0, 32767.0),
          ("Near", "NodeSocketFloat", 5.0, 0.0, None),
          ("Far", "NodeSocketFloat", 10.0, 0.0, None),
          ("Invert", "NodeSocketFloat", 0.0, 0.0, 1.0))
OUTPUTS = (("Image", "NodeSocketColor"), ("Generated", "NodeSocketColor"), ("Matte", "NodeSocketFloat"))
CONTROLS = {"FACTOR": ("Factor",), "OBJECT_INDEX": ("Factor", "Index", "Invert"),
            "MATERIAL_INDEX": ("Factor", "Index", "Invert"), "DEPTH": ("Factor", "Near", "Far", "Invert"),
            "MASK": ("Factor", "Invert"), "IMAGE": ("Factor", "Invert")}
# The Render Layers pass each mix reads (a group input of the same name).
NEEDS = {"OBJECT_INDEX": "Object Index", "MATERIAL_INDEX": "Material Index", "DEPTH": "Depth"}


def build(group, mix: str, settings) -> list[str]:
    """(Re)build the group's nodes for `mix`; its sockets stay, so links and keys on the group node stay too.
    Returns the names of the setting inputs it had to add."""
    added = _ensure_interface(group)
    old = group.nodes.get(FRAMES_NODE)
    image = old.image if old is not None else None  # kept: the frames' Image datablock outlives a rebuild
    group.nodes.clear()
    group[MARK] = mix
    inputs = group.nodes.new("NodeGroupInput")
    outputs = group.nodes.new("NodeGroupOutput")
    inputs.location, outputs.location = (-900, 0), (700, 0)
    frames = group.nodes.new("CompositorNodeImage")
    frames.name = frames.label = FRAMES_NODE
    frames.image = image
    frames.location = (-900, 400)
    fitted = compat.scale_to_render_node(group)
    fitted.location = (-650, 400)
    group.links.new(frames.outputs["Image"], fitted.inputs["Image"])
    shows = _shows(group, inputs, mix, settings)
    matte = _product(group, [_inverted(group, shows, inputs.outputs["Invert"]), inputs.outputs["Factor"],
                             _alpha(group, fitted.outputs[0]), _in_range(group)])
    node, factor, a, b, result = compat.mix_node(group)
    node.location = (450, 100)
    group.links.new(matte, factor)
    group.links.new(inputs.outputs["Render"], a)
    group.links.new(fitted.outputs[0], b)
    group.links.new(result, outputs.inputs["Image"])
    group.links.new(fitted.outputs[0], outputs.inputs["Generated"])
    group.links.new(matte, outputs.inputs["Matte"])
    return added


def _ensure_interface(group) -> list[str]:
    have = {(item.in_out, item.name) for item in group.interface.items_tree if item.item_type == "SOCKET"}
    added = []
    for name, kind, default, low, high in INPUTS:
        if ("INPUT", name) in have:
            continue
        if default is not None:
            added.append(name)
        socket = group.interface.new_socket(name, in_out="INPUT", socket_type=kind)
        if default is not None:
            socket.default_value = default
        if low is not None:
            socket.min_value = low
        if high is not None:
            socket.max_value = high
    for name, kind in OUTPUTS:
        if ("OUTPUT", name) not in have:
            group.interface.new_socket(name, in_out="OUTPUT", socket_type=kind)
    return added


def _shows(group, inputs, mix: str, settings):
    """The socket that is 1 where the generated frame shows (before Invert and Factor), 0 where the render stays."""
    if mix == "FACTOR":
        one = compat.math_node(group, "ADD")  # a constant 1 (0 + 1)
        one.inputs[0].default_value, one.inputs[1].default_value = 0.0, 1.0
        return one.outputs[0]
    if mix in ("OBJECT_INDEX", "MATERIAL_INDEX"):
        # Away from the chosen index (an ID mask whose index is a socket, so it can be keyed on every version).
        off = compat.math_node(group, "SUBTRACT")
        group.links.new(inputs.outputs[NEEDS[mix]], off.inputs[0])
        group.links.new(inputs.outputs["Index"], off.inputs[1])
        size = compat.math_node(group, "ABSOLUTE")
        group.links.new(off.outputs[0], size.inputs[0])
        away = compat.math_node(group, "GREATER_THAN")
        group.links.new(size.outputs[0], away.inputs[0])
        away.inputs[1].default_value = 0.5
        return away.outputs[0]
    if mix == "DEPTH":  # 0 up to Near (the render stays), rising to 1 at Far (the generated frame)
        node, (value, from_min, from_max, to_min, to_max), result = compat.map_range_node(group)
        group.links.new(inputs.outputs["Depth"], value)
        group.links.new(inputs.outputs["Near"], from_min)
        group.links.new(inputs.outputs["Far"], from_max)
        to_min.default_value, to_max.default_value = 0.0, 1.0
        return result
    if mix == "MASK":
        node = group.nodes.new("CompositorNodeMask")
        node.mask = settings.compositor_mask
        compat.mask_node_follows_scene(node)
        return node.outputs[0]
    painted = group.nodes.new("CompositorNodeImage")  # IMAGE: a painted picture, white where the frame shows
    painted.image = settings.compositor_mask_image
    fitted = compat.scale_to_render_node(group)
    group.links.new(painted.outputs["Image"], fitted.inputs["Image"])
    grey = group.nodes.new("CompositorNodeRGBToBW")
    group.links.new(fitted.outputs[0], grey.inputs[0])
    return grey.outputs[0]


def _inverted(group, value, invert):
    """value, or 1 - value as Invert goes to 1: value * (1 - 2 * invert) + invert."""
    slope = compat.math_node(group, "MULTIPLY_ADD")
    group.links.new(invert, slope.inputs[0])
    slope.inputs[1].default_value, slope.inputs[2].default_value = -2.0, 1.0
    result = compat.math_node(group, "MULTIPLY_ADD")
    group.links.new(value, result.inputs[0])
    group.links.new(slope.outputs[0], result.inputs[1])
    group.links.new(invert, result.inputs[2])
    return result.outputs[0]


def _alpha(group, image):
    """The image's alpha: 0 where a frame file is missing (not rendered yet) and in the bars of a fitted frame."""
    split = group.nodes.new("CompositorNodeSeparateColor")
    group.links.new(image, split.inputs[0])
    return split.outputs["Alpha"]


def _in_range(group):
    """1 on the frames the strip shows, 0 elsewhere (sync sets the bounds), as the strip shows nothing there."""
    time = group.nodes.new("CompositorNodeSceneTime")
    after = compat.math_node(group, "GREATER_THAN")
    after.name = "First Frame"  # frame > first - 0.5
    group.links.new(time.outputs["Frame"], after.inputs[0])
    before = compat.math_node(group, "LESS_THAN")
    before.name = "End Frame"  # frame < end - 0.5 (the frame after the last)
    group.links.new(time.outputs["Frame"], before.inputs[0])
    both = compat.math_node(group, "MULTIPLY")
    group.links.new(after.outputs[0], both.inputs[0])
    group.links.new(before.outputs[0], both.inputs[1])
    return both.outputs[0]


def _product(group, sockets):
    result = sockets[0]
    for socket in sockets[1:]:
        times = compat.math_node(group, "MULTIPLY")
        group.links.new(result, times.inputs[0])
        group.links.new(socket, times.inputs[1])
        result = times.outputs[0]
    return result
