"""SyncroX web UI: the entry point (``streamlit run frontend/app.py``).

One ``st.navigation`` router over ``views/`` (not ``pages/``, which Streamlit would also
auto-discover as an old-style multipage app). Views talk to the servers only through
``backend`` (which uses ``syncrox.client``); session state is initialised once, here. No
user-supplied text is ever rendered with ``unsafe_allow_html`` (the original's XSS), so
Streamlit escapes it.
"""

from __future__ import annotations

import streamlit as st

import sitemap
import state

# An emoji icon is drawn locally; a material icon here made every page fetch a web font.
st.set_page_config(page_title="SyncroX", page_icon="🔗", layout="wide")
state.ensure_defaults()
state.restore_login()

navigation = st.navigation(sitemap.for_session(state.in_room()))
state.sidebar()
navigation.run()
