"""Training-side toolkit: the model, training, evaluation, run settings and tuning need torch; the
dataset layout and pair loading (data.py) and the synthetic dataset (synthetic.py) do not."""
