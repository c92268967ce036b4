"""A property-based conformance and benchmark harness for Kubernetes Service load balancing.

The public vocabulary is small: a target name, a proxy name, the CLI verbs, the Target and Proxy
contracts (`harness.targets.base.Target`, `harness.proxies.base.Proxy`) and the results file.
Everything else is internal and may change.
"""

__version__ = "0.1.0"
