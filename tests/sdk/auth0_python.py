"""Drive passgate with Auth0's official Python SDK (auth0-python), as an
application written against Auth0 would, and verify what it gets with the
SDK's own ID-token verifier and, independently, with PyJWT against the JWKS.

Run by tests/auth0_sdk.rs, which starts the gateway and passes:
PASSGATE_DOMAIN (host:port), REQUESTS_CA_BUNDLE (the gateway's certificate),
PASSGATE_ISSUER, PASSGATE_AUDIENCE, PASSGATE_CLIENT_ID, PASSGATE_CLIENT_SECRET,
PASSGATE_USERNAME, PASSGATE_PASSWORD, PASSGATE_REALM, and PASSGATE_DENIED_USERNAME
(a user the configured post-login action refuses; a configured rule copies
`app_metadata.roles` into the `https://example.com/roles` claim).
"""

import os
import sys

import jwt
import requests
from auth0.authentication import GetToken, Users
from auth0.authentication.token_verifier import AsymmetricSignatureVerifier, TokenVerifier
from auth0.authentication.exceptions import Auth0Error

env = os.environ
domain = env["PASSGATE_DOMAIN"]
issuer = env["PASSGATE_ISSUER"]
audience = env["PASSGATE_AUDIENCE"]
client_id = env["PASSGATE_CLIENT_ID"]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


token = GetToken(domain, client_id, client_secret=env["PASSGATE_CLIENT_SECRET"])

# password-realm grant, the SDK's default for login()
got = token.login(
    username=env["PASSGATE_USERNAME"],
    password=env["PASSGATE_PASSWORD"],
    realm=env["PASSGATE_REALM"],
    scope="openid profile email",
    audience=audience,
)
check(got["token_type"] == "Bearer", "token_type is Bearer")
check("id_token" in got and "access_token" in got, "access and ID tokens returned")

# The SDK's own ID-token verification against passgate's JWKS.
jwks_url = f"https://{domain}/.well-known/jwks.json"
header = jwt.get_unverified_header(got["id_token"])
sv = AsymmetricSignatureVerifier(jwks_url, algorithm=header["alg"])
TokenVerifier(signature_verifier=sv, issuer=issuer, audience=client_id).verify(got["id_token"])
check(True, "ID token verified by auth0-python's TokenVerifier")

# The access token, verified independently with PyJWT.
jwks = requests.get(jwks_url, timeout=10).json()
key = next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(got["access_token"])["kid"])
claims = jwt.decode(
    got["access_token"],
    jwt.PyJWK(key).key,
    algorithms=[key["alg"]],
    audience=audience,
    issuer=issuer,
)
check(claims["azp"] == client_id, "access token verified by PyJWT; azp is the client")
check(claims.get("https://example.com/roles") == ["reader"], "a rule's roles claim is in the access token")
id_claims = jwt.decode(got["id_token"], options={"verify_signature": False})
check(id_claims.get("https://example.com/roles") == ["reader"], "a rule's roles claim is in the ID token")

# userinfo through the SDK.
profile = Users(domain).userinfo(got["access_token"])
check(profile["sub"] == claims["sub"], "userinfo answers for the token's user")

# The plain password grant (no realm: the default realm).
got = token.login(
    username=env["PASSGATE_USERNAME"],
    password=env["PASSGATE_PASSWORD"],
    grant_type="password",
    audience=audience,
)
check(got["scope"] == "read:items write:items", "password grant: all API scopes when none asked")

# Errors surface as the SDK's Auth0Error with Auth0's codes and texts.
try:
    token.login(username=env["PASSGATE_USERNAME"], password="wrong password", realm=env["PASSGATE_REALM"])
    check(False, "wrong password refused")
except Auth0Error as e:
    check(e.status_code == 403 and e.error_code == "invalid_grant", "wrong password is 403 invalid_grant")
    check(e.message == "Wrong email or password.", "wrong password message")

# A post-login action's api.access.deny surfaces as Auth0Error, as from Auth0.
try:
    token.login(
        username=env["PASSGATE_DENIED_USERNAME"],
        password=env["PASSGATE_PASSWORD"],
        realm=env["PASSGATE_REALM"],
    )
    check(False, "the action refused the contractor")
except Auth0Error as e:
    check(e.status_code == 403 and e.error_code == "access_denied", "action denial is 403 access_denied")
    check(e.message == "Contractors may not use sdk-app.", "action denial message")

print("auth0-python drove passgate successfully")
