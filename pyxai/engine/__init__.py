"""The engine: target resolution, argument checks, layer capture and the perturbation runner."""
