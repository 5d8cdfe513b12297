"""Distributing a Blender Generate over Ray: a local cluster started by the test (2 CPUs, one worker per CPU), the
real Ray workers, the real engine (the engine side: tests/engine/test_distributed.py)."""

from __future__ import annotations

import json
import os
import sys

import pytest
from common import PACKAGE, ray_cluster, wait_for_free_cpus

from engine.models.embedded import tiny_model_dir

ray = pytest.importorskip("ray", reason="Ray is part of requirements/dev.txt")


@pytest.fixture(scope="module")
def idle_cluster():
    """A local Ray cluster of 2 CPUs for this module with every CPU free, so the worker process's Ray workers get
    them. The embedded tiny model is built into the session's cache first, as the engine tests' renders did when this
    test lived beside them: the two Ray workers would otherwise both build it at once."""
    tiny_model_dir()  # 'embedded:tiny'
    with ray_cluster(2) as address:
        wait_for_free_cpus(2)
        yield address


def test_blender_generate_distributes_over_ray(idle_cluster, scene, capsys):
    """Distribute with Ray from Blender: the scene setting (Generate job), the operator's override and the CLI's
    --ray all render over the cluster into the strip."""
    import bpy

    extension = sys.modules[PACKAGE]
    settings = scene.keyframe_diffusion
    settings.prompts.add().text = "a red circle"
    settings.use_ray = True
    settings.ray_address = idle_cluster
    settings.ray_workers = 2
    events = []
    job = extension.run.generate.GenerateJob(scene)
    job.run_blocking(on_event=events.append)
    assert not job.error and sorted(job.rendered) == list(range(1, 7))
    workers = next(e for e in events if e["event"] == "workers")
    assert workers["count"] == 2 and workers["address"] == idle_cluster
    assert len({e["worker"] for e in events if e["event"] == "frame"}) == 2
    strip = scene.sequence_editor.strips[settings.strip_name]
    assert [e.filename for e in strip.elements] == [f"frame_{f:06d}.png" for f in range(1, 7)]
    out = bpy.path.abspath(settings.output_dir)
    assert all(os.path.isfile(os.path.join(out, e.filename)) for e in strip.elements)

    # The operator's choice wins over the scene's; the CLI's --ray too.
    settings.use_ray = False
    settings.steps = 3  # every frame is out of date again
    assert bpy.ops.keyframe_diffusion.generate(use_ray=True, ray_address=idle_cluster) == {"FINISHED"}
    manifest = json.load(open(os.path.join(out, "manifest.json")))["frames"]
    assert all(manifest[str(f)]["params"]["steps"] == 3 for f in range(1, 7))
    settings.steps = 2
    capsys.readouterr()
    assert extension.run.cli.main(["generate", "--ray", idle_cluster]) == 0
    printed = capsys.readouterr().out
    assert f"Ray cluster {idle_cluster}: 2 workers" in printed and "6 frames to generate (1-6, the scene range)" in printed
