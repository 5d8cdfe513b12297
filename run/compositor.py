"""The generated frames in the scene's compositor: a node group named for the extension, beside Render Layers, that
shows the frame of the generated sequence at each scene frame (following the strip: its frames, place and trims) and
mixes it over the render by a blend factor, an object or material index (an ID mask), depth, a Mask datablock or a
painted image. `blender -b scene.blend -a` renders it like any compositor tree.

The group is ours and rebuilt on every Use Frames in Compositor; the group node's inputs (Factor, Index, Near, Far,
Invert) are the user's settings, animatable like any node input, and kept with their keys. Nothing else in the
user's tree changes, but for the link into the output when the tree is Blender's default (Render Layers straight into
the output): the group goes between them.
"""

from __future__ import annotations

import os
import re

import bpy
from bpy.app.handlers import persistent

from ..bake.scene import UPSCALE_FOLDER, output_dir
from ..engine.frames import frame_filename
from ..settings import compat
from ..timeline import frame_range
from . import strips

GROUP = "Keyframe Diffusion"
MARK = "keyframe_diffusion_compositor"  # ID property on our node group: the mix it was built for

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
# Render Layers outputs (4.x names) and the view-layer pass each needs.
_PASSES = {"Render": ("Image", None), "Object Index": ("IndexOB", "use_pass_object_index"),
           "Material Index": ("IndexMA", "use_pass_material_index"), "Depth": ("Depth", "use_pass_z")}
_NEEDS = {"OBJECT_INDEX": "Object Index", "MATERIAL_INDEX": "Material Index", "DEPTH": "Depth"}
FRAMES_IMAGE = "Keyframe Diffusion Frames"


class CompositorError(RuntimeError):
    """The frames can't go into the compositor as asked; the message says what to change."""


def group_node(scene: bpy.types.Scene):
    """The group node of ours in the scene's compositor, or None."""
    tree = compat.scene_compositor(scene, create=False)
    if tree is None:
        return None
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeGroup" and node.node_tree is not None and MARK in node.node_tree:
            return node
    return None


def use_frames(scene: bpy.types.Scene) -> str:
    """Put the generated frames into the scene's compositor, or update what an earlier call put there, with the mix
    the scene's settings choose. Returns what was done, for the user."""
    settings = scene.keyframe_diffusion
    mix = settings.compositor_mix
    _check(scene, settings, mix)
    tree = compat.scene_compositor(scene)
    layers = _render_layers(scene, tree)
    node = group_node(scene)
    said = []
    if node is None:
        group = bpy.data.node_groups.new(GROUP, "CompositorNodeTree")
        _build(group, mix, settings)  # before the node uses it, so the node's inputs take the sockets' defaults
        node = tree.nodes.new("CompositorNodeGroup")
        node.node_tree = group
        node.name = node.label = GROUP
        node.location = (layers.location.x + 60, layers.location.y - 420)  # under Render Layers, clear of the output
        said.append(f"Added the \"{group.name}\" node group to the compositor")
    else:
        for name in _build(node.node_tree, mix, settings):  # inputs a newer version added: their defaults
            node.inputs[name].default_value = next(i[2] for i in INPUTS if i[0] == name)
        said.append(f"Updated the \"{node.node_tree.name}\" node group")
    _link_passes(scene, tree, layers, node, mix)
    said.append(_connect_output(tree, layers, node))
    said.append(_sequencer_note(scene))
    view = scene.view_settings.view_transform
    if view != "Standard":  # the look applies to everything the compositor outputs, the generated frames included
        said.append(f"The {view} view transform changes the generated frames' colours as it does the render's: "
                    "Render Properties > Color Management > Standard shows them as generated")
    sync(scene)
    return ". ".join(text for text in said if text)


def _check(scene, settings, mix: str) -> None:
    if mix in ("OBJECT_INDEX", "MATERIAL_INDEX") and scene.render.engine != "CYCLES":
        engine = scene.render.bl_rna.properties["engine"].enum_items[scene.render.engine].name
        raise CompositorError(f"the {engine} render engine has no {_NEEDS[mix].lower()} pass, which the "
                              f"{_NEEDS[mix]} mix needs: render with Cycles, or choose the Depth, Mask or Factor mix")
    if mix == "MASK" and settings.compositor_mask is None:
        raise CompositorError("the Mask mix needs a mask: choose one under Compositor > Mask (draw it in the Mask "
                              "editor, or use the mask of a mask strip)")
    if mix == "IMAGE" and settings.compositor_mask_image is None:
        raise CompositorError("the Painted Image mix needs an image: choose one under Compositor > Image (paint it in "
                              "the Image editor: white shows the generated frame)")


def _render_layers(scene, tree):
    """The scene's Render Layers node in the tree (made when there is none)."""
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeRLayers" and node.scene in (None, scene):
            return node
    node = tree.nodes.new("CompositorNodeRLayers")
    node.scene = scene
    return node


# The group's insides --------------------------------------------------------------------------------------------

def _build(group, mix: str, settings) -> list[str]:
    """(Re)build the group's nodes for `mix`; its sockets stay, so links and keys on the group node stay too.
    Returns the names of the setting inputs it had to add."""
    added = _ensure_interface(group)
    old = group.nodes.get("Generated Frames")
    image = old.image if old is not None else None  # kept: the frames' Image datablock outlives a rebuild
    group.nodes.clear()
    group[MARK] = mix
    inputs = group.nodes.new("NodeGroupInput")
    outputs = group.nodes.new("NodeGroupOutput")
    inputs.location, outputs.location = (-900, 0), (700, 0)
    frames = group.nodes.new("CompositorNodeImage")
    frames.name = frames.label = "Generated Frames"
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
        group.links.new(inputs.outputs[_NEEDS[mix]], off.inputs[0])
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


# The group in the user's tree ------------------------------------------------------------------------------------

def _link_passes(scene, tree, layers, node, mix: str) -> None:
    """Render Layers into the group's inputs: the render always, and the pass the mix needs (switched on in the view
    layer). Links the user made into the group are left as they are."""
    wanted = ["Render"] + ([_NEEDS[mix]] if mix in _NEEDS else [])
    view_layer = scene.view_layers.get(layers.layer) or scene.view_layers[0]
    for name in wanted:
        output, flag = _PASSES[name]
        if flag:
            setattr(view_layer, flag, True)
        target = node.inputs[name]
        source = compat.render_layer_output(layers, output)
        if target.is_linked or source is None:
            continue
        tree.links.new(source, target)


def _connect_output(tree, layers, node) -> str:
    """Send the group's result to the compositor's output when the output shows the plain render (Blender's default
    tree: Render Layers into it, straight or through one reroute); a tree the user built is left alone."""
    target = compat.compositor_output(tree)
    if target is None:
        return "Connect the group's Image output to the compositor's output to render it"
    link = target.links[0] if target.is_linked else None
    if link is not None and link.from_node.bl_idname == "NodeReroute":  # 4.5's default tree feeds Composite + Viewer
        target = link.from_node.inputs[0]
        link = target.links[0] if target.is_linked else None
    if link is not None and link.from_node == node:
        return ""
    if link is None or link.from_socket == compat.render_layer_output(layers, "Image"):
        tree.links.new(node.outputs["Image"], target)
        return ""
    return ("Your compositor's output is fed by your own nodes, so they were left as they are: connect the group's "
            "Image output where the generated frames should go")


def _sequencer_note(scene) -> str:
    """With strips in the Sequencer and its post-processing on, a render is the edit, not the compositor. When the
    strips are only ours (the frames, now in the compositor), or none yet (Generate makes ours later, Generate Before
    Render in the middle of `-a`), renders switch to the compositor."""
    render = scene.render
    if not render.use_sequencer:
        return ""
    if strips.sequencer_is_ours(scene):
        render.use_sequencer = False
        return ("Output Properties > Post Processing > Sequencer is now off, so renders show the compositor (the "
                "Sequencer still shows the strip)")
    return ("The Sequencer has strips and Post Processing > Sequencer is on, so renders show the edit: add this scene "
            "as a scene strip, or turn Sequencer off, to render the compositor")


# Following the frames --------------------------------------------------------------------------------------------

def sync(scene: bpy.types.Scene, reload: bool = False) -> bool:
    """Point the group's image at the frames the strip shows (or, before the first Generate, the frames it will make)
    so scene frame N shows the frame the strip shows at N; `reload` re-reads files that changed on disk. Returns
    whether the scene has our group."""
    node = group_node(scene)
    if node is None:
        return False
    group = node.node_tree
    frames = group.nodes.get("Generated Frames")
    if frames is None:  # the user deleted it inside our group: the next Use Frames in Compositor rebuilds it
        return True
    folder, first_file, start, end = _source(scene)
    path = os.path.join(folder, frame_filename(first_file))
    image = frames.image
    if image is None:
        image = bpy.data.images.new(FRAMES_IMAGE, 1, 1)
        image.source = "SEQUENCE"
        image.colorspace_settings.name = "sRGB"  # as the strips: generated frames are sRGB PNGs
        frames.image = image
    if os.path.normpath(bpy.path.abspath(image.filepath)) != path:
        image.filepath = path
        reload = True
    # The image node shows file number (N - frame_start + 1 + frame_offset) at scene frame N. Values are written only
    # when they change: this runs on every depsgraph update (follow_strip), and a write is an update itself.
    _set(frames, "frame_start", start)
    _set(frames, "frame_duration", max(1, end - start))
    _set(frames, "frame_offset", first_file - 1)
    _set(group.nodes["First Frame"].inputs[1], "default_value", start - 0.5)
    _set(group.nodes["End Frame"].inputs[1], "default_value", end - 0.5)
    if reload:
        image.reload()
    return True


def _set(owner, name: str, value) -> None:
    if getattr(owner, name) != value:
        setattr(owner, name, value)


@persistent
def follow_strip(scene, depsgraph) -> None:
    """The compositor follows the strip as the user moves or trims it (a strip change updates the scene)."""
    if depsgraph.id_type_updated("SCENE"):
        try:
            sync(scene)
        except CompositorError as e:  # a strip renamed by hand to something not ours: said where it is used
            print(f"keyframe_diffusion: the compositor can't follow the strip: {e}")


def register() -> None:
    bpy.app.handlers.depsgraph_update_post.append(follow_strip)


def unregister() -> None:
    if follow_strip in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(follow_strip)


def _source(scene) -> tuple[str, int, int, int]:
    """(folder, file number shown at the first frame, first frame, frame after the last) of the frames to show."""
    settings = scene.keyframe_diffusion
    upscaled = settings.compositor_source == "UPSCALED"
    strip = strips.find_strip(scene, strips.upscaled_name(scene) if upscaled else None)
    if strip is not None and len(strip.elements):
        folder = bpy.path.abspath(strip.directory)
        first_number = _number(strip.elements[0].filename)
        start, end = compat.strip_start(strip), compat.strip_end(strip)
        # The strip shows its element k at content_start + k; trims hide some at either end.
        return os.path.normpath(folder), first_number + start - round(compat.content_start(strip)), start, end
    folder = output_dir(scene)
    if upscaled:
        folder = os.path.join(folder, UPSCALE_FOLDER)
    first, last = frame_range.render_range(scene)
    return folder, first, first, last + 1


def _number(filename: str) -> int:
    found = re.search(r"(\d+)\.png$", filename)
    if found is None:
        raise CompositorError(f"the strip's frame '{filename}' has no frame number")
    return int(found.group(1))
