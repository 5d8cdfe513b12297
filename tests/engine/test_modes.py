"""Feedback and video modes on the tiny model: chains, cadence, resume, 3D reprojection, init frames, ControlNet,
and the parameters written into each frame."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from PIL import Image

from engine import image_ops, plan as plan_mod, warp
from engine.frames import FrameStore
from engine.renderer import Renderer

SIZE = 64


def feedback_plan(out, frames=6, steps=4, strength=0.5, motion=None, image=None, **settings) -> dict:
    records = []
    for i in range(frames):
        records.append({
            "frame": i + 1, "seed": 10 + i, "steps": steps, "guidance": 5.0, "strength": strength,
            "prompts": [{"text": "a red circle" if i < frames // 2 else "a blue square", "negative": "", "weight": 1.0}],
            "motion": dict(motion or {}), "image": dict(image or {"noise": 0.0, "contrast": 1.0}), "camera": None,
        })
    return plan_mod.validate({
        "schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
        "settings": {"mode": "FEEDBACK", "model": settings.pop("model", "embedded:tiny"), "width": SIZE,
                     "height": SIZE, "output_dir": str(out), **settings},
        "frames": records,
    })


def render(plan, frame_range=None, cancel_after=None, renderer=None):
    events = []
    cancel = threading.Event()

    def emit(event):
        events.append(event)
        if cancel_after is not None and event["event"] == "frame" and not event["skipped"]:
            if sum(1 for e in events if e["event"] == "frame" and not e["skipped"]) >= cancel_after:
                cancel.set()

    summary = (renderer or Renderer()).render(plan, frame_range, emit, cancel)
    return summary, events


def frames_of(folder, frames):
    store = FrameStore(str(folder))
    return {f: store.read(f) for f in frames}


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


def test_feedback_resumed_after_cancel_equals_uninterrupted(tmp_path, renderer):
    kwargs = dict(motion={"zoom": 1.05, "angle": 3.0, "translation_x": 2.0},
                  image={"noise": 0.03, "contrast": 1.02, "color_coherence_amount": 1.0}, color_coherence="LAB",
                  cadence=2)
    whole = feedback_plan(tmp_path / "whole", **kwargs)
    summary, _ = render(whole, renderer=renderer)
    assert summary["rendered"] == 6
    expected = frames_of(tmp_path / "whole", range(1, 7))

    parts = feedback_plan(tmp_path / "parts", **kwargs)
    first, _ = render(parts, cancel_after=2, renderer=renderer)
    # The cancel stops the chain at its next denoising step: frame 3, a cadence frame warped without one, is kept.
    assert first["cancelled"] and first["rendered"] == 3
    # A crash mid-write leaves a torn frame: it must be re-rendered from the chain, not trusted.
    with open(FrameStore(str(tmp_path / "parts")).path(2), "r+b") as f:
        f.truncate(100)
    second, events = render(parts, renderer=renderer)
    assert not second["cancelled"]
    # Frame 3 (diffused before its in-between frame 2) is whole and current; the torn frame 2 is made again from it.
    assert [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]] == [2, 4, 5, 6]
    resumed = frames_of(tmp_path / "parts", range(1, 7))
    for frame in range(1, 7):
        assert np.array_equal(resumed[frame], expected[frame]), f"frame {frame} differs after resume"
    # The chain really moved: consecutive frames differ.
    assert not np.array_equal(expected[3], expected[4])


def test_cadence_renders_every_frame_and_blends_between_keys(tmp_path, renderer):
    plan = feedback_plan(tmp_path, frames=7, cadence=3)
    summary, events = render(plan, renderer=renderer)
    assert summary["rendered"] == 7
    assert sorted(e["frame"] for e in events if e["event"] == "frame") == list(range(1, 8))
    diffused = {f for e in events if e["event"] == "progress" for f in e["frames"]}
    assert diffused == {1, 4, 7}  # keys: every 3rd from the first, and the last one
    got = frames_of(tmp_path, range(1, 8))
    # Zero motion: an in-between is the plain cross-blend of the keys on both sides.
    assert np.array_equal(got[2], image_ops.blend_frames(got[1], got[4], 1 / 3))
    assert np.array_equal(got[6], image_ops.blend_frames(got[4], got[7], 2 / 3))


def test_cadence_last_key_is_the_last_frame_when_uneven(tmp_path, renderer):
    plan = feedback_plan(tmp_path, frames=6, cadence=4)
    _, events = render(plan, renderer=renderer)
    diffused = {f for e in events if e["event"] == "progress" for f in e["frames"]}
    assert diffused == {1, 5, 6}
    assert sorted(e["frame"] for e in events if e["event"] == "frame") == list(range(1, 7))


def test_strength_zero_keeps_the_warped_previous_frame(tmp_path, renderer):
    # Below one denoising step nothing is diffused: each frame is the previous one after motion.
    motion = {"zoom": 1.1, "angle": 5.0, "translation_x": 3.0, "translation_y": -2.0}
    plan = feedback_plan(tmp_path, frames=3, strength=0.0, motion=motion, border="REFLECT")
    render(plan, renderer=renderer)
    got = frames_of(tmp_path, [1, 2, 3])
    assert np.array_equal(got[2], warp.warp_2d(got[1], motion, "REFLECT"))
    assert np.array_equal(got[3], warp.warp_2d(got[2], motion, "REFLECT"))


def test_changing_a_frame_rerenders_it_and_later_frames_only(tmp_path, renderer):
    plan = feedback_plan(tmp_path, frames=5)
    render(plan, renderer=renderer)
    plan["frames"][2]["prompts"][0]["text"] = "a green triangle"
    _, events = render(plan, renderer=renderer)
    rendered = [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]]
    assert rendered == [3, 4, 5]


def test_feedback_frame_range_renders_missing_predecessors_for_the_chain(tmp_path, renderer):
    plan = feedback_plan(tmp_path, frames=5)
    summary, events = render(plan, frame_range=(4, 5), renderer=renderer)
    # The chain runs from the first frame: the missing frames before the range are rendered and kept.
    assert summary["rendered"] == 5
    assert [e["frame"] for e in events if e["event"] == "frame"] == [1, 2, 3, 4, 5]
    _, again = render(plan, frame_range=(4, 5), renderer=renderer)
    assert [e["frame"] for e in again if e["event"] == "frame" and not e["skipped"]] == []
    whole = feedback_plan(tmp_path / "whole", frames=5)
    render(whole, renderer=renderer)
    assert np.array_equal(frames_of(tmp_path, [5])[5], frames_of(tmp_path / "whole", [5])[5])


def _camera(x: float, lens: float = 30.0) -> dict:
    matrix = np.eye(4)
    matrix[0, 3] = x
    return {"name": "Camera", "matrix_world": matrix.tolist(), "type": "PERSP", "lens": lens, "sensor_width": 36.0,
            "sensor_height": 24.0, "sensor_fit": "AUTO", "shift_x": 0.0, "shift_y": 0.0, "clip_start": 0.1,
            "clip_end": 100.0}


def test_3d_feedback_reprojects_into_the_scene_camera_with_its_depth(tmp_path, renderer):
    plan = feedback_plan(tmp_path, frames=3, strength=0.0, motion_mode="3D", camera_source="SCENE",
                         depth_source="SCENE")
    depth_dir = tmp_path / "depth"
    depth_dir.mkdir()
    for i, record in enumerate(plan["frames"]):
        record["camera"] = _camera(0.4 * i)
        depth = np.full((SIZE, SIZE), 5.0, np.float32)
        depth[:, : SIZE // 2] = 3.0  # a nearer wall on the left: it moves more than the far one (parallax)
        path = str(depth_dir / f"{i}.npy")
        image_ops.write_depth(path, depth)
        record["depth"] = path
    render(plan, renderer=renderer)
    got = frames_of(tmp_path, [1, 2, 3])
    K = warp.intrinsics(plan["frames"][0]["camera"], SIZE, SIZE)
    for a, b in ((1, 2), (2, 3)):
        expected, _ = warp.reproject(got[a], np.array(plan["frames"][a - 1]["camera"]["matrix_world"]),
                                     np.array(plan["frames"][b - 1]["camera"]["matrix_world"]), K, K,
                                     depth=image_ops.read_depth(plan["frames"][b - 1]["depth"]))
        assert np.array_equal(got[b], expected)
    assert not np.array_equal(got[1], got[2])


def test_3d_motion_values_follow_deforum_without_a_camera(tmp_path, renderer):
    motion = {"translation_z": 10.0, "rotation_3d_y": 1.0, "fov": 40.0}
    plan = feedback_plan(tmp_path, frames=2, strength=0.0, motion=motion, motion_mode="3D", camera_source="MOTION")
    render(plan, renderer=renderer)
    got = frames_of(tmp_path, [1, 2])
    expected, _ = warp.warp_3d(got[1], None, None, motion, SIZE, SIZE, plane_distance=1.0)
    assert np.array_equal(got[2], expected)


def test_first_frame_from_an_init_image_and_colour_reference(tmp_path, renderer):
    init = np.zeros((SIZE, SIZE, 3), np.uint8)
    init[..., 2] = 220  # blue
    Image.fromarray(init).save(tmp_path / "init.png")
    plan = feedback_plan(tmp_path / "out", frames=2, strength=0.0, init_image=str(tmp_path / "init.png"))
    render(plan, renderer=renderer)
    assert np.array_equal(frames_of(tmp_path / "out", [1])[1], init)


def test_frames_carry_their_parameters(tmp_path, renderer):
    plan = feedback_plan(tmp_path, frames=2, motion={"zoom": 1.02})
    render(plan, renderer=renderer)
    store = FrameStore(str(tmp_path))
    with Image.open(store.path(2)) as im:
        params = json.loads(im.text["keyframe_diffusion"])
        line = im.text["parameters"]
    assert params["frame"] == 2 and params["seed"] == 11 and params["mode"] == "FEEDBACK"
    assert params["motion"]["zoom"] == 1.02 and params["prompts"][0]["text"] == "a blue square"
    assert line.startswith("a blue square\n") and "Seed: 11" in line and "Steps: 4" in line
    with open(os.path.join(str(tmp_path), "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["frames"]["2"]["params"] == params


# --- video / scene input -------------------------------------------------------------------------------------------

def _colour_frame(i: int) -> np.ndarray:
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    frame[..., i % 3] = 200
    frame[: 8 * (i + 1), :, :] = 40
    return frame


def video_plan(out, inits: list[dict], strength=0.0, steps=4, **settings) -> dict:
    records = [{"frame": 10 + i, "seed": i, "steps": steps, "guidance": 5.0, "strength": strength,
                "prompts": [{"text": "a red circle", "negative": "", "weight": 1.0}], "init": init}
               for i, init in enumerate(inits)]
    return plan_mod.validate({
        "schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
        "settings": {"mode": "VIDEO", "model": "embedded:tiny", "width": SIZE, "height": SIZE,
                     "output_dir": str(out), **settings},
        "frames": records,
    })


def test_video_mode_takes_each_init_frame_from_images_and_movies(tmp_path, renderer):
    import cv2

    movie = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(movie, cv2.VideoWriter_fourcc(*"MJPG"), 24, (SIZE, SIZE))
    for i in range(6):
        writer.write(cv2.cvtColor(_colour_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    still = str(tmp_path / "still.png")
    Image.fromarray(_colour_frame(4)).save(still)
    plan = video_plan(tmp_path / "out", [{"path": movie, "index": 3}, {"path": movie, "index": 1},
                                         {"path": still}])
    render(plan, renderer=renderer)
    got = frames_of(tmp_path / "out", [10, 11, 12])
    # Strength 0 keeps the init: each output is the frame the record pointed at.
    for frame, source in ((10, 3), (11, 1), (12, 4)):
        assert np.abs(got[frame].astype(int) - _colour_frame(source).astype(int)).mean() < 6, frame


def test_video_mode_batched_equals_unbatched(tmp_path, renderer):
    paths = []
    for i in range(4):
        paths.append({"path": str(tmp_path / f"in{i}.png")})
        Image.fromarray(_colour_frame(i)).save(paths[-1]["path"])
    one = video_plan(tmp_path / "one", paths, strength=0.6, batch_size=1)
    four = video_plan(tmp_path / "four", paths, strength=0.6, batch_size=4)
    _, events = render(four, renderer=renderer)
    assert any(len(e["frames"]) == 4 for e in events if e["event"] == "progress")
    render(one, renderer=renderer)
    a, b = frames_of(tmp_path / "one", range(10, 14)), frames_of(tmp_path / "four", range(10, 14))
    for frame in range(10, 14):
        assert np.abs(a[frame].astype(int) - b[frame].astype(int)).max() <= 2
    assert not np.array_equal(a[10], _colour_frame(0))  # strength 0.6 really diffused


def test_video_mode_missing_init_is_a_plan_error(tmp_path):
    plan = video_plan(tmp_path, [{"path": "x.png"}])
    del plan["frames"][0]["init"]
    with pytest.raises(plan_mod.PlanError, match="frame 10.*init"):
        plan_mod.validate(plan)


def test_video_mode_unreadable_init_names_the_file(tmp_path, renderer):
    plan = video_plan(tmp_path / "out", [{"path": str(tmp_path / "missing.png")}], strength=0.5)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        render(plan, renderer=renderer)


# --- ControlNet ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_controlnet(tmp_path_factory):
    from engine.tiny_model import make_tiny_controlnet

    return make_tiny_controlnet(str(tmp_path_factory.mktemp("controlnet") / "cn"))


def test_control_images_have_the_frames_content(tmp_path):
    from engine.modes.diffuse import control_image

    init = np.zeros((SIZE, SIZE, 3), np.uint8)
    init[16:48, 20:40] = 255
    edges = control_image({"scale": 1.0}, "CANNY", init, (SIZE, SIZE), {"frame": 1})
    assert np.array_equal(edges, image_ops.canny(init))
    assert edges[14:18, 30].max() == 255 and edges[30, 30].max() == 0  # the box's border, not its inside
    depth = np.full((SIZE, SIZE), 8.0, np.float32)
    depth[:, :10] = 2.0
    image_ops.write_depth(str(tmp_path / "d.npy"), depth)
    control = control_image({"image": str(tmp_path / "d.npy"), "scale": 1.0}, "DEPTH", None, (SIZE, SIZE),
                            {"frame": 1})
    assert control[5, 5, 0] > control[5, 40, 0]  # near is bright
    with pytest.raises(ValueError, match="frame 3: a depth ControlNet unit needs a depth pass"):
        control_image({"scale": 1.0}, "DEPTH", init, (SIZE, SIZE), {"frame": 3})


def test_video_mode_with_controlnet_units_and_animated_scale(tmp_path, renderer, tiny_controlnet):
    paths = []
    for i in range(3):
        paths.append({"path": str(tmp_path / f"in{i}.png")})
        Image.fromarray(_colour_frame(i)).save(paths[-1]["path"])
    units = [{"model": tiny_controlnet, "preprocessor": "CANNY"}, {"model": tiny_controlnet, "preprocessor": "NONE"}]
    outputs = {}
    for name, scale in (("off", 0.0), ("on", 1.5)):
        plan = video_plan(tmp_path / name, paths, strength=0.7)
        plan["settings"]["controlnets"] = units
        for record in plan["frames"]:
            record["control"] = [{"scale": scale, "start": 0.0, "end": 1.0},
                                 {"scale": scale, "start": 0.2, "end": 0.8}]
        plan = plan_mod.validate(plan)
        summary, _ = render(plan, renderer=renderer)
        assert summary["rendered"] == 3
        outputs[name] = frames_of(tmp_path / name, range(10, 13))
    plain = video_plan(tmp_path / "plain", paths, strength=0.7)
    render(plain, renderer=renderer)
    without = frames_of(tmp_path / "plain", range(10, 13))
    for frame in range(10, 13):
        # Scale 0 is the same as no ControlNet; a real scale changes the frame.
        assert np.abs(outputs["off"][frame].astype(int) - without[frame].astype(int)).max() <= 1
        assert not np.array_equal(outputs["on"][frame], without[frame])


def test_feedback_cancel_stops_within_a_denoising_step(tmp_path):
    plan = feedback_plan(tmp_path, frames=3, steps=8, strength=1.0)
    cancel = threading.Event()
    steps_seen = []

    def emit(event):
        if event["event"] == "progress":
            steps_seen.append(event["step"])
            if event["frames"] == [2] and event["step"] == 2:
                cancel.set()

    summary = Renderer().render(plan, None, emit, cancel)
    assert summary["cancelled"] and summary["rendered"] == 1
    assert steps_seen[-1] == 2  # no further step of frame 2 ran
    assert FrameStore(str(tmp_path)).finished_frames() == [1]


def test_feedback_with_composable_prompts(tmp_path, renderer):
    plan = feedback_plan(tmp_path, frames=2)
    for record in plan["frames"]:
        record["prompts"][0]["text"] = "a red circle :1.5 | a blue square :0.5"
    summary, _ = render(plan, renderer=renderer)
    assert summary["rendered"] == 2


def test_turbo_settings_guidance_zero_one_step(tmp_path, renderer):
    # SD-Turbo style: no classifier-free guidance (no doubled batch), one step, composable parts still mixed.
    plan = feedback_plan(tmp_path, frames=3, steps=2, strength=0.5)
    for record in plan["frames"]:
        record["guidance"] = 0.0
        record["prompts"][0]["text"] = "a red circle | a blue square :0.5"
    summary, events = render(plan, renderer=renderer)
    assert summary["rendered"] == 3
    steps = [(e["frames"], e["steps"]) for e in events if e["event"] == "progress"]
    assert ([2], 1) in steps  # img2img at strength 0.5 of 2 steps runs one step


def test_every_plan_mode_has_one_registered_engine_mode():
    from engine import modes

    assert modes.names() == sorted(plan_mod.MODES)
    for name in plan_mod.MODES:
        mode = modes.get(name)
        assert mode.name == name and isinstance(mode, modes.Mode)
    assert [n for n in plan_mod.MODES if modes.get(n).linked] == ["FEEDBACK", "CLIP", "SHOT"]  # chains, clips, shots
    with pytest.raises(plan_mod.PlanError, match="no engine mode 'SLIDESHOW'"):
        modes.get("SLIDESHOW")


def test_a_registered_mode_is_what_the_renderer_runs(tmp_path, renderer, monkeypatch):
    """The renderer only talks to the registry: a mode registered under a name renders that name's plans."""
    from engine import modes

    class Solid(modes.Mode):  # every frame one grey, no pipeline needed beyond the loaded one
        name = "INTERPOLATE"

        def render(self, ctx):
            for r in ctx.todo:
                ctx.on_step([r["frame"]], 1, 1)
                yield r["frame"], np.full((SIZE, SIZE, 3), 7 * r["frame"], np.uint8)

    with pytest.raises(TypeError, match="two modes are called INTERPOLATE"):
        modes.register(Solid)
    monkeypatch.setitem(modes._MODES, "INTERPOLATE", Solid())  # in place of the real one, for this test
    plan = feedback_plan(tmp_path, frames=3)
    plan["settings"]["mode"] = "INTERPOLATE"
    summary, _ = render(plan, renderer=renderer)
    assert summary["rendered"] == 3
    assert all((frames_of(tmp_path, [f])[f] == 7 * f).all() for f in (1, 2, 3))
