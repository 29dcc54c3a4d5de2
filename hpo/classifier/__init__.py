"""The chosen model: retrain an exported config, the saved format, evaluate it on the test split, predict with it."""
