"""Blender's Vector pass as the engine's flow (bake/passes.py writes it, engine/flow.py reads it), on every bpy wheel the
suite runs: vector_pass_check.py renders a cube moving 4 pixels right and 2 up per frame (see its docstring) and this
test reads the files in the engine's convention (backward flow: where each pixel was in the frame before)."""

import numpy as np
import pytest
from test_blender_versions import VENVS, run_check

from engine.flow import read_vector_pass, visible_mask
from engine.image_ops import read_depth

# The cube's pixels (rows from the top, columns), from the camera: 8 pixels a unit, centred; frame 2 at x -0.5,
# z 0.25; frame 3 at x 0, z 0.5.
CUBE = {2: (slice(22, 38), slice(20, 36)), 3: (slice(20, 36), slice(24, 40))}


@pytest.fixture(scope="module", params=["5.0", *VENVS])
def rendered(request, built_zip, tmp_path_factory):
    result = run_check(request.param, built_zip, str(tmp_path_factory.mktemp("vector")), "vector_pass_check.py",
                       engine=False)
    assert result["blender"].startswith(request.param)
    return result


def test_vector_pass_is_readable_flow_with_the_right_sign(rendered):
    assert rendered["motion_blur_after"]  # the user's motion blur is back after the pass render
    for frame in (2, 3):
        backward, forward = read_vector_pass(rendered["paths"][str(frame)]["vector"])
        assert backward.shape == forward.shape == (64, 64, 2)
        rows, cols = CUBE[frame]
        inner = (slice(rows.start + 2, rows.stop - 2), slice(cols.start + 2, cols.stop - 2))
        # Moving 4 right and 2 up: it was 4 to the left and 2 rows lower, and will be 4 to the right and 2 rows higher.
        np.testing.assert_allclose(backward[inner].reshape(-1, 2).mean(0), [-4.0, 2.0], atol=0.05)
        np.testing.assert_allclose(forward[inner].reshape(-1, 2).mean(0), [4.0, -2.0], atol=0.05)
        assert np.abs(backward[:16]).max() == 0 and np.abs(forward[:16]).max() == 0  # the empty background
        depth = read_depth(rendered["paths"][str(frame)]["depth"])
        assert depth[inner].mean() == pytest.approx(9.0, abs=0.01)  # the cube's front face, 9 units from the camera


def test_revealed_background_is_masked_with_blenders_vectors(rendered):
    backward3, _ = read_vector_pass(rendered["paths"]["3"]["vector"])
    _, forward2 = read_vector_pass(rendered["paths"]["2"]["vector"])
    visible = visible_mask(backward3, forward2)
    # Left of the cube at frame 3, where it stood at frame 2: background the cube hid, not visible in frame 2.
    assert not visible[24:34, 20:23].any()
    assert visible[24:34, 27:38].all()  # the cube, seen in both
    assert visible[:16].all() and visible[:, 48:].all()  # background seen in both
