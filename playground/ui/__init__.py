"""The Streamlit page's pieces. Only this subpackage (and app.py) imports Streamlit."""
