"""A proxy's slices indexed by Service (harness.proxies.base.SliceStore): what `slices_of`
returns is exactly what a scan of every slice would, after any mix of adds, updates, deletes
and clears (the index made a 5,000-Service full sync linear: issue 13 item 5's benchmark)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.model.objects import EndpointSlice
from harness.proxies.base import SliceStore, slice_key

SERVICES = ("svc-a", "svc-b", "svc-c")
NAMES = ("s-1", "s-2", "s-3")


operations = st.lists(
    st.tuples(
        st.sampled_from(["set", "pop", "del", "clear"]),
        st.sampled_from(SERVICES),
        st.sampled_from(NAMES),
    ),
    max_size=40,
)


@given(operations)
def test_the_index_agrees_with_a_scan(ops: list[tuple[str, str, str]]) -> None:
    store, plain = SliceStore(), {}
    for op, service, name in ops:
        key = (service, name)
        if op == "set":
            value = EndpointSlice(service, (), (), name=name)
            store[key] = value
            plain[key] = value
        elif op == "pop":
            assert store.pop(key, None) == plain.pop(key, None)
        elif op == "del" and key in plain:
            del store[key]
            del plain[key]
        elif op == "clear":
            store.clear()
            plain.clear()
        assert dict(store) == plain
        for each in SERVICES:
            scanned = tuple(s for (svc, _), s in sorted(plain.items()) if svc == each)
            assert store.of(each) == scanned
    assert all(slice_key(s) == k for k, s in store.items())
