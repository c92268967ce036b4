"""Kernel rules for the rule-based proxies, and the exact oracle that reads them back.

- `plan`: what to program per Service port (the endpoints `CategorizeEndpoints` allows);
- `rendering`: a Service's kernel objects and the difference between two syncs (partial sync);
- `kernel_proxy`: the base class both kernel-rule proxies share (sync, stop, `reachability`);
- `commands`, `conntrack`: running the tools inside the node namespace, clearing stale flows;
- `tracing`: the engine tracing a new connection with exact probabilities (`tracePacket`);
- `iptables_save`, `iptables_trace`, `nft_ruleset`, `nft_trace`: reading and tracing each syntax.
"""

from harness.proxies.rules.tracing import Packet, UntraceableRules, Verdict

__all__ = ["Packet", "UntraceableRules", "Verdict"]
