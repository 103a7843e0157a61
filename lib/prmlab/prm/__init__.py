"""Process reward models: step labels, the PRM model, training, and data formats."""
