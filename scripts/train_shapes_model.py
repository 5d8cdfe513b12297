"""Train the embedded 'shapes' model: a tiny Stable Diffusion pipeline that draws flat shapes from captions.

    python scripts/train_shapes_model.py [--output engine/shapes/model] [--seed 0] [--vae-steps N] [--unet-steps N]

Everything comes from engine/shapes/dataset.py (procedural pictures and captions, generated here, nothing
downloaded) and every component is a diffusers/transformers class, saved as a StableDiffusionPipeline folder that
`from_pretrained` loads like any other model:

1. tokenizer: a CLIP BPE vocabulary trained (with the `tokenizers` library) on the caption words, so each word is one
   token; the 256 byte symbols stay in the vocabulary so any prompt still tokenizes.
2. autoencoder (AutoencoderTiny, the TAESD design, 64x64 -> 4x16x16) trained on pictures with a reconstruction loss;
   its scaling factor is measured so latents have unit variance.
3. text encoder (CLIPTextModel) and UNet (UNet2DConditionModel) trained together on the VAE latents of a fixed picture
   set with the usual epsilon loss (min-SNR weighted), random caption parts and 10% empty captions (classifier-free
   guidance), offset noise (flat backgrounds need their mean colour to follow the prompt), EMA weights.
4. evaluation: the held-out (colour, shape, background) combinations, generated at the demo's size and steps and
   graded by engine/shapes/scorer.py; the accuracy is printed and saved in the folder's training.json.

Deterministic for a seed (same torch build and thread count). Timings on this project's 2-core CI-class machine are
in README.md ("The embedded model").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.shapes import dataset  # noqa: E402
from engine.shapes.evaluate import evaluate, held_out_prompts  # noqa: E402

MAX_TOKENS = 24  # the longest caption is 13 tokens with its start and end markers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------------------------------
# Components


def caption_words() -> list[str]:
    words = {"a", "on", "background", ","}
    for name in (*dataset.COLORS, *dataset.SHAPES, *dataset.SIZES, *dataset.POSITIONS):
        words.update(name.split())
    return sorted(words)


def build_tokenizer(folder: str):
    """A CLIPTokenizer whose merges turn every caption word into a single token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    from engine.tiny_model import _byte_level_alphabet

    words = caption_words()
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=10_000, min_frequency=1, end_of_word_suffix="</w>", show_progress=False)
    bpe.train_from_iterator(words, trainer)
    merges = [" ".join(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]]
    alphabet = _byte_level_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet]
    for merge in merges:  # each merge's result is a token
        token = merge.replace(" ", "")
        if token not in tokens:
            tokens.append(token)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(tokens)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                              model_max_length=MAX_TOKENS)
    for word in words:
        ids = tokenizer(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise RuntimeError(f"tokenizer splits the caption word '{word}' into {ids}")
    return tokenizer


def build_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = tokenizer.get_vocab()
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_attention_heads=4,
                            num_hidden_layers=2, max_position_embeddings=MAX_TOKENS,
                            bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                            pad_token_id=vocab["<|endoftext|>"], projection_dim=64)
    return CLIPTextModel(config)


def build_vae():
    """A TAESD-style AutoencoderTiny, 64x64x3 <-> 4x16x16. Measured here: AutoencoderKL of the same size reached a
    reconstruction MSE of 0.12 after 300 steps (its group norms make flat colours hard to carry), this one 0.01."""
    from diffusers import AutoencoderTiny

    return AutoencoderTiny(in_channels=3, out_channels=3, latent_channels=4, encoder_block_out_channels=(32, 32, 32),
                           decoder_block_out_channels=(32, 32, 32), num_encoder_blocks=(1, 1, 1),
                           num_decoder_blocks=(1, 1, 1))


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=dataset.SIZE // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64, 64), norm_num_groups=16, cross_attention_dim=64, attention_head_dim=8,
        # Attention at 8x8 and 4x4 only: at 16x16 it more than doubles the step time on a CPU (0.49 -> 1.12 s for a
        # batch of 64 on 2 cores).
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    )


def build_scheduler():
    from diffusers import DDPMScheduler

    # Stable Diffusion's noise schedule and epsilon prediction, so every sampler the engine offers fits the model.
    # (Tried: zero terminal SNR with v-prediction, 6000 steps: colour+shape 54% vs 76% here; positions were ignored
    # either way.)
    return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                         clip_sample=False, steps_offset=1)


def inference_scheduler(train_scheduler):
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler.from_config(train_scheduler.config)


# --------------------------------------------------------------------------------------------------------------------
# Data


def pictures(count: int, seed: int, triples) -> list:
    rng = np.random.default_rng(seed)
    return [dataset.random_picture(rng, triples) for _ in range(count)]


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# --------------------------------------------------------------------------------------------------------------------
# Training


def train_vae(vae, steps: int, seed: int, triples, batch: int = 16, lr: float = 2e-3) -> list[float]:
    rng = np.random.default_rng(seed + 1)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.05)
    vae.train()
    losses = []
    for step in range(steps):
        x = to_tensor([dataset.draw(dataset.random_picture(rng, triples)) for _ in range(batch)])
        loss = torch.nn.functional.mse_loss(vae.decode(vae.encode(x).latents).sample, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 200 == 0 or step == steps - 1:
            log(f"vae step {step}/{steps} reconstruction mse {np.mean(losses[-200:]):.5f}")
    vae.eval()
    return losses


@torch.no_grad()
def encode_latents(vae, items: list, batch: int = 64) -> torch.Tensor:
    means = []  # the tiny autoencoder is deterministic: its latents are the means
    for i in range(0, len(items), batch):
        x = to_tensor([dataset.draw(p) for p in items[i:i + batch]])
        means.append(vae.encode(x).latents)
    return torch.cat(means)


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def train_unet(unet, text_encoder, tokenizer, scheduler, latents: torch.Tensor, items: list, steps: int, seed: int,
               batch: int = 64, lr: float = 1e-3, offset_noise: float = 0.1, ema_decay: float = 0.999,
               snr_gamma: float = 5.0):
    from diffusers.training_utils import EMAModel, compute_snr

    rng = np.random.default_rng(seed + 2)
    generator = torch.Generator().manual_seed(seed + 3)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.03)
    ema_unet = EMAModel(unet.parameters(), decay=ema_decay, use_ema_warmup=True)
    ema_text = EMAModel(text_encoder.parameters(), decay=ema_decay, use_ema_warmup=True)
    unet.train()
    text_encoder.train()
    losses = []
    for step in range(steps):
        index = rng.integers(len(items), size=batch)
        captions = ["" if rng.random() < 0.1 else dataset.random_caption(items[i], rng) for i in index]
        x0 = latents[torch.from_numpy(index)]
        noise = torch.randn(x0.shape, generator=generator)
        noise += offset_noise * torch.randn((batch, x0.shape[1], 1, 1), generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator)
        noisy = scheduler.add_noise(x0, noise, t)
        hidden = text_encoder(tokenize(tokenizer, captions))[0]
        # Min-SNR weighting (Hang et al. 2023): the nearly clean timesteps stop dominating, training converges faster.
        snr = compute_snr(scheduler, t)
        weight = torch.clamp(snr, max=snr_gamma) / snr
        per_sample = torch.nn.functional.mse_loss(unet(noisy, t, hidden).sample, noise, reduction="none")
        loss = (per_sample.mean(dim=(1, 2, 3)) * weight).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        ema_unet.step(unet.parameters())
        ema_text.step(text_encoder.parameters())
        losses.append(loss.item())
        if step % 200 == 0 or step == steps - 1:
            log(f"unet step {step}/{steps} loss {np.mean(losses[-200:]):.4f}")
    ema_unet.copy_to(unet.parameters())
    ema_text.copy_to(text_encoder.parameters())
    unet.eval()
    text_encoder.eval()
    return losses


# --------------------------------------------------------------------------------------------------------------------


def reevaluate(folder: str, prompts: int, seed: int) -> int:
    """Grade an existing model at the current settings (engine/shapes STEPS and GUIDANCE) and record it."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    report = evaluate(pipe, held_out_prompts(prompts, seed))
    log(f"held-out evaluation: {json.dumps(report)}")
    path = os.path.join(folder, "training.json")
    with open(path) as f:
        record = json.load(f)
    record["held_out"] = report
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(ROOT, "engine", "shapes", "model"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae-steps", type=int, default=800)
    parser.add_argument("--unet-steps", type=int, default=9000)
    parser.add_argument("--batch", type=int, default=32, help="UNet training batch")
    parser.add_argument("--pictures", type=int, default=20000, help="fixed picture set the UNet trains on")
    parser.add_argument("--eval-prompts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="only re-grade the model in --output on held-out captions and update its training.json")
    args = parser.parse_args()

    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(args.threads)
    if args.evaluate_only:
        return reevaluate(args.output, args.eval_prompts, args.seed)
    torch.manual_seed(args.seed)
    started = time.time()
    train_triples, _ = dataset.split_triples()
    work = tempfile.mkdtemp(prefix=".shapes-", dir=os.path.dirname(os.path.abspath(args.output)))
    try:
        tokenizer = build_tokenizer(os.path.join(work, "tokenizer-files"))
        text_encoder, vae, unet, scheduler = build_text_encoder(tokenizer), build_vae(), build_unet(), build_scheduler()
        log(f"parameters: unet {sum(p.numel() for p in unet.parameters()):,}, vae "
            f"{sum(p.numel() for p in vae.parameters()):,}, text {sum(p.numel() for p in text_encoder.parameters()):,}")
        t0 = time.time()
        vae_losses = train_vae(vae, args.vae_steps, args.seed, train_triples)
        vae_time = time.time() - t0
        items = pictures(args.pictures, args.seed, train_triples)
        latents = encode_latents(vae, items)
        scaling = float(1.0 / latents.std())
        vae.register_to_config(scaling_factor=scaling)
        latents = latents * scaling
        log(f"vae done in {vae_time:.0f}s; latents of {len(items)} pictures, scaling factor {scaling:.4f}")
        t0 = time.time()
        unet_losses = train_unet(unet, text_encoder, tokenizer, scheduler, latents, items, args.unet_steps, args.seed,
                                 batch=args.batch)
        unet_time = time.time() - t0
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=inference_scheduler(scheduler), safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
        # Shipped in fp16 (half the size); the engine loads it in fp32 on CPU, so that is what gets evaluated.
        folder = os.path.join(work, "pipeline")
        pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
        pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        t0 = time.time()
        report = evaluate(pipe, held_out_prompts(args.eval_prompts, args.seed))
        log(f"held-out evaluation ({time.time() - t0:.0f}s): {json.dumps(report)}")
        with open(os.path.join(folder, "training.json"), "w") as f:
            json.dump({"seed": args.seed, "vae_steps": args.vae_steps, "unet_steps": args.unet_steps,
                       "pictures": args.pictures, "batch": args.batch, "threads": args.threads,
                       "torch": torch.__version__,
                       "vae_seconds": round(vae_time), "unet_seconds": round(unet_time),
                       "total_seconds": round(time.time() - started),
                       "final_vae_mse": float(np.mean(vae_losses[-100:])),
                       "final_unet_loss": float(np.mean(unet_losses[-100:])), "held_out": report}, f, indent=1)
        if os.path.isdir(args.output):
            shutil.rmtree(args.output)
        os.replace(folder, args.output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"saved {args.output} in {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
