"""The embedded trained model ('embedded:shapes') means what its prompts say: graded by the pixel scorer on held-out
captions, through interpolation, img2img and a panning feedback chain, in the engine (as Blender's default:
tests/blender/test_blender_shapes_model.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from common import make_plan
from engine import plan as plan_mod
from engine.errors import ModelError
from engine.frames import FrameStore
from engine.models import embedded
from engine.models.load import load_pipeline
from engine.models.locate import resolve
from engine.models.options import LoadOptions
from engine.renderer import Renderer
from engine.shapes import GUIDANCE, STEPS, dataset, scorer
from engine.shapes.evaluate import evaluate, held_out_prompts

SIZE = dataset.SIZE


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


def render(renderer, plan) -> dict:
    summary = renderer.render(plan_mod.validate(plan), None, lambda event: None, threading.Event())
    assert not summary["cancelled"]
    store = FrameStore(plan["settings"]["output_dir"])
    return {r["frame"]: store.read(r["frame"]) for r in plan["frames"]}


def test_held_out_captions_agree_with_the_scorer_at_the_demo_settings():
    pipe = load_pipeline(plan_mod.EMBEDDED_MODEL, LoadOptions(False, False, "cpu", None))
    pipe.set_progress_bar_config(disable=True)
    # Other captions and noise seeds than the training script's own evaluation.
    report = evaluate(pipe, held_out_prompts(96, seed=7), steps=STEPS, guidance=GUIDANCE, seed=1000)
    # Issue 9 asks for 90% colour and shape: this set reads 96% colour, 94% both, 100% background (README "The
    # embedded model"). Positions are not followed (chance level), so they are not asserted.
    assert report["color"] >= 0.9 and report["background"] >= 0.9, report
    assert report["color_and_shape"] >= 0.9, report


def test_interpolation_moves_from_the_first_prompt_to_the_second(tmp_path, renderer):
    frames = 9
    plan = make_plan(str(tmp_path), frames=frames, steps=STEPS, model=plan_mod.EMBEDDED_MODEL, batch_size=3)
    for record in plan["frames"]:
        record["guidance"] = GUIDANCE
    scores = [scorer.score(image) for _, image in sorted(render(renderer, plan).items())]
    read = [(s.color, s.shape) for s in scores]
    assert read[0] == ("red", "circle") and read[-1] == ("blue", "square"), read
    # Once the second prompt's colour shows, it stays: the crossfade goes one way.
    first_blue = next(i for i, (color, _) in enumerate(read) if color == "blue")
    assert all(color != "red" for color, _ in read[first_blue:]), read
    assert all(color in ("red", "blue", "purple") for color, _ in read), read
    assert 0 < first_blue < frames - 1


def _init(tmp_path, picture: dataset.Picture) -> str:
    path = str(tmp_path / f"init-{picture.position.replace(' ', '-')}.png")
    Image.fromarray(dataset.draw(picture)).save(path)
    return path


def _plan(out, mode: str, records: list[dict], **settings) -> dict:
    return {"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
            "settings": {"mode": mode, "model": plan_mod.EMBEDDED_MODEL, "width": SIZE, "height": SIZE,
                         "output_dir": str(out), **settings},
            "frames": records}


def _record(frame: int, prompt: str, strength: float, **extra) -> dict:
    return {"frame": frame, "seed": 100 + frame, "steps": STEPS, "guidance": GUIDANCE, "strength": strength,
            "prompts": [{"text": prompt, "negative": "", "weight": 1.0}], "camera": None, **extra}


def test_img2img_at_low_strength_keeps_the_shape_where_the_init_has_it(tmp_path, renderer):
    positions = ["top left", "top right", "bottom left", "bottom right"]
    inits = [_init(tmp_path, dataset.Picture("green", "triangle", "white", "large", p)) for p in positions]
    prompt = "a red square on a black background, center"
    for strength, out in ((0.35, "low"), (1.0, "full")):
        records = [_record(i + 1, prompt, strength, init={"path": path}) for i, path in enumerate(inits)]
        got = render(renderer, _plan(tmp_path / out, "VIDEO", records))
        scores = [scorer.score(got[i + 1]) for i in range(len(positions))]
        if strength < 1:
            # Low strength: the init's shape stays where it was.
            assert [s.position for s in scores] == positions, scores
        else:
            # Full strength ignores the init: the prompt decides (so the test above can fail).
            assert all((s.color, s.background) == ("red", "black") for s in scores), scores


def _pan_frames(tmp_path, renderer, out: str, **settings) -> list[tuple[float, float]]:
    start = _init(tmp_path, dataset.Picture("yellow", "circle", "blue", "large", "center"))
    prompt = "a large yellow circle on a blue background"
    motion = settings.pop("motion", {})
    records = [_record(i + 1, prompt, 0.3, motion=dict(motion), image={"noise": 0.0, "contrast": 1.0})
               for i in range(6)]
    for i, record in enumerate(records):
        record["camera"] = settings.get("cameras", [None] * 6)[i]
    settings.pop("cameras", None)
    got = render(renderer, _plan(tmp_path / out, "FEEDBACK", records, init_image=start, **settings))
    scores = [scorer.score(got[f]) for f in range(1, 7)]
    assert all((s.color, s.shape) == ("yellow", "circle") for s in scores), scores
    return [s.center for s in scores]


def _assert_moves(centers, per_frame: float) -> None:
    """Every frame moves the shape the pan's way; in all, 60-130% of the warp's distance (each img2img pass redraws
    the shape and may nudge it); vertically it stays put."""
    steps = np.diff([x for x, _ in centers])
    assert np.all(steps * np.sign(per_frame) > 0.75), centers
    assert 0.6 < steps.sum() / (per_frame * len(steps)) < 1.3, centers
    assert abs(centers[-1][1] - centers[0][1]) < 2.0, centers


def test_feedback_2d_pan_moves_the_content_right(tmp_path, renderer):
    _assert_moves(_pan_frames(tmp_path, renderer, "2d", motion={"translation_x": 3.0}), 3.0)


def _camera(x: float) -> dict:
    matrix = np.eye(4)
    matrix[0, 3] = x  # Blender camera looking down -Z; +X is to its right
    return {"name": "Camera", "matrix_world": matrix.tolist(), "type": "PERSP", "lens": 36.0, "sensor_width": 36.0,
            "sensor_height": 36.0, "sensor_fit": "AUTO", "shift_x": 0.0, "shift_y": 0.0, "clip_start": 0.1,
            "clip_end": 100.0}


def test_feedback_3d_scene_camera_panning_right_moves_the_content_left(tmp_path, renderer):
    # Lens = sensor width: focal length 64 px; a plane at distance 10 moves 64 * 0.5 / 10 = 3.2 px per 0.5 units.
    cameras = [_camera(0.5 * i) for i in range(6)]
    centers = _pan_frames(tmp_path, renderer, "3d", motion_mode="3D", camera_source="SCENE", depth_source="PLANE",
                          plane_distance=10.0, cameras=cameras)
    _assert_moves(centers, -3.2)


def test_missing_shipped_model_names_it_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "SHAPES_MODEL_DIR", str(tmp_path / "gone"))
    with pytest.raises(ModelError, match=r"embedded model 'embedded:shapes' is missing .*train_shapes_model"):
        resolve(plan_mod.EMBEDDED_MODEL, allow_download=False)
    # The render reports it before touching a frame.
    plan = make_plan(str(tmp_path / "out"), model=plan_mod.EMBEDDED_MODEL)
    with pytest.raises(ModelError, match="embedded:shapes"):
        Renderer().render(plan_mod.validate(plan), None, lambda event: None, threading.Event())
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("frame_*.png"))
