"""Where Use Frames in Compositor is found: the Sequencer sidebar's Compositor panel, the compositor's own sidebar (tab
Diffusion) and its Add menu; and what the panel shows once the group exists (its keyable amounts). The group itself is
tested on every Blender in test_compositor.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_panels import Layout

bpy = pytest.importorskip("bpy")

OPERATOR = "keyframe_diffusion.compositor_use"


def drawn(draw, *args) -> list:
    calls = []
    draw(SimpleNamespace(layout=Layout(calls)), *args)
    return calls


def test_panel_shows_the_mix_then_the_groups_amounts(scene, extension):
    panels = extension.panels
    context = SimpleNamespace(scene=scene)
    before = drawn(panels.sequencer.KD_PT_compositor.draw, context)
    assert ("prop", "compositor_mix") in before and ("operator", OPERATOR) in before
    assert ("prop", "default_value") not in before  # no group yet: no amounts

    scene.keyframe_diffusion.compositor_mix = "DEPTH"
    assert bpy.ops.keyframe_diffusion.compositor_use() == {"FINISHED"}
    after = drawn(panels.sequencer.KD_PT_compositor.draw, context)
    # Factor, Near, Far and Invert: the group node's own inputs, so hovering one and pressing I keys the node.
    assert after.count(("prop", "default_value")) == 4
    node = extension.run.compositor.group_node(scene)
    assert node.inputs["Near"].keyframe_insert("default_value", frame=1)

    # The mask mixes show their datablock field; a mix not applied yet says to update.
    scene.keyframe_diffusion.compositor_mix = "MASK"
    masked = drawn(panels.sequencer.KD_PT_compositor.draw, context)
    assert ("prop", "compositor_mask") in masked and ("label", "Update Compositor to apply the new mix") in masked


def test_compositor_sidebar_and_add_menu(scene, extension):
    compositor_space = SimpleNamespace(scene=scene, space_data=SimpleNamespace(tree_type="CompositorNodeTree"))
    shader_space = SimpleNamespace(scene=scene, space_data=SimpleNamespace(tree_type="ShaderNodeTree"))
    panel = extension.panels.compositor.KD_PT_node_compositor
    assert panel.poll(compositor_space) and not panel.poll(shader_space)
    assert ("operator", OPERATOR) in drawn(panel.draw, compositor_space)
    add_menu = extension.operators.compositor.add_menu
    assert ("operator", OPERATOR) in drawn(add_menu, compositor_space)
    assert ("operator", OPERATOR) not in drawn(add_menu, shader_space)
    assert add_menu in bpy.types.NODE_MT_add._dyn_ui_initialize()
