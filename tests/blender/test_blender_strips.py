"""Our Sequencer strip in real Blender (bpy 5.0): generating again updates it in place, so what the user set on it
stays (effects on it, blend, modifiers, channel, trims where the range allows), and the Sequencer renders its frames
with the colours they were generated with."""

import os

import numpy as np
import pytest
from PIL import Image

from blender_helpers import new_effect, strip_collection
from engine.frames import frame_filename

bpy = pytest.importorskip("bpy")


def span(extension, strip):
    compat = extension.settings.compat
    return compat.strip_start(strip), compat.strip_end(strip)


def test_generating_after_the_range_changed_keeps_the_strip_and_what_the_user_set(scene, extension):
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=6)
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    strips = strip_collection(scene)
    strip = strips["Keyframe Diffusion"]
    pointer = strip.as_pointer()
    blur = new_effect(strips, "Blur", "GAUSSIAN_BLUR", 6, 1, 7, inputs=[strip])
    strip.channel, strip.blend_alpha, strip.blend_type, strip.color_saturation = 5, 0.5, "ADD", 1.5
    # (Modifiers go unchecked: modifiers.new crashes the bpy 5.0.1 wheel; the strip being the same one keeps them.)
    for first, last in ((1, 8), (3, 5)):
        scene.frame_start, scene.frame_end = first, last
        assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
        strip = strips["Keyframe Diffusion"]
        assert strip.as_pointer() == pointer  # the same strip, not one made anew
        assert [e.filename for e in strip.elements] == [frame_filename(f) for f in range(first, last + 1)]
        assert span(extension, strip) == (first, last + 1)
        assert (strip.channel, strip.blend_alpha, strip.blend_type, strip.color_saturation) == (5, 0.5, "ADD", 1.5)
        assert "Blur" in strips and blur.input_1 == strip and span(extension, blur) == (first, last + 1)
    assert all(os.path.isfile(os.path.join(bpy.path.abspath(strip.directory), e.filename)) for e in strip.elements)


def test_a_trim_stays_where_the_user_put_it_while_that_end_of_the_range_stays(scene, extension, tmp_path):
    update = extension.run.strips.update_strip
    compat = extension.settings.compat
    folder = str(tmp_path / "frames")  # the files need not exist: elements fill in as frames finish
    strip = update(scene, folder, list(range(1, 11)))
    compat.set_handles(strip, 3, 9)  # the user hides frames 1-2 and 9-10
    update(scene, folder, list(range(1, 13)))  # the end moved: the right handle follows it, the left trim stays
    assert span(extension, strip) == (3, 13)
    compat.set_handles(strip, 3, 11)
    update(scene, folder, list(range(4, 13)))  # the start moved past the trim: the strip starts at 4; the end stays
    assert span(extension, strip) == (4, 11)
    update(scene, folder, list(range(4, 10)))  # the end moved before the right trim: the strip ends with the range
    assert span(extension, strip) == (4, 10)
    # The same frames again change nothing, trims included.
    compat.set_handles(strip, 5, 8)
    update(scene, folder, list(range(4, 10)))
    assert span(extension, strip) == (5, 8) and len(strip.elements) == 6
    # A strip the user slid off its frames goes back onto them.
    compat.set_content_start(strip, 20)
    update(scene, folder, list(range(4, 11)))
    assert compat.content_start(strip) == 4 and span(extension, strip) == (4, 11)
    # Another folder (the output folder changed): the same strip points there.
    other = str(tmp_path / "other")
    update(scene, other, list(range(4, 11)))
    assert os.path.normpath(bpy.path.abspath(strip.directory)) == os.path.normpath(other)


def render_frame(scene, path, frame=1):
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 64, 64, 100
    render.image_settings.file_format = "PNG"
    render.filepath = path
    scene.frame_set(frame)
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGB"), dtype=int)


def test_the_sequencer_renders_a_frame_with_its_generated_colours(scene, extension, tmp_path):
    strips = extension.run.strips
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (64, 64), (220, 30, 30)).save(folder / frame_filename(1))
    assert scene.view_settings.view_transform == "AgX"  # Blender's factory setting, which tone-maps the frame
    strip = strips.update_strip(scene, str(folder), [1])
    assert strip.colorspace_settings.name == "sRGB"
    said = strips.show_as_generated(scene)
    assert "Standard (was AgX)" in said and "Color Management" in said
    assert scene.view_settings.view_transform == "Standard"
    rendered = render_frame(scene, str(tmp_path / "render.png"))
    assert np.abs(rendered - np.array([220, 30, 30])).max() <= 2
    # Once per scene: a user who wants AgX back keeps it.
    scene.view_settings.view_transform = "AgX"
    assert strips.show_as_generated(scene) == "" and scene.view_settings.view_transform == "AgX"


@pytest.mark.parametrize("change", ["another strip", "a look", "scene render input"])
def test_a_scene_whose_look_matters_keeps_its_view_transform_and_is_told(scene, extension, tmp_path, change):
    strips = extension.run.strips
    if change == "another strip":
        new_effect(strip_collection(scene), "Title", "COLOR", 9, 1, 7)
    elif change == "a look":
        scene.view_settings.exposure = 0.5
    else:
        settings = scene.keyframe_diffusion
        settings.mode, settings.init_source = "VIDEO", "SCENE"
    strips.update_strip(scene, str(tmp_path), [1, 2])
    said = strips.show_as_generated(scene)
    assert scene.view_settings.view_transform == "AgX"
    assert "view transform (AgX) changes the strip's colours" in said and "to Standard" in said


def test_generate_says_once_that_it_set_the_view_transform(scene, extension):
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    scene.frame_end = 2
    job = extension.run.generate.GenerateJob(scene)
    job.run_blocking()
    assert "View transform set to Standard (was AgX)" in job.message
    assert scene.view_settings.view_transform == "Standard"
    job = extension.run.generate.GenerateJob(scene)
    job.run_blocking()
    assert "View transform" not in job.message
