"""Settings (layer 1, after the engine): the scene's properties, the extension's preferences and the one module that
knows Blender's version differences. Imports only `engine` and bpy."""
