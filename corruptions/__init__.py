"""ImageNet-C corruptions: the reference implementation, the batched path, pre-rendered folders and
the cache of generated images."""
