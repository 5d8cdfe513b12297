"""Run (layer 5): the generate job (bake, drive the worker, fill the strips), the Sequencer strips it writes, the
generate-before-render hook and the `blender -c keyframe_diffusion` command."""
