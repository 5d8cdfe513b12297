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
