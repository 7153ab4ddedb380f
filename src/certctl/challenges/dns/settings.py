"""DNS-01 settings: checked once when an order is placed, stored with secrets only referenced."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from certctl.errors import BadInput

DEFAULT_PROPAGATION_TIMEOUT = 120.0

# Validation.settings keys and the options that set them (for messages).
OPTIONS = {
    "server": "--dns-server",
    "tsig_key": "--tsig-key",
    "tsig_algorithm": "--tsig-algorithm",
    "tsig_secret_file": "--tsig-secret-file",
    "tsig_secret_env": "--tsig-secret-env",
    "zone": "--dns-zone",
    "hook": "--dns-hook",
    "lexicon_provider": "--lexicon-provider",
    "credentials_file": "--dns-credentials",
    "credentials_env": "--dns-credentials",  # stored: the variables' names, never their values
    "nameservers": "--dns-nameserver",
    "propagation_timeout": "--propagation-timeout",
}
_RFC2136_ONLY = ("server", "tsig_key", "tsig_algorithm", "tsig_secret_file", "tsig_secret_env")
_LEXICON_ONLY = ("lexicon_provider", "credentials_file", "credentials_env")
METHODS = ("rfc2136", "hook", "lexicon")


def settings_for(method: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check a DNS provider's settings and return them as stored (secrets only referenced)."""
    given = {k: v for k, v in raw.items() if v not in (None, "", [], ())}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise BadInput(f"unknown DNS setting {unknown[0]!r}")
    if method not in METHODS:
        if given:
            option = OPTIONS[next(iter(given))]
            raise BadInput(
                f"{option} needs --challenge dns --dns-provider rfc2136, hook or lexicon"
            )
        return {}
    # only a DNS provider loads the DNS stack (dnspython): an HTTP-01 order never pays for it
    from certctl.challenges.dns import protocol

    foreign = {
        "rfc2136": ("hook", *_LEXICON_ONLY),
        "hook": (*_RFC2136_ONLY, *_LEXICON_ONLY, "zone"),
        "lexicon": (*_RFC2136_ONLY, "hook"),
    }[method]
    wrong = [k for k in foreign if k in given]
    if wrong:
        raise BadInput(f"{OPTIONS[wrong[0]]} does not apply to --dns-provider {method}")
    settings: dict[str, Any] = {}
    if "nameservers" in given:
        servers = [protocol.parse_server(str(s), "--dns-nameserver") for s in given["nameservers"]]
        settings["nameservers"] = [str(s) for s in servers]
    timeout = float(given.get("propagation_timeout", DEFAULT_PROPAGATION_TIMEOUT))
    if not 0 < timeout <= 3600:
        raise BadInput(f"invalid --propagation-timeout {timeout:g}: expected 1-3600 seconds")
    settings["propagation_timeout"] = timeout
    if method == "hook":
        return {"hook": _check_hook(given.get("hook")), **settings}
    if method == "lexicon":
        return {**_check_lexicon(given), **settings}
    return {**_check_rfc2136(given), **settings}


def _check_hook(command: Any) -> str:
    if not command:
        raise BadInput("--dns-provider hook needs --dns-hook CMD")
    try:
        argv = shlex.split(str(command))
    except ValueError as e:
        raise BadInput(f"cannot parse --dns-hook {command!r}: {e}") from None
    if not argv or shutil.which(argv[0]) is None:
        raise BadInput(
            f"--dns-hook program {argv[0] if argv else ''!r} not found or not executable"
        )
    if "/" in argv[0] and not os.path.isabs(argv[0]):
        # stored for renewals, which run from another directory (cron)
        return shlex.join([os.path.abspath(argv[0]), *argv[1:]])
    return str(command)


def _check_rfc2136(given: Mapping[str, Any]) -> dict[str, Any]:
    from certctl.challenges.dns import protocol

    for required in ("server", "tsig_key"):
        if required not in given:
            raise BadInput(f"--dns-provider rfc2136 needs {OPTIONS[required]}")
    algorithm = str(given.get("tsig_algorithm", protocol.DEFAULT_ALGORITHM)).lower()
    if algorithm not in protocol.ALGORITHMS:
        raise BadInput(
            f"unknown --tsig-algorithm {algorithm!r}: use one of {', '.join(protocol.ALGORITHMS)}"
        )
    settings: dict[str, Any] = {
        "server": str(protocol.parse_server(str(given["server"]), "--dns-server")),
        "tsig_key": _name(given["tsig_key"], "--tsig-key"),
        "tsig_algorithm": algorithm,
    }
    if "zone" in given:
        settings["zone"] = _name(given["zone"], "--dns-zone")
    if ("tsig_secret_file" in given) == ("tsig_secret_env" in given):
        raise BadInput(
            "--dns-provider rfc2136 needs one of --tsig-secret-file or --tsig-secret-env"
        )
    if "tsig_secret_file" in given:
        settings["tsig_secret_file"] = str(Path(given["tsig_secret_file"]).resolve())
    else:
        settings["tsig_secret_env"] = str(given["tsig_secret_env"])
    # read once now so a missing or garbled secret fails the order, not a 3 a.m. renewal
    protocol.read_secret(settings.get("tsig_secret_file"), settings.get("tsig_secret_env"))
    return settings


def _name(value: Any, option: str) -> str:
    import dns.name

    from certctl.challenges.dns.protocol import show

    try:
        return show(dns.name.from_text(str(value)))
    except Exception:
        raise BadInput(f"invalid {option} {value!r}: expected a DNS name") from None


def _check_lexicon(given: Mapping[str, Any]) -> dict[str, Any]:
    """Provider known, credentials readable and present; stored: the file path or variable names."""
    from certctl.challenges.dns import lexicon_meta

    provider = given.get("lexicon_provider")
    if not provider:
        raise BadInput(
            "--dns-provider lexicon needs --lexicon-provider NAME"
            " ('certctl dns providers' lists them)"
        )
    provider = str(provider).lower()
    options = lexicon_meta.provider_options(provider)
    settings: dict[str, Any] = {"lexicon_provider": provider}
    if "zone" in given:
        settings["zone"] = _name(given["zone"], "--dns-zone")
    if "credentials_file" in given:
        path = lexicon_meta.check_credentials_file(str(given["credentials_file"]))
        settings["credentials_file"] = str(path)
        values = lexicon_meta.read_credentials(provider, options, str(path), [])
    else:
        names = [str(n) for n in given.get("credentials_env", [])]
        values = lexicon_meta.read_credentials(provider, options, None, names)
        if not names:
            names = [o.env for o in options if o.name in values]
        settings["credentials_env"] = names
    # checked now so a missing credential fails the order, not a 3 a.m. renewal
    refusal = lexicon_meta.missing_credentials(provider, options, values)
    if refusal:
        raise BadInput(refusal)
    return settings
