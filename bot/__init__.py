"""DisComfy's Discord layer: commands, views, modals and buttons generated from the engine's catalog."""
