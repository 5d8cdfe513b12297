"""Engine link (layer 2): starting and talking to the engine's worker process, the engine's Python environment, and
what the preference screen shows about them while Blender runs. Imports `engine` and `settings`."""
