"""Hand-drawn characters: matting (``matting``), the matte's soft edge (``soft_alpha``) and the hand-drawn shard
job (``job``)."""
