"""vidid dashboard: a Streamlit app over ``core`` (``streamlit run dashboard/streamlit_app.py``).

``streamlit_app.py`` builds the navigation; ``app_pages/`` holds one UI-only file per page;
``data.py`` (and ``run_data.py``) are the only caching layer; ``charts.py`` (and
``run_charts.py``) are pure Plotly figure builders, testable without Streamlit.
"""
