"""The bake (layer 4): evaluate the scene over its frame range and write plan.json (plus the render passes and input
frames it points to). A read of the scene: it never changes the .blend and never starts the engine."""
