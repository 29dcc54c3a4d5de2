"""One fine-tune: where the model and data come from, data, tokens, model (load, freeze, heads), loss, loop,
metrics. Imports neither optuna nor hpo.spec: a spec arrives as TrainConfig and plain data."""
