"""Reader studies and the local store, without Qt."""
