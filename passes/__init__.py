"""Graph -> Graph transformations (autodiff, simplification, fusion), registered by name."""
