"""Where code runs: this process's device, and the torchrun ranks that share a run or a training."""
