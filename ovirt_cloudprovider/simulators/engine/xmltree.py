"""Engine XML documents as small trees of ``Node`` tuples, serialized with the engine's layout (4-space
indentation, ``<tag></tag>`` for an empty string, ``<tag/>`` for no content); the engine's ``<fault>`` body and
the HTML error pages of the Apache in front of it."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from xml.sax.saxutils import escape

from .constants import API_PREFIX

Node = tuple[str, tuple[tuple[str, str], ...], "list[Node] | str | None"]
FollowTree = dict[str, "FollowTree"]


def E(tag: str, *children: Node | None, **attrs: str) -> Node:
    """An element with child elements (``None`` children are skipped)."""
    return (tag, tuple(attrs.items()), [c for c in children if c is not None])


def T(tag: str, value: object) -> Node:
    """A text element; booleans are written as the engine does (``true``/``false``)."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return (tag, (), text)


def R(tag: str, collection: str, obj_id: str) -> Node:
    """A link to another entity: ``<tag href=".../collection/id" id="id"/>``."""
    return (tag, (("href", f"{API_PREFIX}/{collection}/{obj_id}"), ("id", obj_id)), None)


def _links(base: str, rels: Iterable[str]) -> list[Node]:
    return [(("link", (("href", f"{base}/{rel}"), ("rel", rel)), None)) for rel in rels]


def _actions(base: str, rels: Iterable[str]) -> Node:
    return E("actions", *_links(base, rels))


def _version(major: int, minor: int) -> list[Node]:
    return [T("major", major), T("minor", minor)]


class _Serializer:
    """Writes Node trees; full cluster/host/data_center elements are serialized once per indentation."""

    _SHARED = frozenset({"cluster", "host", "data_center"})

    def __init__(self) -> None:
        self._memo: dict[tuple[int, str], str] = {}

    def write(self, node: Node, ind: str, out: list[str]) -> None:
        tag, _attrs, body = node
        if tag in self._SHARED and isinstance(body, list) and body:
            key = (id(node), ind)
            text = self._memo.get(key)
            if text is None:
                buf: list[str] = []
                self._write(node, ind, buf)
                text = self._memo[key] = "".join(buf)
            out.append(text)
        else:
            self._write(node, ind, out)

    def _write(self, node: Node, ind: str, out: list[str]) -> None:
        tag, attrs, body = node
        a = "".join(f' {k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in attrs)
        if body is None or (isinstance(body, list) and not body):
            out.append(f"{ind}<{tag}{a}/>\n")
        elif isinstance(body, str):
            out.append(f"{ind}<{tag}{a}>{escape(body)}</{tag}>\n")
        else:
            out.append(f"{ind}<{tag}{a}>\n")
            inner = ind + "    "
            for child in body:
                self.write(child, inner, out)
            out.append(f"{ind}</{tag}>\n")


def to_xml(node: Node, serializer: _Serializer | None = None) -> bytes:
    """One document (with the XML declaration the engine sends)."""
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n']
    (serializer or _Serializer()).write(node, "", out)
    return "".join(out).encode()


def _fault_xml(reason: str, detail: str) -> bytes:
    return to_xml(E("fault", T("detail", detail), T("reason", reason)))


_APACHE_502 = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>502 Proxy Error</title>
</head><body>
<h1>Proxy Error</h1>
<p>The proxy server received an invalid
response from an upstream server.<br />
The proxy server could not handle the request <em><a href="{path}">{method}&nbsp;{path}</a></em>.<p>
Reason: <strong>Error reading from remote server</strong></p></p>
</body></html>
"""
_APACHE_ERROR = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>{status} {phrase}</title>
</head><body>
<h1>{phrase}</h1>
<p>The server is temporarily unable to service your
request due to maintenance downtime or capacity
problems. Please try again later.</p>
</body></html>
"""
_APACHE_404 = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>404 Not Found</title>
</head><body>
<h1>Not Found</h1>
<p>The requested URL {path} was not found on this server.</p>
</body></html>
"""


def _apache_error_html(status: int, path: str, method: str) -> bytes:
    if status == 502:
        return _APACHE_502.format(path=escape(path), method=escape(method)).encode()
    if status == 404:
        return _APACHE_404.format(path=escape(path)).encode()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _APACHE_ERROR.format(status=status, phrase=phrase).encode()
