"""Every config key is checked when the file is loaded: exit 2 naming the key and what it
accepts (or, for a typo, the key and a suggestion), before anything is written.

Through the real CLI (`renew-due` on a store with a certificate in it, and `list`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from certctl.config import SCHEMA, Table
from certctl.models import CertRecord
from certctl.notify import CHANNELS, CONFIG
from test_cli_offline import one_error_line, state

import storeview
from conftest import Certctl

SECRET_HEADER = "Bearer s3cr3t-t0ken"

# (config text, fragments of the one error line after "config file PATH: ")
BAD: list[tuple[str, str]] = [
    ("timeout = -5", "invalid value: timeout must be a number of seconds greater than 0 and at"
                     " most 3600 (got -5)"),
    ("timeout = 0", "timeout must be a number of seconds greater than 0 and at most 3600 (got 0)"),
    ("timeout = nan", "timeout must be a number of seconds greater than 0 and at most 3600"
                      " (got nan)"),
    ("timeout = inf", "(got inf)"),
    ("timeout = 3601", "(got 3601)"),
    ('timeout = "30"', "timeout must be a number of seconds greater than 0 and at most 3600"),
    ("timeout = true", "timeout must be a number of seconds"),
    ("notice_days = inf", "notice_days must be a number of days at least 0 and at most 365"
                          " (got inf)"),
    ("notice_days = nan", "notice_days must be a number of days at least 0 and at most 365"
                          " (got nan)"),
    ("notice_days = 1e12", "(got 1000000000000.0)"),
    ("notice_days = -1", "(got -1)"),
    ('server = "ftp://ca.example"', "server must be letsencrypt, letsencrypt-staging or a"
                                    " directory URL"),
    ("server = 5", "server must be a CA alias or directory URL"),
    ('ca_bundle = ""', "ca_bundle must be the path of a PEM file"),
    ('email = "not-an-address"', "email must be an e-mail address such as ops@example.com"),
    ('email = "ops@example.com\\nBcc: x@example.com"', "email must be an e-mail address on one"
                                                       " line"),
    ("checks = 5", "[checks] must be a table"),
    ("[checks]\nhttp_port = 0", "checks.http_port must be an integer at least 1 and at most"
                                " 65535 (got 0)"),
    ("[checks]\nhttp_port = 80.5", "checks.http_port must be an integer"),
    ("[checks]\ntls_port = 70000", "checks.tls_port must be an integer at least 1 and at most"),
    ('[checks]\nresolvers = "192.0.2.1"', "checks.resolvers must be a non-empty list of them"
                                          ' such as ["192.0.2.53"]'),
    ('[checks]\nresolvers = ["bogus"]', "checks.resolvers must be IP[:PORT]"),
    # typos: the key and a suggestion
    ('servr = "letsencrypt"', "unknown key 'servr' (did you mean 'server'?)"),
    ("[check]\nhttp_port = 80", "unknown key 'check' (did you mean 'checks'?)"),
    ("[checks]\nhttp_prot = 80", "unknown key 'checks.http_prot' (did you mean 'http_port'?)"),
    ("zzz = 1", "unknown key 'zzz' (known keys: server, ca_bundle, email, timeout, notice_days,"
                " store, deploy, checks, notify)"),
    # [store]
    ("[store]\nurl = 5", "store.url must be a store directory or a postgresql:// URL"),
    ("[store]\nkey_file = 5", "store.key_file must be the path of the store key file"),
    ("[store]\nlease = 1", "store.lease must be a number of seconds at least 5 and at most 3600"
                          " (got 1)"),
    ("[store]\nleas = 60", "unknown key 'store.leas' (did you mean 'lease'?)"),
    # [deploy]
    ("[deploy]\ndir = 5", "deploy.dir must be a directory"),
    ("[deploy]\nnames = []", "deploy.names must be a certificate name or glob or a non-empty"
                             " list of them"),
    ("[deploy]\nhook = 5", "deploy.hook must be a command"),
    ("[deploy]\nhost_id = 5", "deploy.host_id must be a host name"),
    ("[deploy]\nowner = 5", "deploy.owner must be USER[:GROUP]"),
    # [notify]
    ("notify = 5", "[notify] must be a table"),
    ('[notify.slack]\nurl = "https://x"', "unknown notify channel 'slack' (known keys: email,"
                                          " webhook, command)"),
    ('[notify.webhok]\nurl = "https://x"', "unknown notify channel 'webhok' (did you mean"
                                           " 'webhook'?)"),
    ('[notify.email]\nhots = "h"\nto = "a@example.com"', "unknown key 'notify.email.hots'"
                                                         " (did you mean 'host'?)"),
    ('[notify.email]\nto = "a@example.com"', "[notify.email] needs 'host'"),
    ('[notify.email]\nhost = "h"', "[notify.email] needs 'to'"),
    ('[notify.email]\nhost = "h"\nto = "a@example.com"\nport = 70000',
     "notify.email.port must be an integer at least 1 and at most 65535 (got 70000)"),
    ('[notify.email]\nhost = "h"\nto = "a@example.com"\nsecurity = "ssl"',
     "notify.email.security must be starttls, tls or none"),
    ('[notify.email]\nhost = "h"\nto = ["a@example.com", "nobody"]',
     "notify.email.to must be an e-mail address such as ops@example.com"),
    ('[notify.email]\nhost = "h"\nto = []', "notify.email.to must be an e-mail address or a"
                                            " non-empty list of them"),
    ('[notify.email]\nhost = "h"\nto = "a@example.com"\nfrom = "x\\r\\nBcc: y@example.com"',
     "notify.email.from must be an e-mail address on one line"),
    ('[notify.email]\nhost = "h"\nto = "a@example.com"\ntimeout = -1',
     "notify.email.timeout must be a number of seconds greater than 0 and at most 3600"),
    ('[notify.email]\nhost = "h"\nto = "a@example.com"\nusername = 5',
     "notify.email.username must be a user name"),
    ('[notify.email]\nhost = "h"\nto = "a@example.com"\npassword_env = ""',
     "notify.email.password_env must be the name of an environment variable"),
    ('[notify.email]\nhost = "h"\nto = "a@example.com"\npassword_file = 1',
     "notify.email.password_file must be the path of a file"),
    ('[notify.email]\nhost = "h"\nto = "a@example.com"\nca_bundle = ""',
     "notify.email.ca_bundle must be the path of a PEM file"),
    ('[notify.email]\nhost = "h"\nto = "a@example.com"\npassword = "hunter2-secret"',
     "notify.email.password must not hold the password: put it in an environment variable"
     " (password_env) or a file (password_file), not in the config file"),
    ('[[notify.email]]\nhost = "h"\nto = "a@example.com"\n'
     '[[notify.email]]\nhost = 5\nto = "b@x.org"',
     "notify.email.host must be a host name or address"),
    ('[notify.webhook]\ntimeout = 5', "[notify.webhook] needs 'url'"),
    ('[notify.webhook]\nurl = "ftp://x"', "notify.webhook.url must be an http:// or https:// URL"),
    ('[notify.webhook]\nurl = "https://x"\ntimeout = 0',
     "notify.webhook.timeout must be a number of seconds greater than 0 and at most 3600 (got 0)"),
    ('[notify.webhook]\nurl = "https://x"\nheaders = "Authorization: x"',
     "notify.webhook.headers must be a table such as"),
    (f'[notify.webhook]\nurl = "https://x"\n'
     f'headers = {{ Authorization = "{SECRET_HEADER}\\r\\nX: 1" }}',
     "notify.webhook.headers must have one-line string values: the value of 'Authorization'"
     " is not"),
    ('[notify.webhook]\nurl = "https://x"\nheaders = { "X Bad" = "1" }',
     "notify.webhook.headers must have HTTP field names as keys"),
    ('[notify.webhook]\nurl = "https://x"\nheaders = { X-N = 1 }',
     "the value of 'X-N' is not"),
    ('[notify.command]\ntimeout = 5', "[notify.command] needs 'command'"),
    ('[notify.command]\ncommand = ""', "notify.command.command must be a shell command"),
    ('[notify.command]\ncommand = "true"\ntimeout = nan',
     "notify.command.timeout must be a number of seconds greater than 0 and at most 3600"
     " (got nan)"),
    ('[notify.command]\ncommand = "true"\ntimout = 5',
     "unknown key 'notify.command.timout' (did you mean 'timeout'?)"),
]  # fmt: skip

GOOD = """\
server = "letsencrypt-staging"
ca_bundle = "/etc/ssl/certs/ca-certificates.crt"
email = "ops@example.com"
timeout = 30
notice_days = 14.5

[checks]
http_port = 8080
resolvers = ["192.0.2.53", "[2001:db8::53]:5353"]

[[notify.email]]
host = "smtp.example.com"
port = 465
security = "tls"
username = "certctl"
password_env = "CERTCTL_TEST_SMTP_PASSWORD"
from = "certctl@example.com"
to = ["ops@example.com"]
timeout = 20
ca_bundle = "/etc/ssl/private-ca.pem"

[[notify.email]]
host = "localhost"
security = "none"
to = "root@localhost.localdomain"
password_file = "/etc/certctl/smtp-password"

[notify.webhook]
url = "https://hooks.example.com/certctl"
timeout = 10
headers = { Authorization = "Bearer abc", X-Team = "ops" }

[notify.command]
command = "logger -t certctl"
timeout = 60
"""


@pytest.fixture
def created(offline: Certctl) -> Certctl:
    storeview.write_record(offline, CertRecord(name="existing", domains=["existing.example.com"]))
    return offline


@pytest.mark.parametrize(("text", "fragment"), BAD)
def test_bad_config_exits_2_naming_the_key_before_anything_is_written(
    created: Certctl, tmp_path: Path, text: str, fragment: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text + "\n")
    before = state(created)
    result = created.invoke("--config", str(config), "renew-due")
    assert result.exit_code == 2, result.stderr
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: config file {config}: "), line
    assert fragment in line, line
    assert state(created) == before
    assert SECRET_HEADER not in line and "hunter2" not in line  # values of secrets never shown


def test_every_key_is_covered_by_the_table() -> None:
    """A key added to the schema without a case here fails this test."""

    def keys(table: Table, prefix: str = "") -> set[str]:
        found = set()
        for key, rule in table.keys.items():
            dotted = f"{prefix}{key}"
            found |= keys(rule, dotted + ".") if isinstance(rule, Table) else {dotted}
        return found

    every = keys(SCHEMA) | keys(CONFIG, "notify.")
    text = "\n".join(fragment for _, fragment in BAD)
    assert {k for k in every if k.rsplit(".", 1)[-1] not in text} == set()
    assert set(CONFIG.keys) == set(CHANNELS)


def test_every_key_at_a_valid_value_is_accepted(offline: Certctl, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(GOOD)
    result = offline.invoke("--config", str(config), "list", "--json")
    assert result.exit_code == 0, result.stderr
    assert not storeview.exists(offline)


def test_bad_config_through_a_subprocess_is_one_line(offline: Certctl, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("servr = 'letsencrypt'\n")
    proc = offline.run("--config", str(config), "list")
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == (
        f"error: config file {config}: unknown key 'servr' (did you mean 'server'?)"
    )
    assert not storeview.exists(offline)
