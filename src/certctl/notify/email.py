"""E-mail notices over SMTP: STARTTLS, implicit TLS or plain, with optional login."""

from __future__ import annotations

import os
from typing import Any

from certctl.config import EMAIL, PORT, SECONDS, ListOf, Secret, Table, Text
from certctl.errors import BadInput, OperationFailed
from certctl.notify.channel import Notice, secret_from

SECURITY = ("starttls", "tls", "none")
CONFIG = Table(
    {
        "host": Text("a host name or address"),
        "port": PORT,
        "security": Text("a mode", choices=SECURITY),
        "username": Text("a user name"),
        "password": Secret(
            "must not hold the password: put it in an environment variable (password_env) or"
            " a file (password_file), not in the config file"
        ),
        "password_env": Text("the name of an environment variable"),
        "password_file": Text("the path of a file"),
        "from": EMAIL,
        "to": ListOf(EMAIL, single=True),
        "timeout": SECONDS,
        "ca_bundle": Text("the path of a PEM file"),
    },
    required=("host", "to"),
    repeat=True,
)


class EmailChannel:
    """E-mail over SMTP: STARTTLS (default), implicit TLS or plain (local relays)."""

    def __init__(self, table: dict[str, Any]) -> None:
        try:
            self.host = str(table["host"])
            self.to = (
                [str(a) for a in table["to"]]
                if isinstance(table["to"], list)
                else [str(table["to"])]
            )
        except KeyError as e:
            raise BadInput(f"notify.email needs {e.args[0]!r}") from None
        self.port = int(table.get("port", 587))
        self.security = str(table.get("security", "starttls"))
        if self.security not in SECURITY:
            raise BadInput("notify.email.security must be starttls, tls or none")
        self.sender = str(table.get("from", f"certctl@{os.uname().nodename}"))
        self.username = table.get("username")
        self.password = secret_from(table, "password")
        self.timeout = float(table.get("timeout", 20))
        self.ca_bundle = table.get("ca_bundle")
        self.label = f"e-mail to {', '.join(self.to)}"

    def _domain(self) -> str:
        """The sender's domain (for the Message-ID), else this host's name."""
        _, at, domain = self.sender.rpartition("@")
        domain = domain.strip().rstrip(">").strip()
        return domain if at and domain else os.uname().nodename or "localhost"

    def send(self, notice: Notice) -> None:
        """Send one message."""
        import smtplib
        import ssl
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        message = EmailMessage()
        message["Subject"] = notice.subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        # RFC 5322 §3.6: Date is required, Message-ID expected; relays that add them
        # late (or not at all) make notices look like spam. The domain is given so
        # make_msgid does not ask the resolver for this host's FQDN.
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid("certctl", domain=self._domain())
        message.set_content(notice.body())
        context = ssl.create_default_context(cafile=self.ca_bundle)
        try:
            smtp: smtplib.SMTP
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=context)
                if self.username:
                    smtp.login(str(self.username), self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError:
            raise OperationFailed(
                f"e-mail via {self.host}:{self.port}: login refused for {self.username}"
            ) from None
        except (smtplib.SMTPException, OSError) as e:
            if isinstance(e, TimeoutError | smtplib.SMTPServerDisconnected):
                detail = f"timed out after {self.timeout:g}s waiting for the server"
            elif isinstance(e, smtplib.SMTPResponseException):
                detail = f"the server said {e.smtp_code}"
            else:
                detail = (
                    e.strerror or type(e).__name__ if isinstance(e, OSError) else type(e).__name__
                )
            raise OperationFailed(f"e-mail via {self.host}:{self.port} failed: {detail}") from None
