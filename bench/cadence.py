"""True-flow cadence against every-frame Follow Motion: on the coherence demo's baked plan (a ball rolling under a
moving camera, embedded:shapes, 64x64, Blender's Vector pass), plain scene mode, Follow Motion diffusing every frame,
and Follow Motion with cadence 2 and 4 run alternately (plain, guided, cadence 2, cadence 4; repeated), each into a
fresh folder, the model loaded and every variant run once first. Prints one JSON line: each variant's median seconds
per frame, its ratio to guided every-frame, how many frames it diffused, its flicker (engine/flicker.py's temporal
warping error along the Vector pass, as `python -m engine flicker` reports it) and the share of its frames in which
the shapes scorer reads the prompt (as the demo counts it).

    .venv/bin/python bench/cadence.py [--plan out/coherence/guided/plan.json] [--repeat 3]

Needs the plan `make demo-coherence` leaves (it is run when the plan is missing).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from engine import plan as plan_mod  # noqa: E402
from engine.flicker import flicker, read_frames  # noqa: E402
from engine.flow import read_vector_pass  # noqa: E402
from engine.renderer import Renderer  # noqa: E402
from engine.shapes import scorer  # noqa: E402
from PIL import Image  # noqa: E402

WANTED = ("red", "circle", "blue")  # scripts/demo_coherence.py: what the scorer must read in a frame
GUIDED = {"flow_guide": True, "warp_noise": False, "fusion": 0.0, "anchor_attention": False}
VARIANTS = {
    "plain": {"flow_guide": False, "cadence": 1},
    "guided": {**GUIDED, "cadence": 1},
    "cadence 2": {**GUIDED, "cadence": 2},
    "cadence 4": {**GUIDED, "cadence": 4},
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plan", default=os.path.join(ROOT, "out", "coherence", "guided", "plan.json"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not os.path.isfile(args.plan):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "demo_coherence.py")], check=True)
    with open(args.plan) as f:
        base = json.load(f)
    frames = base["frames"]
    vectors = [read_vector_pass(r["flow"]) for r in frames]
    flows = [(vectors[i][0], vectors[i - 1][1]) for i in range(1, len(frames))]
    renderer = Renderer()
    scratch = tempfile.mkdtemp(prefix="kd-bench-cadence-")
    diffused: dict[str, int] = {}
    errors: dict[str, float] = {}
    follows: dict[str, float] = {}

    def run(name: str, n: int) -> float:
        plan = copy.deepcopy(base)
        out = os.path.join(scratch, f"{n}-{name.replace(' ', '_')}")
        plan["settings"].update(output_dir=out, **VARIANTS[name])
        events: list[dict] = []
        started = time.perf_counter()
        renderer.render(plan_mod.validate(plan), None, events.append)
        seconds = (time.perf_counter() - started) / len(frames)
        diffused[name] = len({f for e in events if e["event"] == "progress" for f in e["frames"]})
        images = read_frames([os.path.join(out, f"frame_{r['frame']:06d}.png") for r in frames])
        errors[name] = flicker(images, flows=flows)["warping_error"]  # the same every repeat (deterministic)
        reads = [scorer.score(Image.fromarray(image)) for image in images]
        follows[name] = sum((s.color, s.shape, s.background) == WANTED for s in reads) / len(reads)
        return seconds

    for name in VARIANTS:  # warm-up: model load, first-call costs
        run(name, -1)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for n in range(args.repeat):
        for name in VARIANTS:
            times[name].append(run(name, n))
    shutil.rmtree(scratch, ignore_errors=True)
    guided = statistics.median(times["guided"])
    print(json.dumps({
        "frames": len(frames), "steps": frames[0]["steps"], "strength": frames[0]["strength"],
        "size": [base["settings"]["width"], base["settings"]["height"]], "repeat": args.repeat,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "input_warping_error": round(flicker(read_frames([r["init"]["path"] for r in frames]),
                                             flows=flows)["warping_error"], 5),
        "variants": {name: {"s_per_frame": round(statistics.median(t), 4), "runs": [round(x, 4) for x in t],
                            "vs_guided": round(statistics.median(t) / guided, 3), "diffused": diffused[name],
                            "warping_error": round(errors[name], 5), "follows_prompt": round(follows[name], 3)}
                     for name, t in times.items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
