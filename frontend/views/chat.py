"""Placeholder: being written (issue 13)."""

from __future__ import annotations

import streamlit as st

import state

state.require_room()
st.title("chat")
