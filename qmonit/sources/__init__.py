"""Sources return Samples (or a topology) and never write anywhere."""
