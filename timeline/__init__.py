"""Timeline authoring (layer 3): prompt keys and text-strip prompts, F-curve helpers, Deforum/Giffusion schedule
import and export, and audio that writes keys. Writes animation data; imports `engine`, `settings`, `engine_link`."""
