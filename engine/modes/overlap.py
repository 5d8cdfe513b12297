"""Finishing a batch (VAE decoding, pasting masked frames back) on a thread while the next batch denoises, and
reading the next batch's init frames ahead: the `overlap_decode` setting.

Only where frames don't wait for each other: interpolate and video modes. A feedback frame starts from the decoded,
warped and colour-matched previous frame, so its chain can't run ahead (its file writing overlaps, see
renderer.BackgroundWriter). On CUDA the finishing thread runs on a stream of its own, so its kernels run beside the
next batch's UNet instead of queueing behind it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np
import torch

Finish = Callable[[], list]


def needs_upcast(pipe) -> bool:
    """SDXL's fp16 VAE decodes in fp32 (diffusers upcasts the shared VAE for it): not while another batch uses it."""
    vae = pipe.vae
    return vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))


def decode(pipe, latents: torch.Tensor) -> list[np.ndarray]:
    """A pipeline's output latents (output_type="latent") -> RGB uint8 frames, as the pipeline would decode them."""
    vae = pipe.vae
    config = vae.config
    latents = latents.to(vae.dtype)
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    with torch.no_grad():
        if mean is not None and std is not None:  # SDXL-family VAEs that normalise their latents
            mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents.device, latents.dtype)
            std = torch.tensor(std).view(1, -1, 1, 1).to(latents.device, latents.dtype)
            latents = latents * std / config.scaling_factor + mean
        else:
            latents = latents / config.scaling_factor
        images = vae.decode(latents, return_dict=False)[0]
    images = pipe.image_processor.postprocess(images, output_type="np")
    return [(np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8) for image in images]


def prefetch(items: list, read: Callable[[object], object]) -> Iterator[object]:
    """read(item) for each item in order, the next one read on a thread while the caller works on the current one."""
    if not items:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="kd-prefetch") as pool:
        ahead = pool.submit(read, items[0])
        for nxt in items[1:]:
            current, ahead = ahead.result(), pool.submit(read, nxt)
            yield current
        yield ahead.result()


def pipelined(batches: Iterator[tuple[list[int], Finish]]) -> Iterator[tuple[int, np.ndarray]]:
    """(frame, image) in order from (frames, finish) pairs: each batch's finish() runs on a thread while the
    generator denoises the next batch. A batch being finished when the next one fails (a cancel) is still given out,
    so no made frame is lost."""
    stream = torch.cuda.Stream() if torch.cuda.is_available() else None

    def run(finish: Finish, ready) -> list:
        if stream is None:
            return finish()
        with torch.cuda.stream(stream):
            stream.wait_event(ready)  # the denoising that made these latents, on the producer's stream
            return finish()

    with ThreadPoolExecutor(1, thread_name_prefix="kd-decode") as pool:
        pending: tuple[list[int], Future] | None = None
        source = iter(batches)
        while True:
            try:
                item = next(source)
            except StopIteration:
                break
            except BaseException:
                if pending is not None:
                    yield from zip(pending[0], pending[1].result())
                raise
            ready = None
            if stream is not None:
                ready = torch.cuda.Event()
                ready.record()
            future = pool.submit(run, item[1], ready)
            if pending is not None:
                yield from zip(pending[0], pending[1].result())
            pending = (item[0], future)
        if pending is not None:
            yield from zip(pending[0], pending[1].result())
