"""The dashboard's only caching layer (``st.cache_data`` / ``st.cache_resource``), by topic.

:mod:`dashboard.cache.datasets` (the active dataset, demo, uploads, loading, memory
checks), :mod:`dashboard.cache.stats` (Data page), :mod:`dashboard.cache.noise`
(Noise clusters), :mod:`dashboard.cache.map` (Map), :mod:`dashboard.cache.runs`
(the run store). Pages import the module they need.
"""
