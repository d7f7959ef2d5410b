"""PyTorch models, vocabularies, checkpoints and decoding for hashtale."""
