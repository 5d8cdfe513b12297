"""The generated frames in the compositor (run/compositor.py), on every bpy wheel the suite runs: 5.0 (this venv),
4.2 LTS and 4.5 LTS (scene.node_tree) and 5.2 LTS (scene.compositing_node_group). compositor_check.py does the work in
a fresh Python per Blender (one Python holds one bpy) and prints what it measured; see its docstring for the scene.

Differences are mean absolute differences per channel on a 0-255 scale over the pixels named; the frames go through
Blender's colour management (sRGB file -> linear -> Standard view -> 8-bit PNG), which costs under a level."""

import os

import pytest

from test_blender_versions import VENVS, run_check

SAME = 1.0  # at most this mean difference: the same picture (colour-management rounding only)
DIFFERENT = 20.0  # at least this: another picture (the frames differ by their seeds; render vs generated far more)


@pytest.fixture(scope="module", params=["5.0", *VENVS])
def checked(request, built_zip, tmp_path_factory):
    result = run_check(request.param, built_zip, str(tmp_path_factory.mktemp("compositor")), "compositor_check.py")
    assert result["blender"].startswith(request.param)
    return result


def test_group_is_made_once_and_updated_in_place(checked):
    assert checked["first"] == checked["second"] == ["FINISHED"]
    # One group node in the tree, one group in the file, after two runs and five rebuilds for other mixes.
    assert checked["ours"] == checked["ours_after_mixes"] == [["Keyframe Diffusion"], ["Keyframe Diffusion"]]
    assert checked["group_name"] == "Keyframe Diffusion"


def test_the_users_nodes_and_links_stay(checked):
    assert checked["user_nodes_kept"]
    # Only the default Render Layers -> output link went: the group now sits between them.
    gone = checked["links_gone"]
    assert len(gone) == 1 and gone[0][:2] == ["Render Layers", "Image"]
    added = checked["links_added"]
    assert len(added) == 2
    assert ["Keyframe Diffusion", gone[0][2], gone[0][3]] == [added[0][0], *added[0][2:]]
    assert added[1][:3] == ["Render Layers", "Image", "Keyframe Diffusion"]
    # A tree whose output the user fed through their own nodes keeps that link; the message says what to connect.
    assert checked["built"]["output_from"] == "Blur"
    assert "connect the group's Image output" in checked["built"]["said"]


def test_scene_frame_n_shows_generated_frame_n(checked):
    for n in ("2", "5"):
        assert checked["factor"][n] <= SAME
        assert checked["factor_wrong_frame"][n] >= DIFFERENT
    assert checked["factor_0"] == 0.0
    # The renders switch to the compositor: the Sequencer held only our strip.
    assert checked["sequencer_off"]


def _kept_on_cube(measured):
    """Render on the cube, generated on the world: (output - render, output - generated) per region."""
    (cube_render, count), (cube_generated, _) = measured["cube"]
    (world_render, world_count), (world_generated, _) = measured["world"]
    assert count > 500 and world_count > 1000  # the regions measured are real areas of the picture
    assert cube_render <= SAME and cube_generated >= DIFFERENT
    assert world_generated <= SAME and world_render >= DIFFERENT


def _kept_on_world(measured):
    (cube_render, _), (cube_generated, _) = measured["cube"]
    (world_render, _), (world_generated, _) = measured["world"]
    assert cube_generated <= SAME and cube_render >= DIFFERENT
    assert world_render <= SAME and world_generated >= DIFFERENT


def test_id_mask_keeps_the_render_on_the_object(checked):
    _kept_on_cube(checked["object_index"])  # Index 3: the cube's pass index
    # Index 1 matches nothing: the generated frame everywhere.
    (cube_render, _), (cube_generated, _) = checked["object_index_other"]["cube"]
    assert cube_generated <= SAME and cube_render >= DIFFERENT
    _kept_on_cube(checked["material_index"])  # Index 2: the cube's material's pass index


def test_depth_keeps_the_near_render(checked):
    _kept_on_cube(checked["depth"])  # the cube nearer than Near, the world beyond Far
    _kept_on_world(checked["depth_inverted"])


def test_painted_image_and_mask(checked):
    for kind in ("painted", "mask"):
        (left, left_count), (right, right_count) = checked[kind]["left"], checked[kind]["right"]
        assert left_count > 1000 and right_count > 1000
        assert left <= SAME and right <= SAME  # white (left): generated; black (right): the render


def test_animated_factor(checked):
    assert checked["keyed"]["2_vs_render"] <= SAME  # keyed 0 at frame 2
    assert checked["keyed"]["5_vs_generated"] <= SAME  # keyed 1 at frame 5


def test_follows_the_strip(checked):
    # The strip moved 2 frames later: scene frame 5 shows generated frame 3, and frame 2 (before it) the render.
    assert checked["moved"] <= SAME
    assert checked["moved_before_start"] <= SAME
    # ... and the image node followed at the depsgraph update the move made, before any render: it starts at frame 3
    # (the strip's new first frame) with file 1 there, for the strip's 6 frames.
    assert checked["followed"] == [3, 0, 6]


def test_frames_not_generated_yet_show_the_render(checked):
    assert checked["before_frames"] <= SAME


def test_upscaled_frames_as_input(checked):
    assert os.path.basename(os.path.dirname(checked["upscaled"]["file"])) == "upscaled"
    # The 2x frames scaled back to the render's 64x64 by the group: the same picture, softened by the scaling.
    assert checked["upscaled"]["vs_generated"] < checked["upscaled"]["vs_wrong_frame"] / 2


def test_generate_before_render_covers_the_compositor(checked):
    # `-a` on a scene never generated, Object Index mix: the frames are made first, and each rendered frame is its
    # generated frame around the cube and the render on it (not the Sequencer's strip: renders use the compositor).
    assert all(d <= SAME for d in checked["animation"])
    assert all(d >= DIFFERENT for d in checked["animation_wrong_frame"])
    assert all(d <= SAME for d in checked["animation_cube"])


def test_errors_say_what_to_do(checked):
    assert "has no object index pass" in checked["errors"]["OBJECT_INDEX"]
    assert "EEVEE" in checked["errors"]["OBJECT_INDEX"] and "Cycles" in checked["errors"]["OBJECT_INDEX"]
    assert "needs a mask" in checked["errors"]["MASK"]
