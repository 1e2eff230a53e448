"""The run lifecycle around ``train(cfg)``: atomic writes, DDP inside multiruns, loggers, sweep summaries, provenance."""
