"""Recording episodes from the source world, the exploration policy and the shard format."""
