"""A socket that DROPs: how a userspace proxy gives kube-proxy's "has no local endpoints" DROP.

kube-proxy drops new connections to a Service port that has endpoints, none usable from its node
(internalTrafficPolicy=Local, endpoints only on other nodes; `harness.model.endpoints.
has_any_endpoints`): the client's SYN gets no answer and its connect times out. A userspace proxy
has no netfilter rule to do that, and a VIP:port without a listener is refused by the kernel (a
RST: REJECT). So it listens on VIP:port with a classic BPF socket filter that accepts nothing: the
kernel runs a listener's filter on every incoming segment before the TCP handshake
(`tcp_v4_rcv` -> `tcp_filter`), and a segment the filter refuses is discarded without a reply. The
SYN is silently dropped, as kube-proxy's DROP rule drops it.

Linux only (SO_ATTACH_FILTER). The socket is never accepted on; close it to stop dropping (the
port is then refused again, or taken by a relaying listener).
"""

from __future__ import annotations

import ctypes
import socket
import struct

from harness.local.netns import listening_socket

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return a constant
DROP_ALL = struct.pack("HBBI", BPF_RET_K, 0, 0, 0)  # `ret #0`: keep 0 bytes of every packet


def attach_drop_all(sock: socket.socket) -> None:
    """Attach a filter that drops every packet `sock` would receive (OSError if refused)."""
    program = ctypes.create_string_buffer(DROP_ALL)
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; } (native alignment)
    fprog = struct.pack("HP", 1, ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def dropping_socket(address: str, port: int) -> socket.socket:
    """A non-blocking TCP socket listening on `address:port` that answers no SYN: every new
    connection to it times out. The filter is attached before the socket is bound, so no
    handshake ever completes. It must not be accepted on, and must not be used for anything but
    dropping."""
    return listening_socket(address, port, prepare=attach_drop_all)
