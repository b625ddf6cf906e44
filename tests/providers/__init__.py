"""Provider tests (no cloud, pure code, or a local fake of the cloud)."""
