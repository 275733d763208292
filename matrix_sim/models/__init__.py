"""Neural networks: the frame autoencoder, the video DiT and the prompt encoder."""
