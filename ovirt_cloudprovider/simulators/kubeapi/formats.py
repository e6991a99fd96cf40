"""Names, label values, times and quantities, validated and formatted as kube-apiserver does."""

from __future__ import annotations

import datetime as dt
import functools
import random
import re
import uuid
from fractions import Fraction

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_DNS1123_LABEL_RE = re.compile(rf"^{_DNS1123_LABEL}$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

MSG_DNS1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_DNS1123_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_QUALIFIED_NAME = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
MSG_LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def new_uuid() -> str:
    """A random version-4 UUID (object uids, Audit-Id), as ``str(uuid.uuid4())`` prints one, from the process's
    PRNG: uuid4 asks the kernel (os.urandom) for every one, a system call that gives up the GIL, and a
    thread per connection then waits to get it back on every request."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def dns1123_subdomain_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(MSG_DNS1123_SUBDOMAIN)
    return errs


def dns1123_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1123_LABEL_RE.match(value):
        errs.append(MSG_DNS1123_LABEL)
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """``validation.IsQualifiedName``: ``[prefix/]name`` as used by label and annotation keys."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errs = []
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return ["a qualified name " + MSG_QUALIFIED_NAME.removeprefix("name part ")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME_RE.match(name):
        errs.append(MSG_QUALIFIED_NAME)
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.match(value):
        errs.append(MSG_LABEL_VALUE)
    return errs


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_time(t: dt.datetime) -> str:
    """``metav1.Time``: RFC 3339 in UTC, whole seconds."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(t: dt.datetime) -> str:
    """``metav1.MicroTime``: RFC 3339 in UTC with exactly six fractional digits."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_RFC3339_MICRO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{6})(Z|[+-]\d{2}:\d{2})$")


def parse_time(value: str, micro: bool = False) -> dt.datetime:
    """Parse like Go's ``time.Parse(time.RFC3339, v)`` (``RFC3339Micro`` for MicroTime) or raise ValueError.

    MicroTime is strict: exactly six fractional digits and an offset, as kube-apiserver requires (a Python
    ``datetime.isoformat()`` without microseconds, or a naive one, is rejected by a real server too).
    """
    layout = "2006-01-02T15:04:05.000000Z07:00" if micro else "2006-01-02T15:04:05Z07:00"
    m = (_RFC3339_MICRO_RE if micro else _RFC3339_RE).match(value)
    if not m:
        raise ValueError(f'parsing time "{value}" as "{layout}": cannot parse "{value}" as "{layout}"')
    year, month, day, hour, minute, sec = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    micros = int((frac[1:] + "000000")[:6]) if frac else 0
    off = m.group(8)
    if off == "Z":
        tz = dt.timezone.utc
    else:
        sign = 1 if off[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
    try:
        return dt.datetime(year, month, day, hour, minute, sec, micros, tzinfo=tz)
    except ValueError as e:
        raise ValueError(f'parsing time "{value}": {e}') from None


_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
QUANTITY_REGEX_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL_SUFFIXES.items()}


@functools.lru_cache(maxsize=4096, typed=True)  # a pure function of its value; nodes repeat a few quantities
def canonical_quantity(value: str | int | float) -> str:
    """``resource.Quantity`` round trip: parse, then print the canonical form (``8192Mi`` -> ``8Gi``,
    ``1000`` -> ``1k``, ``0.5`` -> ``500m``). Raises ValueError with kube-apiserver's message."""
    text = str(value) if not isinstance(value, float) else repr(value)
    m = _QUANTITY_RE.match(text.strip())
    if not m or text != text.strip():
        raise ValueError(QUANTITY_REGEX_MSG)
    num_s, suffix = m.group(1), m.group(2)
    if num_s.count(".") > 1 or num_s in (".", "+.", "-."):
        raise ValueError(QUANTITY_REGEX_MSG)
    try:
        num = Fraction(num_s)
    except (ValueError, ZeroDivisionError):
        raise ValueError(QUANTITY_REGEX_MSG) from None
    if suffix in _BINARY_SUFFIXES:
        fmt, val = "binary", num * (2 ** _BINARY_SUFFIXES[suffix])
    elif suffix in _DECIMAL_SUFFIXES:
        fmt, val = "decimal", num * Fraction(10) ** _DECIMAL_SUFFIXES[suffix]
    elif re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
        fmt, val = "exponent", num * Fraction(10) ** int(suffix[1:])
    else:
        raise ValueError("unable to parse quantity's suffix")
    if val == 0:
        return "0"
    # precision is nano: round up (away from zero) to 1e-9
    scaled = val * 10**9
    if scaled.denominator != 1:
        q = -(-abs(scaled.numerator) // scaled.denominator)
        val = Fraction(q if val > 0 else -q, 10**9)
    neg = val < 0
    mag = -val if neg else val
    sign = "-" if neg else ""
    if fmt == "binary" and mag >= 1024 and mag.denominator == 1:
        n, exp = mag.numerator, 0
        while n % 1024 == 0 and exp < 60:
            n //= 1024
            exp += 10
        suffix = next(k for k, v in _BINARY_SUFFIXES.items() if v == exp) if exp else ""
        return f"{sign}{n}{suffix}"
    # decimal forms: mantissa * 10^exp with exp a multiple of 3, mantissa integral, exp as large as possible
    exp = -9
    mant = mag * 10**9
    while mant.denominator == 1 and mant.numerator % 1000 == 0 and exp < 18:
        mant /= 1000
        exp += 3
    mant_s = str(mant.numerator)
    if fmt == "exponent":
        return f"{sign}{mant_s}" + (f"e{exp}" if exp else "")
    return f"{sign}{mant_s}{_DECIMAL_BY_EXP[exp]}"
