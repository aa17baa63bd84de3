"""Ways to run faster that do not change results: precision behind its parity check, channels_last,
folded batch norm, CPU kernels for small batches and small maps. The run layer and the `bench train`
command apply them; models, attacks, corruptions and the training loop never import them."""
