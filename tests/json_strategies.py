"""Hypothesis strategies for JSON values and API objects' metadata (decoding tests)."""

from __future__ import annotations

from hypothesis import strategies as st

json_scalars = st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
meta_values = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=10), "namespace": st.text(max_size=10),
    "resourceVersion": st.text(max_size=5), "generation": st.integers(0, 2**40),
    "creationTimestamp": st.none() | st.text(max_size=5),
    "labels": st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=70)),
    "annotations": st.dictionaries(st.text(max_size=5), json_scalars, max_size=2),
    "ownerReferences": json_values, "finalizers": json_values, "managedFields": json_values,
    "other": json_values,
})
