"""Every "next step" command certctl suggests, built from the certificate's record.

Each function returns one command line that works when pasted into a POSIX
shell: arguments are quoted with shlex (a wildcard's `*` included) and an order
is repeated with all of the certificate's domains and its validation options.
tests/test_hints.py runs every one of them through the real command line.
"""

from __future__ import annotations

import shlex

from certctl.models import SOURCE_UPLOAD, CertRecord

# What a hint cannot know: the file holding an uploaded certificate's successor, and the
# ACME directory of the CA that issued an uploaded certificate.
NEW_BUNDLE = "NEW-BUNDLE.pem"
ITS_CA = "DIRECTORY-URL"
EXPORT_DIR = "DIR"
DEFAULT_PROPAGATION_TIMEOUT = 120.0

LIST = "certctl list"
REGISTER_ACCOUNT = "certctl account register --agree-tos"
SETTLE_ACCOUNT = "certctl account show"
ORDER_HELP = "certctl order --help"
UPLOAD_HELP = "certctl upload --help"


def command(*args: str) -> str:
    """`certctl ARGS...` quoted for a POSIX shell."""
    return shlex.join(["certctl", *args])


def show(name: str) -> str:
    """Look at one certificate."""
    return command("show", name)


def export(name: str) -> str:
    """Publish the live files in a directory (a database store has none on the host)."""
    return command("export", name, "--dir", EXPORT_DIR)


def verify(name: str) -> str:
    """Validate the pending order."""
    return command("verify", name)


def account_update_email(email: str) -> str:
    """Change the account's contact address at the CA."""
    return command("account", "update", "--email", email)


def caa_records(domain: str) -> str:
    """Print the CAA records that let this CA, account and methods issue (RFC 8657)."""
    return command("account", "caa", "-d", domain)


def persist_record(domain: str) -> str:
    """Print the dns-persist-01 record for the current account."""
    return command("account", "persist-record", "-d", domain)


def issue(name: str) -> str:
    """Finalize the validated order (or re-issue with automatic validation)."""
    return command("issue", name)


def renew_now(name: str) -> str:
    """Renew now, whatever the schedule and back-off say."""
    return command("renew-due", "--force", name)


def upload_successor(name: str) -> str:
    """Replace an uploaded certificate (NEW_BUNDLE: the new key, certificate and chain)."""
    return command("upload", name, "--replace", "--bundle", NEW_BUNDLE)


def revoke_with_own_key(name: str) -> str:
    """Revoke an uploaded certificate at its own CA, signed with the certificate's key."""
    return command("--server", ITS_CA, "revoke", name, "--reason", "keyCompromise")


def order_again(record: CertRecord, server: str | None = None) -> str:
    """A new order for the same certificate: all its domains, its validation, key and profile.

    `server` is the CA certctl would use now; `--server` is added when the
    certificate came from another one.
    """
    args: list[str] = []
    if record.server and record.server != server:
        args += ["--server", record.server]
    args.append("order")
    for domain in record.domains:
        args += ["-d", domain]
    args += ["--name", record.name]
    args += _validation_args(record)
    if record.key_type != "ec256":
        args += ["--key-type", record.key_type]
    if record.profile:
        args += ["--profile", record.profile]
    return command(*args)


def _validation_args(record: CertRecord) -> list[str]:
    validation = record.validation
    method, settings = validation.method, validation.settings
    args: list[str] = []
    if validation.challenge != "http":
        args += ["--challenge", validation.challenge]
    if validation.challenge == "tls-alpn":  # one method: certctl's own TLS responder
        if validation.tls_port:
            args += ["--tls-port", str(validation.tls_port)]
    elif method == "standalone":
        args.append("--standalone")
        if validation.http_port:
            args += ["--http-port", str(validation.http_port)]
    elif method == "fleet":
        args.append("--http-fleet")
    elif method == "webroot" and validation.webroot:
        args += ["--webroot", validation.webroot]
    elif method in ("rfc2136", "hook", "lexicon"):
        args += ["--dns-provider", method]
        options = (
            ("server", "--dns-server"),
            ("tsig_key", "--tsig-key"),
            ("tsig_algorithm", "--tsig-algorithm"),
            ("tsig_secret_file", "--tsig-secret-file"),  # a path, never the secret
            ("tsig_secret_env", "--tsig-secret-env"),  # a variable's name
            ("zone", "--dns-zone"),
            ("hook", "--dns-hook"),
            ("lexicon_provider", "--lexicon-provider"),
            ("credentials_file", "--dns-credentials"),  # a path, never the credentials
        )
        for key, option in options:
            if settings.get(key):
                args += [option, str(settings[key])]
        for server in settings.get("nameservers", []):
            args += ["--dns-nameserver", str(server)]
        timeout = settings.get("propagation_timeout")
        if timeout is not None and float(timeout) != DEFAULT_PROPAGATION_TIMEOUT:
            args += ["--propagation-timeout", f"{float(timeout):g}"]
    return args


def replace(record: CertRecord, server: str | None = None) -> str:
    """The first command that gets a certificate a successor by hand."""
    if record.source == SOURCE_UPLOAD:
        return upload_successor(record.name)
    if record.validation.automatic:
        return issue(record.name)
    return order_again(record, server)


def replace_text(record: CertRecord, server: str | None = None) -> str:
    """How a certificate gets a successor by hand, as a sentence ending in the command."""
    if record.source == SOURCE_UPLOAD:
        return (
            f"put its successor's key, certificate and chain into {NEW_BUNDLE} and run: "
            + upload_successor(record.name)
        )
    if record.validation.automatic:
        return "re-issue it now with: " + issue(record.name)
    return (
        "order it again, publish what the order prints, then run verify and issue: "
        + order_again(record, server)
    )


def after_revocation(record: CertRecord, server: str | None = None) -> str:
    """What replaces a revoked certificate."""
    if record.source != SOURCE_UPLOAD and record.validation.automatic:
        return "renew-due replaces it on its next run; to do it now run: " + issue(record.name)
    return replace_text(record, server)


def all_commands(record: CertRecord, server: str | None = None) -> dict[str, str]:
    """Every command a hint may print for `record` (tests run each through the CLI)."""
    return {
        "show": show(record.name),
        "export": export(record.name),
        "verify": verify(record.name),
        "issue": issue(record.name),
        "renew_now": renew_now(record.name),
        "upload_successor": upload_successor(record.name),
        "revoke_with_own_key": revoke_with_own_key(record.name),
        "order_again": order_again(record, server),
        "replace": replace(record, server),
        "account_update_email": account_update_email("ops@example.com"),
        "caa_records": caa_records(record.domains[0].removeprefix("*.")),
        "persist_record": persist_record(record.domains[0].removeprefix("*.")),
        "list": LIST,
        "register_account": REGISTER_ACCOUNT,
        "settle_account": SETTLE_ACCOUNT,
        "order_help": ORDER_HELP,
        "upload_help": UPLOAD_HELP,
    }
