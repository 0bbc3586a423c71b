"""Training-side toolkit. The model, training, torch evaluation, run settings and tuning need torch; the
settings schema (settings.py), the dataset layout and pair loading (samples.py) and the synthetic dataset
(synthetic.py) do not."""
