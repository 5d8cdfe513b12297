"""Finding and loading models through diffusers' own loaders, and adjusting a loaded pipeline. Import each name from
the module that does the job:

  options       LoadOptions: what a caller allows (downloads, pickle weights), device, precision; pickle extensions
  device        pick_device / pick_dtype: where the weights go and in which dtype
  embedded      the shipped shapes model and the random tiny model; cache_dir, the engine's own cache folder
  hub           Hugging Face ids and lookups in the local Hub cache (never the network)
  single_file   single-file checkpoints: may it be read, and where its base model's configs are
  locate        resolve / locate_pipeline / locate_component: a model field to a loadable folder, id or file
  load          load_pipeline: a base SD 1.x/2.x, SDXL, inpainting, depth-to-image or text-to-video pipeline
  derive        base_pipeline, pipeline_kind / model_kind / check_model_use, derive: img2img, inpaint, ControlNet
  controlnets   load_controlnet (cached) and the check that a unit fits the model
  loras         apply_loras: LoRA adapters by file, reloading only what changed
  decoders      load_decoder / use_decoder: a tiny autoencoder in place of the VAE
  speed         apply_speed / uncompiled: channels-last, VAE slicing and tiling, torch.compile
  schedulers    set_scheduler: schedulers by name, with validated settings
  kwargs        check_pipeline_kwargs: extra pipeline arguments as JSON data (never evaluated)

Errors are engine.errors.ModelError. Nothing is downloaded unless the caller allows it, and nothing runs code from
the model (no pickle, no remote code) unless the caller opts in.
"""
