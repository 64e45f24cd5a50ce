"""One file per dashboard page; UI only (logic lives in ``core``, caching in ``dashboard.cache.datasets``)."""
