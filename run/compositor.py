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
from .compositor_group import FRAMES_NODE, INPUTS, MARK, NEEDS, build

GROUP = "Keyframe Diffusion"

# Render Layers outputs (4.x names) and the view-layer pass each needs.
_PASSES = {"Render": ("Image", None), "Object Index": ("IndexOB", "use_pass_object_index"),
           "Material Index": ("IndexMA", "use_pass_material_index"), "Depth": ("Depth", "use_pass_z")}
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
        build(group, mix, settings)  # before the node uses it, so the node's inputs take the sockets' defaults
        node = tree.nodes.new("CompositorNodeGroup")
        node.node_tree = group
        node.name = node.label = GROUP
        node.location = (layers.location.x + 60, layers.location.y - 420)  # under Render Layers, clear of the output
        said.append(f"Added the \"{group.name}\" node group to the compositor")
    else:
        for name in build(node.node_tree, mix, settings):  # inputs a newer version added: their defaults
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
        raise CompositorError(f"the {engine} render engine has no {NEEDS[mix].lower()} pass, which the "
                              f"{NEEDS[mix]} mix needs: render with Cycles, or choose the Depth, Mask or Factor mix")
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


# The group in the user's tree ------------------------------------------------------------------------------------

def _link_passes(scene, tree, layers, node, mix: str) -> None:
    """Render Layers into the group's inputs: the render always, and the pass the mix needs (switched on in the view
    layer). Links the user made into the group are left as they are."""
    wanted = ["Render"] + ([NEEDS[mix]] if mix in NEEDS else [])
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
    frames = group.nodes.get(FRAMES_NODE)
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
