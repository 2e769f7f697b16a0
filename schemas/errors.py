"""Known operator mistakes and outages as one line naming what to change, instead of a traceback (the
formats; cact/preflight.py makes the checks that need the clients).

An operator who set ``CACT_NOSHOW_THRESHOLD=15`` or started a worker before its broker must read, in one
line, which variable is wrong or which address did not answer, and what to do; the 40-100 lines of a
traceback bury that and name internal fields. So ``cact`` turns the failure classes below (and only
those: anything else is a bug and keeps its traceback) into one line on stderr and an exit code:

* 2 (:data:`EXIT_CONFIG`): a setting must change: an invalid variable, a database URL SQLAlchemy cannot
  use, a port already taken;
* 69 (:data:`EXIT_UNAVAILABLE`, EX_UNAVAILABLE): a service the command needs did not answer (Kafka, the
  results store); the same command may work once it is up.

Values are shown as given (so the line can be corrected and pasted back), except secrets: ``SecretStr``
fields and anything named like a password or token show ``***``, and URLs lose their password.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr, ValidationError

if TYPE_CHECKING:
    from schemas.settings import Settings

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 69
#: How long a command waits for Kafka's first answer before saying it is unreachable.
KAFKA_PREFLIGHT_SECONDS = 5.0
VALUE_LIMIT = 120
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SECRET_NAME = re.compile(r"(password|token|secret)$")
_URL_PASSWORD = re.compile(r"(://[^:/?#@\s]*:)[^/\s]*@")  # up to the last @: a raw @ in a password
_QUERY_PASSWORD = re.compile(r"((?:password|passwd|pwd)=)[^&\s]*", re.IGNORECASE)


class CliError(Exception):
    """A failure the operator fixes by changing what the message names; ``cact`` prints it as one line."""

    def __init__(self, message: str, code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def clean(text: object, limit: int = 1000) -> str:
    """One printable line: control characters (terminal escapes, newlines) shown as ``\\x..``, long texts cut."""
    s = " ".join(str(text).split())
    cut = "…" if len(s) > limit else ""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                       s[:limit]) + cut


def mask_url(url: str) -> str:
    """``url`` with its password (in the authority or the query) replaced by ``***``; works on unparseable URLs."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))


# ------------------------------------------------------------------------------------------------
# Invalid settings
# ------------------------------------------------------------------------------------------------

def _env_names(model: type[BaseModel], field: str) -> list[str]:
    """The variables a field is read from, in the order the settings prefer them."""
    from schemas.settings import Settings

    if issubclass(model, Settings):
        alias = Settings.model_fields[field].validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            return [c for c in choices if isinstance(c, str)]
        return [f"CACT_{field.upper()}"]
    return [f"CACT_SIASN_{field.upper()}"]  # the SI ASN client's SiasnConfig (sinks/siasn/config.py)


def env_name(model: type[BaseModel], field: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable that set ``field``: the first of its names present in the environment, else its usual name."""
    env = {k.upper() for k in (os.environ if environ is None else environ)}
    names = _env_names(model, field)
    return next((n for n in names if n.upper() in env), names[-1])  # KAFKA_…: how deployments usually name it


def _field_of(model: type[BaseModel], loc: Sequence[Any]) -> str | None:
    """The field an error is about: ``loc`` starts with its name or, for aliased fields, one of its aliases."""
    head = str(loc[0]) if loc else ""
    if head in model.model_fields:
        return head
    for name in model.model_fields:
        if head.upper() in (n.upper() for n in _env_names(model, name)):
            return name
    return None


def _is_secret(model: type[BaseModel], field: str) -> bool:
    """Secret by type, by name (a token file's path is not) or because the model hides all its inputs."""
    info = model.model_fields[field]
    return SecretStr in (info.annotation, *get_args(info.annotation)) or bool(_SECRET_NAME.search(field)) \
        or bool(getattr(model, "model_config", {}).get("hide_input_in_errors"))


def _kind(model: type[BaseModel], field: str) -> str:
    """The expected form read off the field's type and bounds, so it cannot drift from what is validated."""
    info = model.model_fields[field]
    types = [t for t in (info.annotation, *get_args(info.annotation)) if t is not type(None)]
    literals = [a for t in types if get_origin(t) is Literal for a in get_args(t)]
    if literals:
        return "one of " + ", ".join(map(str, literals))
    if field.endswith("_port"):
        return "a port number from 1 to 65535"
    bounds = {type(m).__name__: getattr(m, type(m).__name__.lower()) for m in info.metadata
              if isinstance(m, (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt))}
    noun = ("a whole number" if int in types else "a number" if float in types else "true or false" if bool in types
            else "a file path" if any(getattr(t, "__name__", "") == "Path" for t in types) else "text")
    low = f"{bounds['Ge']:g}" if "Ge" in bounds else None
    high = f"{bounds['Le']:g}" if "Le" in bounds else None
    if low is not None and high is not None:
        return f"{noun} from {low} to {high}"
    parts = [f"at least {low}" if low is not None else "", f"greater than {bounds['Gt']:g}" if "Gt" in bounds else "",
             f"at most {high}" if high is not None else "", f"less than {bounds['Lt']:g}" if "Lt" in bounds else ""]
    return " ".join([noun, *(p for p in parts if p)])


def _shown(model: type[BaseModel], field: str, error: Mapping[str, Any]) -> str:
    if "input" not in error or _is_secret(model, field):
        return "***"
    value = error["input"]
    text = mask_url(value) if isinstance(value, str) else str(value)
    return shlex.quote(clean(text, VALUE_LIMIT))


def settings_lines(exc: ValidationError, model: type[BaseModel], environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per bad variable: its name as the operator set it, the value given, the expected form."""
    lines: dict[str, str] = {}
    for error in exc.errors():
        field = _field_of(model, error.get("loc", ()))
        if field is None:  # a check across fields (a secret set twice, its file unreadable): its own message
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            lines[str(error.get("loc")) + message] = f"invalid settings: {clean(message)}"
            continue
        var = env_name(model, field, environ)
        if var in lines:
            continue
        if error.get("type") == "missing":
            lines[var] = f"{var} is required: set it to {_kind(model, field)}"
        else:
            lines[var] = f"invalid setting {var}={_shown(model, field, error)}: must be {_kind(model, field)}"
    return list(lines.values())


# ------------------------------------------------------------------------------------------------
# Kafka
# ------------------------------------------------------------------------------------------------

def kafka_address(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """Where the settings send clients, and which variable says so."""
    from schemas.settings import Settings as _Settings

    if settings.uses_external_kafka:
        return f"{settings.bootstrap_servers} ({env_name(_Settings, 'kafka_bootstrap_servers', environ)})"
    return f"{settings.bootstrap_servers} (CACT_BROKER_HOST:CACT_BROKER_PORT, the embedded broker)"


# ------------------------------------------------------------------------------------------------
# Ports
# ------------------------------------------------------------------------------------------------

def listen_error(host: str, port: int, port_var: str, host_var: str, exc: OSError) -> CliError:
    """Why nothing can listen on host:port, naming the variable (or option) to change."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return CliError(f"cannot listen on {where}: {host!r} is not a host name or address here ({exc.strerror}); "
                        f"change {host_var}")
    if exc.errno == errno.EADDRINUSE:
        return CliError(f"cannot listen on {where}: the port is already in use (another worker or program); set "
                        f"{port_var} to a free port or stop what uses it")
    if exc.errno == errno.EADDRNOTAVAIL:
        return CliError(f"cannot listen on {where}: {host} is not an address of this machine; change {host_var} "
                        "(127.0.0.1: this machine only, 0.0.0.0: every interface)")
    if exc.errno == errno.EACCES:
        return CliError(f"cannot listen on {where}: ports below 1024 need root; set {port_var} to a port from "
                        "1024 to 65535")
    return CliError(f"cannot listen on {where}: {exc.strerror or exc}; change {port_var} or {host_var}")


def check_port_free(host: str, port: int, port_var: str, host_var: str) -> None:
    """Bind host:port once and let it go, so a taken port is one line now rather than a traceback later.

    SO_REUSEADDR as the servers set it: a port left in TIME_WAIT by a stopped worker counts as free.
    """
    if not 0 < port < 65536:
        raise CliError(f"invalid setting {port_var}={port}: must be a port number from 1 to 65535")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        raise listen_error(host, port, port_var, host_var, exc) from None


# ------------------------------------------------------------------------------------------------
# Turning a failure into its line
# ------------------------------------------------------------------------------------------------

def report(error: CliError) -> None:
    """Print the line(s) on stderr, unwrapped: a log collector or a narrow terminal gets each line whole."""
    for line in error.message.splitlines():
        print(clean(line), file=sys.stderr, flush=True)
