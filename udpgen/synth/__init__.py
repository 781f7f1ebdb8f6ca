"""Synthetic shards from MMD models: finding model and motion inputs (``sources``), planning the shard jobs and
rendering one shard (``job``)."""
