"""Process reward models: the scorer protocol (`scorer`), step labels, the PRM model and its training,
adapters for published PRMs, the step oracle as a perfect PRM, a feature verifier, and data formats."""
