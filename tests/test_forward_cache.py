"""The instrument never repeats a message, so Streamlit never sends it as a reference the browser may have dropped.

Streamlit hashes every element message over 10 kB (``global.minCachedMessageSize``); when the
browser's last rerun request listed that hash, the server sends only a reference to it. The browser
ages its copies out by script runs (``global.maxCachedMessageAge``), also between sending that list
and the reference arriving, when a fragment rerun was asked while another run ended; it then stops
the page with "Connection error … Cached ForwardMsg MISS". The Explore instrument carries its 30 kB
of JavaScript in every message and reruns with every key press, so a slider pressed right, left,
right sent the same message twice within a few runs.
"""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.forward_msg_cache import populate_hash_if_needed

from playground.ui import explore
from tests.test_app import open_tab

pytestmark = pytest.mark.slow  # page runs


def instrument_message(at) -> ForwardMsg:
    """The ForwardMsg Streamlit would send for the instrument, hashed and marked as Streamlit marks it."""
    elements = [e for e in at.get("bidi_component") if e.proto.component_name.endswith("vae_instrument")]
    assert len(elements) == 1, "one instrument on the tab"
    message = ForwardMsg()
    message.delta.new_element.bidi_component.CopyFrom(elements[0].proto)
    populate_hash_if_needed(message)
    return message


def test_the_same_code_sent_twice_is_two_different_messages(app):
    open_tab(app, "explore")
    first = instrument_message(app)
    assert first.metadata.cacheable, "over Streamlit's size for caching: it would be sent as a reference"
    app.session_state[explore.CODE] = np.array([0.05] + [0.0] * 7, np.float32)  # z0 one step right, as
    app.run()  # the page's callback keeps it ...
    moved = instrument_message(app)
    app.session_state[explore.CODE] = np.zeros(8, np.float32)  # ... and back
    app.run()
    back = instrument_message(app)
    app.run()  # and a poll that finds nothing new
    again = instrument_message(app)
    hashes = [first.hash, moved.hash, back.hash, again.hash]
    assert len(set(hashes)) == 4, f"a message repeated, so it would go as a reference: {hashes}"
