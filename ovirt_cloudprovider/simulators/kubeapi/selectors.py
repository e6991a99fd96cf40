"""Label and field selector parsing (apimachinery labels/fields)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from .errors import ApiError, err_bad_request
from .formats import label_value_errors, qualified_name_errors


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        v = labels.get(self.key, "")
        if self.op == "=":
            return has and v == self.values[0]
        if self.op == "!=":
            return not has or v != self.values[0]
        if self.op == "in":
            return has and v in self.values
        if self.op == "notin":
            return not has or v not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if not has:
            return False
        try:
            n, limit = int(v), int(self.values[0])
        except ValueError:
            return False
        return n > limit if self.op == "gt" else n < limit


_SEL_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=,()<>]+)")


# complexity: mirrors apimachinery's selector lexer, one branch per token
def parse_label_selector(text: str) -> list[Requirement]:  # noqa: C901
    """``labels.Parse``: ``a=b,c!=d,e in (f,g),h notin (i),j,!k,l>1``; raise ApiError 400 on bad syntax."""
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _SEL_TOKEN.match(text, pos)
        if not m:
            raise err_bad_request(f"unable to parse requirement: found '{text[pos:]}', expected: identifier")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    ops = {"!=", "==", "=", "!", "(", ")", ",", ">", "<"}
    reqs: list[Requirement] = []
    i = 0

    def fail(msg: str) -> ApiError:
        return err_bad_request(f"unable to parse requirement: {msg}")

    def ident(j: int) -> str:
        if j >= len(tokens) or tokens[j] in ops:
            found = tokens[j] if j < len(tokens) else "EOS"
            raise fail(f"found '{found}', expected: identifier")
        return tokens[j]

    while i < len(tokens):
        if tokens[i] == "!":
            key = ident(i + 1)
            req = Requirement(key, "!")
            i += 2
        else:
            key = ident(i)
            i += 1
            nxt = tokens[i] if i < len(tokens) else ","
            if nxt == ",":
                req = Requirement(key, "exists")
            elif nxt in ("=", "==", "!="):
                i += 1
                value = "" if i >= len(tokens) or tokens[i] == "," else ident(i)
                if value:
                    i += 1
                req = Requirement(key, "!=" if nxt == "!=" else "=", (value,))
            elif nxt in ("in", "notin"):
                i += 1
                if i >= len(tokens) or tokens[i] != "(":
                    raise fail(f"found '{tokens[i] if i < len(tokens) else 'EOS'}', expected: '('")
                i += 1
                values: list[str] = []
                while True:
                    if i < len(tokens) and tokens[i] == ")":
                        i += 1
                        break
                    if i < len(tokens) and tokens[i] == ",":
                        values.append("")
                        i += 1
                        continue
                    values.append(ident(i))
                    i += 1
                    if i < len(tokens) and tokens[i] == ",":
                        i += 1
                    elif i < len(tokens) and tokens[i] == ")":
                        continue
                    else:
                        raise fail(f"found '{tokens[i] if i < len(tokens) else 'EOS'}', expected: ',' or ')'")
                if not values:
                    raise fail(f"for 'in', 'notin' operators, values set can't be empty (key {key!r})")
                req = Requirement(key, nxt, tuple(values))
            elif nxt in (">", "<"):
                i += 1
                value = ident(i)
                i += 1
                if not re.fullmatch(r"-?\d+", value):
                    raise fail(f"for 'Gt', 'Lt' operators, the value must be an integer: {value!r}")
                req = Requirement(key, "gt" if nxt == ">" else "lt", (value,))
            else:
                raise fail(f"found '{nxt}', expected: in, notin, =, ==, !=, gt, lt")
        for msg in qualified_name_errors(req.key):
            raise fail(f'key: Invalid value: "{req.key}": {msg}')
        for v in req.values if req.op not in ("gt", "lt") else ():
            for msg in label_value_errors(v):
                raise fail(f'values[0][{req.key}]: Invalid value: "{v}": {msg}')
        reqs.append(req)
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(tokens):
                raise fail("found 'EOS', expected: identifier")
    return reqs


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    """``fields.ParseSelector``: ``a=b,c!=d`` with backslash escapes; returns (field, op, value)."""
    terms: list[str] = []
    cur = []
    escaped = False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    out: list[tuple[str, str, str]] = []
    for term in terms:
        if not term:
            continue
        m = re.match(r"^((?:[^=!\\]|\\.)*?)(!=|==|=)(.*)$", term)
        if not m:
            raise err_bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        value = re.sub(r"\\(.)", r"\1", m.group(3))
        out.append((m.group(1).strip(), "!=" if m.group(2) == "!=" else "=", value))
    return out
