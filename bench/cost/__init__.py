"""What a model costs: multiply-accumulates, parameters, latency, throughput, FLOP utilisation."""
