"""Every Blender-version difference the extension meets, in one place (4.2 LTS to 5.2).

- Sequencer: `sequences` / `sequences_all` became `strips` / `strips_all` in 4.4; 5.0 has only `strips`.
- Animation: `Action.fcurves` gave way to layered actions with channelbags in 4.4; 5.0 removed `Action.fcurves`.
- `bpy_struct.keyframe_insert` takes keyword-only options from 4.5; keywords work on every version.
- Path properties declare blend-relative support (`PATH_SUPPORTS_BLEND_RELATIVE`) from 4.5 (5.0 warns without it);
  4.2 doesn't know it.
- Strip timing: 5.2 deprecates `frame_start`, `frame_final_*` and `frame_offset_*` (removal in 6.0) for
  `content_start`, `left_handle`, `right_handle`, `duration` and `*_handle_offset`.
- Compositor: the tree moved to `scene.compositing_node_group` in 5.0, and its output from a Composite node to the
  group's output; File Output nodes changed their items; the Mask node follows the scene size only when told before
  5.0; image settings gained `media_type` in 5.0. Math, Map Range and Mix are the shader nodes from 4.5 (the only ones
  in 5.0), the Compositor* nodes before; the Scale node's options became menu sockets in 5.0.
- Builds: the 4.2 bpy wheel has no audio (audaspace).
- Strip transform (strip_transform): the same on 4.2 to 5.2; the version check renders a fitted strip on each.
"""

from __future__ import annotations

import bpy


# The names of the strip collections on a SequenceEditor (for prop_search).
STRIPS = "strips" if bpy.app.version >= (4, 4, 0) else "sequences"
STRIPS_ALL = "strips_all" if bpy.app.version >= (4, 4, 0) else "sequences_all"


def has_audio() -> bool:
    """Whether this Blender was built with audio (sound strips); the 4.2 bpy wheel wasn't."""
    return bool(getattr(bpy.app.build_options, "audaspace", True))


def sequence_editor(scene: bpy.types.Scene):
    return scene.sequence_editor or scene.sequence_editor_create()


def top_strips(scene: bpy.types.Scene):
    """The top-level strip collection (has new_image, remove, get)."""
    editor = sequence_editor(scene)
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(scene: bpy.types.Scene):
    editor = scene.sequence_editor
    if editor is None:
        return []
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


# Strip timing: 5.2 name -> the name before it (deprecated in 5.2, removed in 6.0). The name is looked up on the
# strip's own RNA, not guessed from the version, so a build with either set works and no deprecation warning fires.
_TIMING = {"content_start": "frame_start", "left_handle": "frame_final_start", "right_handle": "frame_final_end",
           "duration": "frame_final_duration", "left_handle_offset": "frame_offset_start",
           "right_handle_offset": "frame_offset_end"}


def _timing(strip, name: str) -> str:
    return name if name in strip.bl_rna.properties else _TIMING[name]


def strip_start(strip) -> int:
    """The first frame the strip shows (its left handle, after trims)."""
    return getattr(strip, _timing(strip, "left_handle"))


def strip_end(strip) -> int:
    """One past the last frame the strip shows (its right handle, after trims)."""
    return getattr(strip, _timing(strip, "right_handle"))


def strip_duration(strip) -> int:
    """How many frames the strip shows (handle to handle)."""
    return getattr(strip, _timing(strip, "duration"))


def content_start(strip) -> float:
    """The frame where the strip's content (its first element, the sound's time 0) sits, trims aside."""
    return getattr(strip, _timing(strip, "content_start"))


def set_content_start(strip, frame: float) -> None:
    """Move the strip (content and handles together) so its content starts at `frame`."""
    setattr(strip, _timing(strip, "content_start"), frame)


def clear_trims(strip) -> None:
    """Show the whole content (no frames hidden at either end)."""
    setattr(strip, _timing(strip, "left_handle_offset"), 0)
    setattr(strip, _timing(strip, "right_handle_offset"), 0)


def set_handles(strip, start: int, end: int) -> None:
    """Trim the strip to show frames start..end-1. Setting a handle is also what makes Blender refit the effect
    strips that use this one as input (changing its elements or trims alone doesn't)."""
    setattr(strip, _timing(strip, "left_handle"), start)
    setattr(strip, _timing(strip, "right_handle"), end)


# A strip's transform as strip_transform reads it: scale x, y; offset x, y (scene pixels, from centred); rotation
# (radians); origin x, y (the pivot, as a share of the image).
TRANSFORM = ("scale_x", "scale_y", "offset_x", "offset_y", "rotation", "origin_x", "origin_y")


def strip_transform(strip) -> tuple[float, ...]:
    """The strip's transform in TRANSFORM order. The same RNA (strip.transform: scale_x/y, offset_x/y, rotation,
    origin) on 4.2 to 5.2, and no strip keeps a fit_method (only new_image takes one, and fits only to a file that
    exists): a Blender that changes either is handled here."""
    t = strip.transform
    return (t.scale_x, t.scale_y, t.offset_x, t.offset_y, t.rotation, t.origin[0], t.origin[1])


def set_strip_transform(strip, values: tuple[float, ...]) -> None:
    """Set the strip's transform from values in TRANSFORM order."""
    t = strip.transform
    t.scale_x, t.scale_y, t.offset_x, t.offset_y, t.rotation = values[:5]
    t.origin = values[5:7]


def keyframe_insert(struct, prop: str, frame: float, index: int = -1) -> bool:
    return struct.keyframe_insert(prop, index=index, frame=frame)


def action_fcurves(id_data):
    """The F-curves animating an ID (empty when it has no action)."""
    anim = getattr(id_data, "animation_data", None)
    if anim is None or anim.action is None:
        return []
    if bpy.app.version >= (4, 4, 0):
        from bpy_extras import anim_utils

        bag = anim_utils.action_get_channelbag_for_slot(anim.action, anim.action_slot)
        return list(bag.fcurves) if bag is not None else []
    return list(anim.action.fcurves)


def _fcurve_collection(id_data):
    anim = id_data.animation_data
    if bpy.app.version >= (4, 4, 0):
        from bpy_extras import anim_utils

        return anim_utils.action_get_channelbag_for_slot(anim.action, anim.action_slot).fcurves
    return anim.action.fcurves


def remove_fcurve(id_data, fcurve) -> None:
    _fcurve_collection(id_data).remove(fcurve)


def find_fcurve(id_data, data_path: str, index: int = 0):
    for fc in action_fcurves(id_data):
        if fc.data_path == data_path and fc.array_index == index:
            return fc
    return None


def set_video_output(render) -> None:
    """Point the render output at FFmpeg (5.0 first needs the media type switched to video)."""
    settings = render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"


def image_output_state(render) -> dict:
    """The output settings set_video_output changes, to restore them afterwards."""
    settings = render.image_settings
    state = {"file_format": settings.file_format, "color_mode": settings.color_mode}
    if hasattr(settings, "media_type"):
        state = {"media_type": settings.media_type, **state}
    return state


def set_image_output(settings, file_format: str) -> None:
    """Point image settings at a still-image format (5.0 first needs the media type switched to image)."""
    if hasattr(settings, "media_type"):
        settings.media_type = "IMAGE"
    settings.file_format = file_format


def restore_image_output(render, state: dict) -> None:
    for key, value in state.items():  # media_type first: it decides which file formats are allowed
        setattr(render.image_settings, key, value)


def path_options() -> set[str]:
    """Options for path properties that hold '//' (blend-relative) paths: 4.5 and later warn without this option;
    4.2 fails to register a property that names it. Detected, not assumed from the version: a Blender that knows the
    option says so on every property (`is_path_supports_blend_relative`)."""
    known = "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties
    return {"PATH_SUPPORTS_BLEND_RELATIVE"} if known else set()


def compositor_tree(scene):
    """The scene's compositor node tree, created if missing, and a function that puts back what was there.
    5.0 keeps it as a node group in scene.compositing_node_group; earlier versions own it through use_nodes."""
    if hasattr(scene, "compositing_node_group"):
        previous = scene.compositing_node_group
        tree = bpy.data.node_groups.new("Keyframe Diffusion Passes", "CompositorNodeTree")
        scene.compositing_node_group = tree

        def restore() -> None:
            scene.compositing_node_group = previous
            bpy.data.node_groups.remove(tree)

        return tree, restore
    used = scene.use_nodes
    scene.use_nodes = True
    tree = scene.node_tree
    before = set(tree.nodes)

    def restore() -> None:
        for node in [n for n in tree.nodes if n not in before]:
            tree.nodes.remove(node)
        scene.use_nodes = used

    return tree, restore


def mask_node_follows_scene(node) -> None:
    """Make a compositor Mask node render at the scene's size (5.0 always does; before, only when told)."""
    if hasattr(node, "size_source"):
        node.size_source = "SCENE"


def file_output_node(tree, directory: str, inputs: list[tuple[str, str]]):
    """A File Output node writing one float EXR per input (name, socket type 'FLOAT'/'VECTOR'/'RGBA': 'RGBA' keeps
    four channels, the Vector pass's); returns the node. 5.0 names items by `file_output_items` and writes
    `file_name + item`; earlier versions use file slots and append the frame number (see pass_file)."""
    node = tree.nodes.new("CompositorNodeOutputFile")
    if hasattr(node, "file_output_items"):
        node.directory = directory
        node.file_name = ""
        node.format.media_type = "IMAGE"
        node.format.file_format = "OPEN_EXR"
        node.format.color_depth = "32"
        for name, socket_type in inputs:
            node.file_output_items.new(socket_type, name).save_as_render = False  # data, not a picture
    else:
        node.base_path = directory
        node.format.file_format = "OPEN_EXR"
        node.format.color_depth = "32"
        node.format.color_mode = "RGB"
        node.file_slots.clear()
        for name, socket_type in inputs:
            node.file_slots.new(name)
            if socket_type == "RGBA":  # this slot keeps the fourth channel the node's RGB format would drop
                slot = node.file_slots[len(node.file_slots) - 1]
                slot.use_node_format = False
                slot.save_as_render = False
                slot.format.file_format, slot.format.color_depth = "OPEN_EXR", "32"
                slot.format.color_mode = "RGBA"
    return node


# Render Layers outputs that 5.0 renamed (4.x name -> 5.0 name).
_RENAMED_LAYER_OUTPUTS = {"IndexOB": "Object Index", "IndexMA": "Material Index"}


def render_layer_output(node, name: str):
    """The Render Layers node's output for a pass by its 4.x name, or None where the render engine has none."""
    return node.outputs.get(name) or node.outputs.get(_RENAMED_LAYER_OUTPUTS.get(name, name))


def link_to_file_output(tree, source, target, socket_type: str) -> None:
    """Link a pass output to a File Output input. Before 5.0 a float input is written as a single "V" channel, which
    OpenCV can't read, so it goes through a Combine Color node into R, G and B; before 4.5 an RGBA one (the Vector
    pass) goes through Separate and Combine Color so its four values reach R, G, B and A."""
    if socket_type == "FLOAT" and bpy.app.version < (5, 0, 0):
        combine = tree.nodes.new("CompositorNodeCombineColor")
        for i in range(3):
            tree.links.new(source, combine.inputs[i])
        source = combine.outputs[0]
    elif socket_type == "RGBA" and bpy.app.version < (4, 5, 0):
        # 4.2 writes a vector socket as X, Y, Z; the Vector pass has a fourth value, which Separate Color reaches.
        # (4.5 and later write all four, as X, Y, Z, W, and Separate Color there drops the fourth.)
        split = tree.nodes.new("CompositorNodeSeparateColor")
        combine = tree.nodes.new("CompositorNodeCombineColor")
        tree.links.new(source, split.inputs[0])
        for i in range(4):
            tree.links.new(split.outputs[i], combine.inputs[i])
        source = combine.outputs[0]
    tree.links.new(source, target)


def pass_file(directory: str, name: str, frame: int) -> str:
    """Where file_output_node wrote input `name` when rendering `frame`."""
    import os

    if bpy.app.version >= (5, 0, 0):
        return os.path.join(directory, f"{name}.exr")
    return os.path.join(directory, f"{name}{frame:04d}.exr")


# The scene compositor a user keeps (not the temporary one compositor_tree makes for passes).

def scene_compositor(scene, create: bool = True):
    """The scene's own compositor tree, made as Blender makes a new one (Render Layers into the output) when there is
    none and `create`; None otherwise. Compositing is switched on (render.use_compositing; use_nodes before 5.0)."""
    if hasattr(scene, "compositing_node_group"):
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new("Compositor Nodes", "CompositorNodeTree")
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            layers = tree.nodes.new("CompositorNodeRLayers")
            output = tree.nodes.new("NodeGroupOutput")
            layers.location, output.location = (-300, 0), (200, 0)
            tree.links.new(layers.outputs["Image"], output.inputs[0])
            scene.compositing_node_group = tree
    else:
        if not scene.use_nodes and create:
            scene.use_nodes = True  # makes the default tree (Render Layers into Composite) when there is none
        tree = scene.node_tree if scene.use_nodes else None
    if tree is not None and create:
        scene.render.use_compositing = True
    return tree


def compositor_output(tree):
    """The input the compositor's result goes into: the Composite node's Image (before 5.0), the active group output's
    first input (5.0); None when the tree has neither."""
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeComposite":
            return node.inputs["Image"]
    outputs = [n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"]
    active = [n for n in outputs if n.is_active_output] or outputs
    if active and active[0].inputs and active[0].inputs[0].type != "CUSTOM":
        return active[0].inputs[0]
    return None


_LEGACY_COMPOSITOR_NODES = hasattr(bpy.types, "CompositorNodeMixRGB")  # 4.2-4.5; 5.0 has only the shader nodes


def math_node(tree, operation: str):
    """A Math node (two Value inputs, one Value output) doing `operation` (ADD, LESS_THAN, ...)."""
    node = tree.nodes.new("CompositorNodeMath" if _LEGACY_COMPOSITOR_NODES else "ShaderNodeMath")
    node.operation = operation
    return node


def map_range_node(tree):
    """A clamped Map Range node; returns (node, [Value, From Min, From Max, To Min, To Max] inputs, output)."""
    if _LEGACY_COMPOSITOR_NODES:
        node = tree.nodes.new("CompositorNodeMapRange")
        node.use_clamp = True
    else:
        node = tree.nodes.new("ShaderNodeMapRange")
        node.data_type, node.clamp = "FLOAT", True
    return node, list(node.inputs)[:5], node.outputs[0]


def mix_node(tree):
    """A colour mix: result = A * (1 - factor) + B * factor. Returns (node, factor, a, b, result) sockets."""
    if _LEGACY_COMPOSITOR_NODES:
        node = tree.nodes.new("CompositorNodeMixRGB")
        node.use_clamp = False
        return node, node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    node = tree.nodes.new("ShaderNodeMix")
    node.data_type, node.blend_type, node.clamp_factor = "RGBA", "MIX", True
    colours = [s for s in node.inputs if s.type == "RGBA"]
    result = next(s for s in node.outputs if s.type == "RGBA")
    return node, node.inputs["Factor"], colours[0], colours[1], result


def scale_to_render_node(tree):
    """A Scale node fitting its image, centred, to the render size (letterboxed where the shapes differ, as the
    strips are)."""
    node = tree.nodes.new("CompositorNodeScale")
    if "Type" in node.inputs:
        node.inputs["Type"].default_value = "Render Size"
        node.inputs["Frame Type"].default_value = "Fit"
    else:
        node.space, node.frame_method = "RENDER_SIZE", "FIT"
    return node
