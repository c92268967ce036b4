"""A candidate Service proxy: a userspace TCP balancer with ClientIP affinity.

`harness.proxies.sdk` speaks the protocol and chooses the usable endpoints; this file is the data
plane. Run the conformance suite on it (docs/candidate-proxy.md), as root, from the checkout:
    .venv/bin/harness run --target local:external \
        --proxy-command '.venv/bin/python3 examples/candidate-proxy/proxy.py'
"""

import asyncio
import functools
import random
import subprocess
import time

from harness.proxies.dropping import dropping_socket
from harness.proxies.sdk import serve

ports, listeners, sticky = {}, {}, {}  # Service ports by (VIP, port); their sockets; affinity
dropping = {}  # sockets that drop every SYN, by (VIP, port)
vip_route = []  # makes every Service VIP a local address


def start(node):  # a VIP:port that nobody listens on refuses connections: REJECT for free
    vip_route[:] = ["local", node.service_cidr, "dev", "lo"]
    subprocess.run(["ip", "route", "replace", *vip_route], check=True)


def stop():  # leave the node namespace as it was found
    subprocess.run(["ip", "route", "del", *vip_route], check=True)


async def program(desired):  # listen on each TCP Service port with backends, close the others
    ports.clear()
    ports.update({p.address: p for p in desired if p.protocol == "TCP" and p.backends})
    drops = {p.address for p in desired if p.protocol == "TCP" and p.drops}  # DROP, not REJECT
    for address in listeners.keys() - ports.keys():
        listeners.pop(address).close()
    for address in dropping.keys() - drops:
        dropping.pop(address).close()
    for address in drops - dropping.keys():
        dropping[address] = dropping_socket(*address)
    for address in ports.keys() - listeners.keys():
        relay_to = functools.partial(relay, address)
        listeners[address] = await asyncio.start_server(relay_to, *address)


async def relay(address, reader, writer):  # one client connection
    port, client, now = ports.get(address), writer.get_extra_info("peername")[0], time.monotonic()
    if port is None:  # the port lost its backends after the connection was accepted
        return writer.close()
    backend, last_used = sticky.get((address, client), (None, 0.0))
    expired = port.affinity_timeout_s is None or now - last_used > port.affinity_timeout_s
    if expired or backend not in port.backends:
        backend = random.choice(port.backends)
    sticky[(address, client)] = (backend, now)
    try:
        backend_reader, backend_writer = await asyncio.open_connection(*backend)
    except OSError:
        return writer.close()
    both_ways = pipe(reader, backend_writer), pipe(backend_reader, writer)
    await asyncio.gather(*both_ways, return_exceptions=True)


async def pipe(reader, writer):  # copy one direction until it ends
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


serve(program, start=start, stop=stop)
