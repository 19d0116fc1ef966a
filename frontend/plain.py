"""Text from elsewhere inside Streamlit's markdown elements, shown as the text it is.

``st.error``, ``st.warning``, ``st.info``, ``st.success``, ``st.caption`` and ``st.markdown``
render markdown (and Streamlit's extras: ``$math$``, ``:color[...]``, ``:emoji:``). An error
message can carry a peer's words (a server's refusal naming a file someone else uploaded),
and ``![x](http://...)`` there would make the viewer's browser fetch a URL. CommonMark lets
a backslash escape any ASCII punctuation, so every one is escaped; HTML is never enabled.
"""

from __future__ import annotations

import string

_ESCAPED = {ord(mark): "\\" + mark for mark in string.punctuation}


def plain(text: str) -> str:
    """``text`` for a markdown element: shown literally, nothing interpreted."""
    return text.translate(_ESCAPED)
