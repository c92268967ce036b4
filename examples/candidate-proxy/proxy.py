"""A candidate Service proxy: a userspace TCP balancer speaking the harness's protocol v1.

The harness runs it inside the node's network namespace (docs/candidate-proxy.md):
    harness run --target local:external --proxy-command 'python examples/candidate-proxy/proxy.py'
"""

import asyncio
import json
import random
import subprocess
import sys
import time

services, slices, servers, routes, sticky, node = {}, {}, {}, {}, {}, {}


def usable(svc, port_name):  # CategorizeEndpoints: the Ready endpoints, else Serving+Terminating
    eps = {}
    for s in slices.values():
        port = next((p["port"] for p in s["ports"] if p["name"] == port_name), None)
        mine = (s["namespace"], s["service"]) == (svc["namespace"], svc["name"])
        for e in s["endpoints"] if mine and port else []:
            if svc["internal_traffic_policy"] == "Cluster" or e["node"] == node["name"]:
                eps[(e["address"], port)] = e
    ready = [k for k, e in eps.items() if e["ready"]]
    return sorted(ready or [k for k, e in eps.items() if e["serving"] and e["terminating"]])


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def handle(key, reader, writer):
    svc, backends = routes.get(key, (None, []))
    client, now = writer.get_extra_info("peername")[0], time.monotonic()
    backend, last = sticky.get((key, client), (None, 0))
    fresh = not svc or svc["session_affinity"] == "None" or backend not in backends
    if fresh or now - last > svc["affinity_timeout_s"]:
        backend = random.choice(backends) if backends else None
    if backend is None:
        return writer.close()
    sticky[(key, client)] = (backend, now)
    try:
        up_reader, up_writer = await asyncio.open_connection(*backend)
    except OSError:
        return writer.close()
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)


async def sync():
    routes.clear()
    for svc in services.values():
        for port in svc["ports"]:
            if port["protocol"] == "TCP" and (backends := usable(svc, port["name"])):
                routes[(svc["cluster_ip"], port["port"])] = (svc, backends)
    for key in set(servers) - set(routes):  # no usable endpoint: no listener, the kernel refuses
        servers.pop(key).close()
    for key in set(routes) - set(servers):
        servers[key] = await asyncio.start_server(lambda r, w, k=key: handle(k, r, w), *key)


async def main():
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while line := await reader.readline():
        msg = json.loads(line)
        kind, reply = msg["type"], {"ok": True, "seq": msg["seq"]}
        try:
            await apply(msg, kind)
        except Exception as error:  # answer the error instead of dying with it
            reply = {"ok": False, "seq": msg["seq"], "error": repr(error)}
        print(json.dumps(reply), flush=True)
        if kind == "shutdown":
            return


async def apply(msg, kind):
    if kind == "hello":  # VIPs become local addresses: bind to them, refuse where unbound
        node.update(msg["node"])
        local_route = ["ip", "route", "replace", "local", node["service_cidr"], "dev", "lo"]
        subprocess.run(local_route, check=True)
    elif kind.startswith("service_"):
        svc = msg["service"]
        services[svc["namespace"] + "/" + svc["name"]] = svc
        if kind == "service_delete":
            del services[svc["namespace"] + "/" + svc["name"]]
    elif kind.startswith("endpoint_slice_"):
        s = msg["endpoint_slice"]
        slices[s["namespace"] + "/" + s["name"]] = s
        if kind == "endpoint_slice_delete":
            del slices[s["namespace"] + "/" + s["name"]]
    elif kind == "sync":
        await sync()
    elif kind == "shutdown":
        subprocess.run(["ip", "route", "del", "local", node["service_cidr"], "dev", "lo"])


asyncio.run(main())
