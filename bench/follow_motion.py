"""Follow Motion's cost and flicker against plain scene mode, on the coherence demo's baked plan (a ball rolling
under a moving camera, embedded:shapes, 64x64). Variants run alternately (plain, guided, + Move Noise, + Latent
Fusion, + Anchor Attention, true-flow cadence 2 and 4; repeated), each into a fresh folder, the model loaded and
warmed up first; prints one JSON line with each one's median and best seconds per frame, its ratio to plain and to
guided every-frame, how many frames it diffused, its warping error along Blender's Vector pass (as `python -m engine
flicker` reports it) and the share of its frames in which the shapes scorer reads the prompt (as the demo counts it).

    .venv/bin/python bench/follow_motion.py [--plan out/coherence/guided/plan.json] [--repeat 3] [--only a,b]

`--only plain,guided,"cadence 2","cadence 4"` times the cadence against every-frame diffusion alone.

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

VARIANTS = {
    "plain": {"flow_guide": False},
    "guided": {"flow_guide": True, "warp_noise": False, "fusion": 0.0},
    "guided + Move Noise": {"flow_guide": True, "warp_noise": True, "fusion": 0.0},
    "guided + Move Noise + Latent Fusion 0.5": {"flow_guide": True, "warp_noise": True, "fusion": 0.5},
    "guided + Anchor Attention": {"flow_guide": True, "warp_noise": False, "fusion": 0.0, "anchor_attention": True},
    "cadence 2": {"flow_guide": True, "warp_noise": False, "fusion": 0.0, "cadence": 2},
    "cadence 4": {"flow_guide": True, "warp_noise": False, "fusion": 0.0, "cadence": 4},
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plan", default=os.path.join(ROOT, "out", "coherence", "guided", "plan.json"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="comma-separated variants to run (default: all)")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or "plain" not in names:
        parser.error(f"--only takes plain and any of: {', '.join(VARIANTS)} "
                     f"(not {', '.join(unknown) or 'without plain'})")
    if not os.path.isfile(args.plan):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "demo_coherence.py")], check=True)
    with open(args.plan) as f:
        base = json.load(f)
    frames = base["frames"]
    vectors = [read_vector_pass(r["flow"]) for r in frames]
    flows = [(vectors[i][0], vectors[i - 1][1]) for i in range(1, len(frames))]
    renderer = Renderer()
    scratch = tempfile.mkdtemp(prefix="kd-bench-follow-")

    diffused: dict[str, int] = {}
    follows: dict[str, float] = {}

    def run(name: str, n: int) -> tuple[float, float]:
        plan = copy.deepcopy(base)
        out = os.path.join(scratch, f"{n}-{name.replace(' ', '_')}")
        # Whatever the demo baked its guided render with, each variant sets all of Follow Motion's options.
        plan["settings"].update(output_dir=out, cadence=1, warp_noise=False, fusion=0.0, anchor_attention=False,
                                **VARIANTS[name])
        started = time.perf_counter()
        events: list[dict] = []
        renderer.render(plan_mod.validate(plan), None, events.append)
        diffused[name] = len({f for e in events if e["event"] == "progress" for f in e["frames"]})
        seconds = (time.perf_counter() - started) / len(frames)
        images = read_frames([os.path.join(out, f"frame_{r['frame']:06d}.png") for r in frames])
        reads = [scorer.score(Image.fromarray(image)) for image in images]
        follows[name] = sum((s.color, s.shape, s.background) == WANTED for s in reads) / len(reads)
        return seconds, flicker(images, flows=flows)["warping_error"]

    for name in names:  # warm-up: model load, first-call costs
        run(name, -1)
    times: dict[str, list[float]] = {name: [] for name in names}
    errors: dict[str, float] = {}
    for n in range(args.repeat):
        for name in names:
            seconds, errors[name] = run(name, n)
            times[name].append(seconds)
    shutil.rmtree(scratch, ignore_errors=True)
    plain = statistics.median(times["plain"])
    guided = statistics.median(times["guided"]) if "guided" in times else None
    print(json.dumps({
        "frames": len(frames), "steps": frames[0]["steps"], "strength": frames[0]["strength"],
        "size": [base["settings"]["width"], base["settings"]["height"]], "repeat": args.repeat,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "input_warping_error": flicker(read_frames([r["init"]["path"] for r in frames]), flows=flows)["warping_error"],
        "variants": {name: {"s_per_frame": round(statistics.median(t), 4), "best": round(min(t), 4),
                            "runs": [round(x, 4) for x in t],
                            "vs_plain": round(statistics.median(t) / plain, 3),
                            "vs_guided": round(statistics.median(t) / guided, 3) if guided else None,
                            "diffused": diffused[name], "warping_error": round(errors[name], 5),
                            "follows_prompt": round(follows[name], 3)}
                     for name, t in times.items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
