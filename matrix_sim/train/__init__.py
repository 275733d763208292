"""Training loops; each runs alone or under torchrun (DDP) unchanged."""
