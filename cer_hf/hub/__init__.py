"""Publishing to the Hugging Face Hub (`publish`), model cards (`model_card`) and safe loading (`loading`)."""
