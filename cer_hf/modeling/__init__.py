"""The model: `ViTForCompoundExpression` and its config (self-contained, shipped as Hub remote code),
MAE → model conversion (`convert`) and the one entry that builds a model to fine-tune (`build`)."""
