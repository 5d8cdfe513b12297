"""Any diffusers scheduler that fits the model, by class name, beside the friendly names; the rest refused with the
list of what fits."""

from __future__ import annotations

import types

import numpy as np
import pytest
from common import make_plan
from PIL import Image

from engine import plan as plan_mod
from engine.errors import ModelError
from engine.frames import FrameStore
from engine.models.schedulers import SCHEDULERS, compatible_classes, set_scheduler
from engine.renderer import Renderer


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def render(renderer: Renderer, out, scheduler: str) -> tuple[np.ndarray, object]:
    """The rendered frame and the pipeline's scheduler it rendered with."""
    plan = plan_mod.validate(make_plan(str(out), frames=1, steps=3, scheduler=scheduler))
    assert renderer.render(plan, None, lambda e: None)["rendered"] == 1
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)  # the pipeline it kept (no rebuild)
    return np.asarray(Image.open(FrameStore(str(out)).path(1))), pipe


def test_a_diffusers_class_name_renders_like_a_friendly_name(renderer, tmp_path):
    deis, pipe = render(renderer, tmp_path / "deis", "DEISMultistepScheduler")
    assert type(pipe.scheduler).__name__ == "DEISMultistepScheduler"
    # Built from the model's own config, as the friendly names are.
    assert pipe.scheduler.config.beta_schedule == pipe._kd_default_scheduler.config.beta_schedule == "scaled_linear"
    euler_a, pipe = render(renderer, tmp_path / "euler_a", "euler_a")
    assert type(pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert deis.shape == euler_a.shape and not np.array_equal(deis, euler_a)
    # A class name that is also a friendly name's class is that class without the name's presets.
    set_scheduler(pipe, "EulerDiscreteScheduler")
    assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler" and not pipe.scheduler.config.use_karras_sigmas


def test_a_class_that_does_not_fit_the_model_is_refused_with_what_fits(renderer, tmp_path):
    plan = plan_mod.validate(make_plan(str(tmp_path / "flow"), frames=1, scheduler="FlowMatchEulerDiscreteScheduler"))
    with pytest.raises(ModelError) as refused:
        renderer.render(plan, None, lambda e: None)
    message = str(refused.value)
    assert "scheduler 'FlowMatchEulerDiscreteScheduler' doesn't fit this model" in message
    assert "names: default, ddim, euler," in message and "tcd" in message  # the friendly names
    assert "DEISMultistepScheduler" in message and "KDPM2DiscreteScheduler" in message  # and the classes
    assert "FlowMatchEulerDiscreteScheduler," not in message.split("choose one that does")[1]
    assert FrameStore(str(tmp_path / "flow")).finished_frames() == []


def test_unknown_names_are_refused_and_never_looked_up_loosely():
    pipe = types.SimpleNamespace(scheduler=_scheduler("DDIMScheduler"))
    for name in ("k_dpm", "NopeScheduler", "SchedulerMixin", "__class__", "deismultistepscheduler", ""):
        with pytest.raises(ModelError, match=f"unknown scheduler '{name}': choose one that fits this model "
                                             r"\(DDIMScheduler\): names: default, ddim"):
            set_scheduler(pipe, name)
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"


def test_what_fits_follows_the_model_own_scheduler():
    # diffusers lists the discrete-time family as compatible with DDIM; LCM and TCD drive the same UNets.
    assert {"DEISMultistepScheduler", "LCMScheduler", "TCDScheduler", "UniPCMultistepScheduler"} <= set(
        compatible_classes(_scheduler("DDIMScheduler")))
    assert set(SCHEDULERS.values()) - {None} <= set(compatible_classes(_scheduler("DDIMScheduler")))
    # An LCM-distilled model (saved with LCMScheduler, which lists only itself) still takes the family.
    lcm = types.SimpleNamespace(scheduler=_scheduler("LCMScheduler"))
    set_scheduler(lcm, "DEISMultistepScheduler")
    assert type(lcm.scheduler).__name__ == "DEISMultistepScheduler"
    # A flow-matching model takes only what diffusers lists for it: no friendly name but "default" fits.
    flow = types.SimpleNamespace(scheduler=_scheduler("FlowMatchEulerDiscreteScheduler"))
    with pytest.raises(ModelError, match=r"scheduler 'euler' \(EulerDiscreteScheduler\) doesn't fit this model, "
                                         r"whose own scheduler is FlowMatchEulerDiscreteScheduler .*names: default; "
                                         r"diffusers classes: .*FlowMatchEulerDiscreteScheduler"):
        set_scheduler(flow, "euler")
    set_scheduler(flow, "default")
    assert type(flow.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"


def _scheduler(name: str):
    import diffusers

    return getattr(diffusers, name)()
