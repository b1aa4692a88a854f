"""Multi-task AU / expression / valence-arousal model (`modeling`), its data (`data`) and training loop (`train`)."""
