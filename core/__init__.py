"""vidid core: video person recognition on precomputed face features.

No Streamlit import anywhere in this package.
"""

__version__ = "0.1.0"
