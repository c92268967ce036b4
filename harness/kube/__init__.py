"""Driving a real Kubernetes API server: the building blocks of the `kube` target.

Each module has one job:

- `api`: connecting (kubeconfig, context, URL) and turning client errors into one-line harness
  errors (unreachable server, bad kubeconfig, missing permission).
- `objects`: the pure translation of model state changes into manifests, patches and operations.
- `observe`: watches (EndpointSlices by the `kubernetes.io/service-name` label, the harness's
  pods) and their conversion into the model's form.
- `scope`: what every part of one run shares (connection, namespace, clients, clock).
- `traffic`: bounded request batches from client pods inside the cluster.
- `runtime`: what runs the pods: real kubelets (`ClusterRuntime`) or the harness (`kubelet`).
- `kubelet`: the `--pods local` mode, where the harness plays the kubelet.
- `relay`: a loopback relay that makes the API server reachable inside a node namespace.
- `kind`: creating and deleting a kind cluster for `--kind-cluster`.
- `metrics`: kube-proxy's programming-latency histogram, the cross-check of the measurement.
- `cleanup`: removing what killed runs left behind, found by the harness's label.
"""
