"""Evaluation: `images` (labelled image sources), `videos` (frame-level, with smoothing) and `metrics`
(the shipped `evaluate` modules and the macro F1 they define)."""
