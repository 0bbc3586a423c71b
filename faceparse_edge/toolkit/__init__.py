"""Training-side toolkit: data, model, losses, training and evaluation (needs torch)."""
