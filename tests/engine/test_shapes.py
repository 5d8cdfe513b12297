"""The shapes world: procedural pictures, captions, the held-out split and the pixel-statistics scorer."""

from __future__ import annotations

import itertools
import json
import os

import cv2
import numpy as np
import pytest
from common import DATA, ROOT

from engine.shapes import dataset, scorer


def test_scorer_reads_every_drawn_picture():
    wrong = []
    for (color, shape, background), size, position in itertools.product(
            dataset.all_triples(), dataset.SIZES, dataset.POSITIONS):
        picture = dataset.Picture(color, shape, background, size, position)
        s = scorer.score(dataset.draw(picture))
        if (s.color, s.shape, s.background, s.size, s.position) != (color, shape, background, size, position):
            wrong.append((picture, s))
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("shape", dataset.SHAPES)
def test_scorer_survives_blur_resolution_and_colour_drift(shape):
    picture = dataset.Picture("purple", shape, "yellow", "large", "bottom right", dx=1.5, dy=-1.0)
    rng = np.random.default_rng(0)
    big = dataset.draw(picture, 128)
    blurred = cv2.GaussianBlur(dataset.draw(picture), (5, 5), 1.5)
    drifted = np.clip(dataset.draw(picture).astype(np.float32) + rng.normal(0, 12, (64, 64, 3)) + 15, 0, 255)
    for image in (big, blurred, drifted.astype(np.uint8), drifted / 255.0):
        s = scorer.score(image)
        assert (s.color, s.shape, s.background, s.position) == ("purple", shape, "yellow", "bottom right")
    # The centroid follows the drawing (46 plus the offset); a triangle's sits a quarter circumradius below its box
    # centre (apex up).
    cx, cy = scorer.score(big).center
    below = 0.25 * 1.15 * dataset.SIZES["large"] if shape == "triangle" else 0.0
    assert abs(cx - 47.5) < 0.75 and abs(cy - (45.0 + below)) < 0.75


def test_scorer_reads_rounded_corners_and_heavy_blur():
    # What a blurry decoder does to small shapes: corners rounded off. Sharp outlines alone read a fifth of these wrong
    # (mostly triangles as circles).
    wrong = []
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    for shape, size, position in itertools.product(dataset.SHAPES, dataset.SIZES, dataset.POSITIONS):
        picture = dataset.Picture("orange", shape, "blue", size, position)
        drawn = dataset.draw(picture)
        blurred = cv2.GaussianBlur(drawn, (0, 0), 2.5)
        inside = cv2.morphologyEx((drawn == dataset.COLORS["orange"]).all(-1).astype(np.uint8), cv2.MORPH_OPEN, disc)
        rounded = np.where(inside[..., None] > 0, dataset.COLORS["orange"], dataset.COLORS["blue"]).astype(np.uint8)
        for image in (blurred, rounded):
            if scorer.score(image).shape != shape:
                wrong.append((shape, size, position))
    assert not wrong, wrong


def test_scorer_reads_generated_pictures_as_a_person_does():
    # 200 pictures the embedded model drew, each labelled by a person who did not see the caption
    # (tests/data/shapes_by_eye.json says how they were made).
    folder = DATA
    with open(os.path.join(folder, "shapes_by_eye.json")) as f:
        pictures = json.load(f)["pictures"]
    grid = cv2.cvtColor(cv2.imread(os.path.join(folder, "shapes_by_eye.png")), cv2.COLOR_BGR2RGB)
    read = [scorer.score(grid[64 * (i // 20):64 * (i // 20 + 1), 64 * (i % 20):64 * (i % 20 + 1)]).shape
            for i in range(len(pictures))]
    labelled = [(p["by_eye"], shape) for p, shape in zip(pictures, read) if p["by_eye"]]
    assert len(labelled) >= 190
    agree = sum(eye == shape for eye, shape in labelled) / len(labelled)
    assert agree >= 0.95, agree
    # Not lenient: where the person saw a circle, the scorer never finds corners.
    assert not [(eye, shape) for eye, shape in labelled if eye == "circle" and shape != "circle"]


def test_scorer_tells_shapes_apart_by_outline_not_by_area():
    # Same colour and about the same area: only the outline differs.
    circle = scorer.score(dataset.draw(dataset.Picture("red", "circle", "white", "large")))
    square = scorer.score(dataset.draw(dataset.Picture("red", "square", "white", "large")))
    assert abs(circle.area - square.area) / circle.area < 0.2
    assert (circle.shape, square.shape) == ("circle", "square")
    assert circle.fit > 0.9 and square.fit > 0.9


def test_scorer_without_a_shape():
    plain = np.zeros((64, 64, 3), np.uint8)
    plain[:] = dataset.COLORS["green"]
    plain[3, 3] = dataset.COLORS["red"]  # a speck is not a shape
    s = scorer.score(plain)
    assert s.background == "green" and s.color is None and s.shape is None and s.fit == 0.0


def test_scorer_rejects_non_images():
    with pytest.raises(ValueError, match="RGB image"):
        scorer.score(np.zeros((64, 64)))


def test_captions_and_parts():
    picture = dataset.Picture("red", "circle", "blue", "small", "top left")
    assert dataset.caption(picture) == "a small red circle on a blue background, top left"
    assert dataset.caption(picture, size=False, background=False, position=False) == "a red circle"
    rng = np.random.default_rng(3)
    variants = {dataset.random_caption(picture, rng) for _ in range(200)}
    assert "a red circle" in variants and dataset.caption(picture) in variants
    assert all(v.startswith("a ") and "red" in v and "circle" in v for v in variants)


def test_held_out_split_is_fixed_disjoint_and_composable():
    train, held = dataset.split_triples()
    assert dataset.split_triples() == (train, held)
    assert not set(train) & set(held) and sorted(train + held) == sorted(dataset.all_triples())
    assert 0.05 < len(held) / len(dataset.all_triples()) < 0.2
    # Every word of a held-out combination is seen in training, in that role.
    for color, shape, background in held:
        assert any(t[0] == color and t[1] == shape for t in train) or (
            any(t[0] == color for t in train) and any(t[1] == shape for t in train))
        assert any(t[2] == background for t in train)
    rng = np.random.default_rng(0)
    drawn = {(p.color, p.shape, p.background) for p in (dataset.random_picture(rng, train) for _ in range(500))}
    assert drawn <= set(train)


def test_draw_rejects_unknown_shape():
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        dataset.draw(dataset.Picture("red", "hexagon", "blue"))


def _train(folder, seed: int) -> dict:
    import subprocess
    import sys

    from safetensors.numpy import load_file

    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train_shapes_model.py"), "--output",
                           str(folder), "--seed", str(seed), "--vae-steps", "2", "--unet-steps", "2", "--pictures",
                           "32", "--eval-prompts", "2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {name: load_file(os.path.join(folder, name, "diffusion_pytorch_model.safetensors"))
            for name in ("unet", "vae")}


def test_training_script_is_deterministic_for_a_seed(tmp_path):
    # A few steps of each stage: enough to show that data, initialisation and updates all follow the seed.
    a, b, c = _train(tmp_path / "a", 0), _train(tmp_path / "b", 0), _train(tmp_path / "c", 1)
    for name in a:
        assert a[name].keys() == b[name].keys()
        assert all(np.array_equal(a[name][k], b[name][k]) for k in a[name]), name
        assert not all(np.array_equal(a[name][k], c[name][k]) for k in a[name]), name
    # The folder is a pipeline diffusers loads, with the tokenizer that keeps caption words whole.
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "a"))
    ids = pipe.tokenizer("a small red circle on a blue background, top left").input_ids
    assert len(ids) == 2 + 11


def test_score_command_prints_one_reading_per_image_and_names_unreadable_files(tmp_path, capsys):
    import json

    from PIL import Image

    from engine.__main__ import main

    path = str(tmp_path / "shape.png")
    Image.fromarray(dataset.draw(dataset.Picture("orange", "triangle", "black", "small", "top right"))).save(path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert main(["score", path, str(broken)]) == 1
    out, err = capsys.readouterr()
    reading = json.loads(out.strip())
    assert (reading["color"], reading["shape"], reading["background"], reading["position"], reading["size"]) == (
        "orange", "triangle", "black", "top right", "small")
    assert f"cannot read image '{broken}'" in err
