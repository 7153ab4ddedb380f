"""Accounts (RFC 8555 §7.3): register with EAB, log in, look up, deactivate, roll over keys."""

from __future__ import annotations

from acme import client, errors, messages
from cryptography import x509
from josepy import json_util
from josepy.jwk import JWK

from certctl.acme.connection import AcmeConnection, json_body, jwk_for, problem_code, status_name
from certctl.errors import AcmeError, BadInput


class _KeyChange(json_util.JSONObjectWithFields):
    """RFC 8555 §7.3.5 keyChange payload (signed by the new key)."""

    account: str = json_util.field("account")
    old_key: JWK = json_util.field("oldKey", decoder=JWK.from_json)


class AccountCalls(AcmeConnection):
    """Account management, and revocation (signed by the account or the certificate's key)."""

    def login(self, key_pem: bytes, account_uri: str) -> None:
        """Use an existing account."""
        net = self._network(key_pem)
        net.account = messages.RegistrationResource(uri=account_uri, body=messages.Registration())
        self._client = client.ClientV2(self.directory, net)
        self.account_uri = account_uri

    def register(
        self,
        key_pem: bytes,
        *,
        email: str | None,
        eab_kid: str | None = None,
        eab_hmac_key: str | None = None,
    ) -> str:
        """Create (or find, for a known key) the account; returns its URI."""
        net = self._network(key_pem)
        acme = client.ClientV2(self.directory, net)
        eab = None
        if eab_kid:
            if eab_hmac_key is None:  # accounts.load_eab never lets this through
                raise BadInput("--eab-kid needs the HMAC key: add --eab-hmac-key-env or -file")
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=self._jwk.public_key() if self._jwk else None,
                kid=eab_kid,
                hmac_key=eab_hmac_key,
                directory=self.directory,
            )
        elif self.external_account_required():
            raise BadInput(
                "this CA requires External Account Binding: run 'certctl account register'"
                " with --eab-kid and --eab-hmac-key-env/--eab-hmac-key-file"
            )
        registration = messages.NewRegistration.from_data(
            email=email, terms_of_service_agreed=True, external_account_binding=eab
        )
        try:
            regr = self.call("create the ACME account", lambda: acme.new_account(registration))
            uri = str(regr.uri)
        except AcmeError as e:
            if isinstance(e.__cause__, errors.ConflictError):
                uri = str(e.__cause__.args[0])  # the key already has an account: reuse it
            else:
                raise
        net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
        self._client = acme
        self.account_uri = uri
        return uri

    def revoke(self, cert_pem: bytes, reason: int, cert_key_pem: bytes | None = None) -> bool:
        """Revoke (RFC 8555 §7.6); False when it already was. With `cert_key_pem` the
        request is signed by the certificate's own key (jwk, no account kid)."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        acme = (
            self.acme
            if cert_key_pem is None
            else client.ClientV2(self.directory, self._network(cert_key_pem, remember=False))
        )
        try:
            self.call("revoke the certificate", lambda: acme.revoke(cert, reason))
        except AcmeError as e:
            if problem_code(e) == "alreadyRevoked":
                return False
            raise
        return True

    def account_details(self) -> messages.Registration:
        """The account object as the CA has it (POST-as-GET on the account URL)."""
        assert self.account_uri is not None
        uri = self.account_uri
        response = self.call("fetch the account", lambda: self._get(uri))
        details: messages.Registration = self.call(
            "read the account", lambda: messages.Registration.from_json(json_body(response))
        )
        return details

    def find_account(self, key_pem: bytes) -> str | None:
        """RFC 8555 §7.3.1 onlyReturnExisting: the account URL bound to a key, or None."""
        acme = client.ClientV2(self.directory, self._network(key_pem, remember=False))
        query = messages.NewRegistration(only_return_existing=True)
        try:
            response = self.call(
                "look up the account", lambda: acme._post(acme.directory["newAccount"], query)
            )
        except AcmeError as e:
            if problem_code(e) == "accountDoesNotExist":
                return None
            raise
        location = response.headers.get("Location")
        return str(location) if location else None

    def deactivate(self) -> str:
        """RFC 8555 §7.3.6: deactivate this account; returns the status the CA reports."""
        assert self.account_uri is not None
        regr = messages.RegistrationResource(uri=self.account_uri, body=messages.Registration())
        updated = self.call(
            "deactivate the account", lambda: self.acme.deactivate_registration(regr)
        )
        return status_name(updated.body.status) if updated.body.status else "deactivated"

    def update_contact(self, emails: list[str]) -> list[str]:
        """RFC 8555 §7.3.2: replace the account's contact; returns the contact the CA now has."""
        assert self.account_uri is not None
        regr = messages.RegistrationResource(uri=self.account_uri, body=messages.Registration())
        update = messages.Registration.from_data(email=",".join(emails))
        updated = self.call(
            "update the account contact", lambda: self.acme.update_registration(regr, update)
        )
        return list(updated.body.contact)

    def change_key(self, new_key_pem: bytes) -> None:
        """RFC 8555 §7.3.5 key rollover: inner JWS by the new key, outer by the current one."""
        from acme import jws

        assert self.account_uri is not None and self._jwk is not None
        url = self.directory["keyChange"]
        new_jwk, new_alg = jwk_for(new_key_pem)
        payload = _KeyChange(account=self.account_uri, old_key=self._jwk.public_key())
        inner = jws.JWS.sign(
            payload.json_dumps().encode(), key=new_jwk, alg=new_alg, nonce=None, url=url
        )
        self.call("roll over the account key", lambda: self.acme._post(url, inner))
