"""What a model costs: multiply-accumulates, parameters, latency, throughput and FLOP
utilisation."""
