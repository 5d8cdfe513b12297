"""Plain helpers for the Blender tests that differ between Blender versions, importable both by the tests (pytest puts
tests/blender on the path) and by blender_version_check.py, which runs in another bpy's venv. The extension itself
never makes effect strips, so these live here rather than in settings/compat.py."""

from __future__ import annotations


def strip_collection(scene):
    """The scene's top-level strips (`strips` from 4.4, `sequences` before), creating the editor if needed."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def new_effect(strips, name: str, type: str, channel: int, start: int, end: int, inputs=()):
    """An effect strip showing frames start..end-1. Blender 5.0 replaced new_effect's `frame_end` with `length`
    (4.5 still takes `frame_end`) and 4.4 renamed `seq1`/`seq2` to `input1`/`input2`: both are read from the
    function's own parameters rather than guessed from the version."""
    parameters = strips.bl_rna.functions["new_effect"].parameters
    span = {"length": end - start} if "length" in parameters else {"frame_end": end}
    prefix = "input" if "input1" in parameters else "seq"
    linked = {f"{prefix}{i}": strip for i, strip in enumerate(inputs, 1)}
    return strips.new_effect(name=name, type=type, channel=channel, frame_start=start, **span, **linked)


def cube(name: str = "Cube", size: float = 2.0):
    """A cube object of `size` centred on its origin, not linked to a scene (built from data, the same on every
    Blender, unlike the primitive operators' defaults)."""
    import bpy

    h = size / 2
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(x, y, z) for x in (-h, h) for y in (-h, h) for z in (-h, h)], [],
                     [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    return bpy.data.objects.new(name, mesh)
