"""What Kubernetes accepts as object names, label keys and values, and port names.

The API server validates every name before anything sees it, so a sequence file read from disk
must pass the same checks before any target does: names reach rule comments (iptables), proxy
configuration files (nginx, haproxy), the JSON-lines protocol and the API server itself. These
are apimachinery's `pkg/util/validation` rules, ASCII only:

- `IsDNS1035Label`: Service names;
- `IsDNS1123Subdomain`: pod names;
- `IsDNS1123Label`: the groups a `scale` names (each pod is `GROUP-N` and labelled app=GROUP);
- `IsQualifiedName`: label keys; `IsValidLabelValue`: label values;
- `IsValidPortName` (IANA_SVC_NAME): a Service's named targetPort.

Each check returns None for a valid value or a one-line reason. Pure.
"""

from __future__ import annotations

import re

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(_LABEL)
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
PORT_NAME = re.compile(r"[-a-z0-9]+")

LABEL_MAX = 63
SUBDOMAIN_MAX = 253
PORT_NAME_MAX = 15


def _matches(pattern: re.Pattern[str], value: str, limit: int) -> bool:
    return len(value) <= limit and pattern.fullmatch(value) is not None


def service_name_problem(value: str) -> str | None:
    """IsDNS1035Label: what a Service name must be."""
    if _matches(DNS1035_LABEL, value, LABEL_MAX):
        return None
    return "must be a DNS-1035 label (at most 63 of a-z, 0-9 and '-', starting with a letter)"


def pod_name_problem(value: str) -> str | None:
    """IsDNS1123Subdomain: what a pod name must be."""
    if _matches(DNS1123_SUBDOMAIN, value, SUBDOMAIN_MAX):
        return None
    return "must be a DNS-1123 subdomain (at most 253 of a-z, 0-9, '-' and '.')"


def group_name_problem(value: str) -> str | None:
    """IsDNS1123Label: a scaled group names its pods GROUP-N and labels them app=GROUP."""
    if _matches(DNS1123_LABEL, value, LABEL_MAX - 6):
        return None
    return "must be a DNS-1123 label of at most 57 characters (a-z, 0-9 and '-')"


def label_key_problem(value: str) -> str | None:
    """IsQualifiedName: [PREFIX/]NAME, PREFIX a DNS-1123 subdomain, NAME at most 63 characters."""
    prefix, slash, name = value.rpartition("/")
    if slash and not _matches(DNS1123_SUBDOMAIN, prefix, SUBDOMAIN_MAX):
        return "must have a DNS-1123 subdomain before its '/'"
    if _matches(QUALIFIED_NAME_PART, name, LABEL_MAX):
        return None
    return "must be a qualified name (at most 63 of A-Z, a-z, 0-9, '-', '_' and '.')"


def label_value_problem(value: str) -> str | None:
    """IsValidLabelValue: empty, or at most 63 characters as a qualified name's."""
    if value == "" or _matches(QUALIFIED_NAME_PART, value, LABEL_MAX):
        return None
    return (
        "must be empty or at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', alphanumeric at the ends"
    )


def port_name_problem(value: str) -> str | None:
    """IsValidPortName: at most 15 of a-z, 0-9 and '-', a letter somewhere, no '--', no '-' at
    either end."""
    valid = (
        _matches(PORT_NAME, value, PORT_NAME_MAX)
        and any(c.isalpha() for c in value)
        and "--" not in value
        and not value.startswith("-")
        and not value.endswith("-")
    )
    return None if valid else "must be an IANA service name (at most 15 of a-z, 0-9 and '-')"
