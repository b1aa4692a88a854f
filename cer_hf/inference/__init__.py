"""Inference: `predictor` (images → compound scores), `video` (frames → faces → scores → smoothing),
`faces` (detection and cropping) and `smoothing` (temporal filters over frame scores)."""
