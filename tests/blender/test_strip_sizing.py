"""Frames that fill the picture (bpy 5.0): the strip is scaled to the scene's render size from the plan's frame size,
before any frame file exists, in the three ways a Generate runs (the job the sidebar's modal Generate polls, the CLI
command, the render hook of `blender -b -a`); the first Generate in a scene sets the render size to the frames' once;
the user's own transform and later render size stay; a first Generate that fails or is cancelled before a frame exists
leaves no strip and the scene as it was."""

import os

import numpy as np
import pytest
from PIL import Image

from blender_helpers import strip_collection
from engine.frames import frame_filename

bpy = pytest.importorskip("bpy")

FIRST_USE = "Render size set to 64x64 (the frames' size; was 1920x1080); change it in Output Properties > Format"


def keyed(scene, last=2):
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=last)
    scene.frame_end = last
    scene.keyframe_diffusion.steps = 1
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1920, 1080)  # the factory size
    return scene.keyframe_diffusion


def gui_generate(extension, scene):
    """What the modal Generate does: start, then poll from its timer until the job is over."""
    job = extension.run.generate.GenerateJob(scene)
    job.start()
    while not job.poll(0.1):
        pass
    return job


def our_strip(extension, scene):
    return extension.run.strips.find_strip(scene)


def scale(extension, strip):
    return extension.settings.compat.strip_transform(strip)


def frame_file(scene, frame=1):
    return os.path.join(bpy.path.abspath(scene.keyframe_diffusion.output_dir), frame_filename(frame))


def render(scene, path, frame=1):
    """Blender's render of the Sequencer at `frame`, at the scene's render size."""
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = path
    scene.frame_set(frame)
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


def assert_fills(scene, rendered, frame=1):
    """The render is the frame file scaled to the whole picture: the size Blender renders at, and the generated pixels
    reach every edge (a frame shown small in black would leave the edges black)."""
    r = scene.render
    size = (r.resolution_x * r.resolution_percentage // 100, r.resolution_y * r.resolution_percentage // 100)
    assert rendered.shape == (size[1], size[0], 3)
    source = Image.open(frame_file(scene, frame)).convert("RGB")
    expected = np.asarray(source.resize(size, Image.Resampling.BILINEAR), dtype=float)
    assert np.abs(rendered - expected).mean() < 8
    for edge in (np.s_[:2], np.s_[-2:], np.s_[:, :2], np.s_[:, -2:]):
        assert np.abs(rendered[edge] - expected[edge]).mean() < 12
    assert rendered.mean() > 0.5 * expected.mean()


def test_the_first_generate_sets_the_render_size_once_and_the_strip_fills_it(scene, extension, tmp_path):
    """The sidebar's path: a factory 1920x1080 scene renders 64x64 frames at their size, then keeps the user's size."""
    keyed(scene)
    scene.render.resolution_percentage = 100
    job = gui_generate(extension, scene)
    assert not job.error and FIRST_USE in job.message
    assert (scene.render.resolution_x, scene.render.resolution_y) == (64, 64)
    assert scene.get(extension.run.strips.SIZE_MARK) is not None
    assert scale(extension, our_strip(extension, scene))[:2] == (1.0, 1.0)
    rendered = render(scene, str(tmp_path / "first.png"))
    assert np.abs(rendered - np.asarray(Image.open(frame_file(scene)).convert("RGB"))).max() <= 2
    # The user picks a bigger size of the same shape: it stays, and the strip follows it at the next Generate.
    scene.render.resolution_x = scene.render.resolution_y = 128
    job = gui_generate(extension, scene)
    assert "Render size" not in job.message
    assert (scene.render.resolution_x, scene.render.resolution_y) == (128, 128)
    assert scale(extension, our_strip(extension, scene))[:2] == (2.0, 2.0)
    assert_fills(scene, render(scene, str(tmp_path / "bigger.png")))
    # Set back to 1920x1080 by the user: not changed again (once per scene); the frame fits its height.
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    gui_generate(extension, scene)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1920, 1080)
    assert scale(extension, our_strip(extension, scene))[:2] == (1080 / 64, 1080 / 64)


def test_the_cli_fits_the_strip_to_a_size_of_the_frames_shape(scene, extension, tmp_path):
    """Headless `-c keyframe_diffusion generate`: a render size of the frames' shape is the user's (kept), and the
    strip is scaled to it, render percentage included."""
    keyed(scene)
    scene.render.resolution_x = scene.render.resolution_y = 192
    scene.render.resolution_percentage = 50
    assert extension.run.cli.main(["generate"]) == 0
    assert (scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage) == (192, 192, 50)
    assert scale(extension, our_strip(extension, scene)) == pytest.approx((3, 3, 0, 0, 0, 0.5, 0.5))
    assert_fills(scene, render(scene, str(tmp_path / "cli.png"), frame=2), frame=2)


@pytest.mark.parametrize("animation", [True, False])
def test_a_render_with_generate_before_render_fills_its_frames(scene, extension, tmp_path, animation):
    """`blender -b scene.blend -a` (and F12) with Generate Before Render on a factory-size scene never generated
    before: the render hook sets the size in render_init, which Blender reads after its handlers, so this very
    render comes out at the frames' size, filled."""
    settings = keyed(scene)
    settings.generate_before_render = True
    scene.render.image_settings.file_format = "PNG"
    if animation:
        scene.render.filepath = str(tmp_path / "render") + os.sep
        assert bpy.ops.render.render(animation=True) == {"FINISHED"}
        paths = [str(tmp_path / "render" / f"{f:04d}.png") for f in (1, 2)]
    else:
        paths = [str(tmp_path / "still.png")]
        scene.render.filepath = paths[0]
        assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    assert (scene.render.resolution_x, scene.render.resolution_y) == (64, 64)
    for frame, path in enumerate(paths, 1):
        rendered = np.asarray(Image.open(path).convert("RGB"), dtype=int)
        generated = np.asarray(Image.open(frame_file(scene, frame)).convert("RGB"), dtype=int)
        assert rendered.shape == generated.shape and np.abs(rendered - generated).max() <= 2


def test_made_before_its_frames_or_rebuilt_over_them_the_strip_fits_alike(scene, extension, tmp_path):
    """Whatever the history: made before any frame exists, made again over existing frames, range, frame size and
    render size changed; a transform the user set survives."""
    settings = keyed(scene, last=3)
    strips = strip_collection(scene)
    gui_generate(extension, scene)
    scene.render.resolution_x, scene.render.resolution_y = 160, 120  # the user's size, another shape
    gui_generate(extension, scene)
    made_first = scale(extension, our_strip(extension, scene))
    assert made_first == pytest.approx((120 / 64, 120 / 64, 0, 0, 0, 0.5, 0.5))
    first_render = render(scene, str(tmp_path / "made_first.png"))
    strips.remove(our_strip(extension, scene))  # the user deletes it; the frames stay on disk
    gui_generate(extension, scene)  # made over existing files: Blender's own fit would use them
    assert scale(extension, our_strip(extension, scene)) == pytest.approx(made_first)
    assert np.abs(render(scene, str(tmp_path / "rebuilt.png")) - first_render).max() <= 2
    scene.frame_end = 2  # range changed
    gui_generate(extension, scene)
    assert scale(extension, our_strip(extension, scene)) == pytest.approx(made_first)
    settings.width = 128  # frame size changed: 128x64 frames fit 160 wide
    gui_generate(extension, scene)
    assert scale(extension, our_strip(extension, scene))[:2] == pytest.approx((160 / 128, 160 / 128))
    assert (scene.render.resolution_x, scene.render.resolution_y) == (160, 120)
    # The user's own transform stays through Generate, range and render size changes.
    strip = our_strip(extension, scene)
    strip.transform.scale_x, strip.transform.offset_y = 0.5, 10
    scene.render.resolution_x = 320
    scene.frame_end = 3
    gui_generate(extension, scene)
    t = our_strip(extension, scene).transform
    assert (t.scale_x, t.scale_y, t.offset_y) == pytest.approx((0.5, 160 / 128, 10))


def test_a_strip_made_before_the_fit_was_recorded_is_refitted_unless_the_user_moved_it(scene, extension, tmp_path):
    strips = extension.run.strips
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(folder / frame_filename(1))
    strip = strips.update_strip(scene, str(folder), [1])  # as earlier versions made it: Blender fits the file
    assert strip.transform.scale_x == pytest.approx(1080 / 64) and strips.FIT_MARK not in strip
    scene.render.resolution_x = scene.render.resolution_y = 64
    strips.update_strip(scene, str(folder), [1], size=(64, 64))
    assert strip.transform.scale_x == strip.transform.scale_y == 1 and strips.FIT_MARK in strip
    del strip[strips.FIT_MARK]
    strip.transform.offset_x = 5  # moved by the user
    strips.update_strip(scene, str(folder), [1], size=(32, 32))
    assert (strip.transform.scale_x, strip.transform.offset_x) == (1, 5)


def test_a_failed_first_generate_leaves_the_scene_as_it_was(scene, extension, tmp_path):
    """The engine can't load the model: no strip (no red missing-media strip), size and view as they were; the
    next, working Generate is the first use again."""
    settings = keyed(scene)
    model = settings.model
    settings.model = str(tmp_path / "no-such-model")
    with pytest.raises(extension.run.generate.GenerateError):
        extension.run.generate.GenerateJob(scene).run_blocking()
    assert our_strip(extension, scene) is None and len(strip_collection(scene)) == 0
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1920, 1080)
    assert scene.view_settings.view_transform == "AgX"
    strips = extension.run.strips
    assert strips.SIZE_MARK not in scene and strips.VIEW_MARK not in scene
    settings.model = model
    job = gui_generate(extension, scene)
    assert FIRST_USE in job.message and "View transform set to Standard" in job.message


def test_cancelling_before_the_first_frame_takes_the_first_use_back(scene, extension):
    keyed(scene)
    job = extension.run.generate.GenerateJob(scene)
    job.start()
    assert (scene.render.resolution_x, scene.render.resolution_y) == (64, 64)  # while it runs
    job.cancel()  # while the model loads: no frame gets written
    while not job.poll(0.1):
        pass
    assert job.cancelled and job.rendered == []
    assert our_strip(extension, scene) is None
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1920, 1080)
    assert scene.view_settings.view_transform == "AgX" and "Render size" not in job.message


def test_a_failure_after_frames_exist_keeps_the_strip(scene, extension, tmp_path):
    settings = keyed(scene, last=3)
    settings.batch_size = 1  # one frame at a time, so a cancel after the first leaves the others undone
    job = extension.run.generate.GenerateJob(scene)
    job.run_blocking(on_event=lambda event: event.get("event") == "frame" and job.cancel())
    assert job.cancelled and 1 <= len(job.rendered) < 3
    assert our_strip(extension, scene) is not None and (scene.render.resolution_x, scene.render.resolution_y) == (64, 64)
    # Made again over frames on disk, then the engine fails: the finished frames keep their strip.
    strip_collection(scene).remove(our_strip(extension, scene))
    settings.model = str(tmp_path / "no-such-model")
    with pytest.raises(extension.run.generate.GenerateError):
        extension.run.generate.GenerateJob(scene).run_blocking()
    assert our_strip(extension, scene) is not None and (scene.render.resolution_x, scene.render.resolution_y) == (64, 64)


def test_with_the_upscale_pass_the_render_size_is_the_upscaled_frames(scene, extension, tmp_path):
    """The upscaler's factor shows only in its first frame: the first-use size grows to it and both strips fit."""
    from engine.tiny_model import make_tiny_upscaler

    settings = keyed(scene)
    settings.use_upscale = True
    settings.upscale_model = make_tiny_upscaler(str(tmp_path / "x2"), kind="x2")
    settings.upscale_steps = 1
    settings.upscale_guidance = 0.0
    job = gui_generate(extension, scene)
    assert not job.error and sorted(job.upscaled) == [1, 2]
    assert "Render size set to 128x128 (the upscaled frames' size; was 1920x1080)" in job.message
    assert (scene.render.resolution_x, scene.render.resolution_y) == (128, 128)
    strips = extension.run.strips
    upscaled = strips.find_strip(scene, strips.upscaled_name(scene))
    assert scale(extension, our_strip(extension, scene))[:2] == (2, 2) and scale(extension, upscaled)[:2] == (1, 1)
    rendered = render(scene, str(tmp_path / "upscaled.png"))
    path = os.path.join(bpy.path.abspath(upscaled.directory), frame_filename(1))
    assert np.abs(rendered - np.asarray(Image.open(path).convert("RGB"))).max() <= 2


def test_a_sequencer_with_the_users_strips_keeps_its_render_size(scene, extension, tmp_path):
    from blender_helpers import new_effect

    keyed(scene)
    new_effect(strip_collection(scene), "Title", "COLOR", 9, 1, 3)
    job = gui_generate(extension, scene)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1920, 1080)
    assert "The frames (64x64) are another shape than the render (1920x1080)" in job.message
    assert "Resolution to 64x64" in job.message
    assert scale(extension, our_strip(extension, scene))[:2] == (1080 / 64, 1080 / 64)  # fitted, with bars
