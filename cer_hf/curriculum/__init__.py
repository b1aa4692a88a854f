"""Curriculum fine-tuning: `schedule` (stages and shares), `dataset` (what each sample is), `mixing` and
`augment` (compound synthesis, augmentation), `collate` (the batch), `trainer` (mechanics inside the
Trainer) and `build` (the wiring a recipe calls)."""
