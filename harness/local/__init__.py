"""The embedded local cluster: pods as network namespaces, a node namespace for the proxy,
client namespaces for traffic, and cleanup by run prefix.

| module | job |
|---|---|
| `names` | run prefixes and the names of everything a run creates |
| `netns` | namespaces, `ip -b` batches, sysctls, sockets inside namespaces |
| `rtnetlink` | the few raw netlink requests that configure a pod's interface fast |
| `cluster` | the node, its bridge, pods and clients (`LocalCluster`) |
| `loopback` | the same without namespaces or root (`LoopbackCluster`) |
| `podserver` | the one process that serves every pod |
| `control` | helper processes driven over a JSON-lines pipe |
| `controller` | the endpoint controller feeding a proxy through the Proxy contract |
| `traffic` | bounded request batches from a client namespace |
| `cleanup` | exit and signal handling, and `clean(prefix)` for crashed runs |

Kept free of imports: helper processes import their module from here and start fast.
"""
